"""Shared fixtures: an object store per test, a running Storage SCP, synthetic studies."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.cache import cache

from sharing import storage
from sharing.dicom.synthetic import SyntheticPatient, ct_series, write_study
from sharing.models import User
from tests.support.clients import Client
from tests.support.factories import patient_user, records_staff
from tests.support.scp import RunningSCP, running_scp


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The audit table's trigger refuses TRUNCATE (migration 0004) unless a session allows it; the
    flush after each ``transactional_db`` test truncates every table of this throwaway database."""
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            name = connection.ops.quote_name(connection.settings_dict["NAME"])
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER DATABASE {name} SET lightbox.audit_truncate = 'allow'")
            connection.close()  # sessions opened from now on take the setting


@pytest.fixture
def client() -> Client:
    """pytest-django's client, whose ``force_login`` includes the account's second factor."""
    return Client()


@pytest.fixture(autouse=True)
def object_store(settings, tmp_path: Path) -> Iterator[Path]:
    """Each test gets its own local object store and temp directory."""
    root = tmp_path / "objects"
    settings.LIGHTBOX_OBJECT_STORE = root.as_uri()
    settings.LIGHTBOX_TEMP_DIR = str(tmp_path / "tmp")
    storage._store_for.cache_clear()
    cache.clear()  # "task queued" flags must not leak between tests
    yield root
    storage._store_for.cache_clear()


@pytest.fixture
def patient() -> SyntheticPatient:
    return SyntheticPatient(patient_id="MRN-1001", issuer="GENERAL", name="DOE^JANE", birth_date="19800101")


@pytest.fixture
def ct_files(tmp_path: Path, patient: SyntheticPatient) -> list[Path]:
    return write_study(ct_series(patient, slices=5, size=64), tmp_path / "ct")


@pytest.fixture
def scp(transactional_db) -> Iterator[RunningSCP]:
    with running_scp() as running:
        yield running


@pytest.fixture
def dcmtk_env() -> dict[str, str]:
    # dcmtk waits ~40 ms per instance on delayed ACKs without this.
    return {**os.environ, "TCP_NODELAY": "1"}


# People: two patients with linked records, and records staff with MFA. Modules that need other
# kinds define their own fixtures of the same name, which take precedence.


@pytest.fixture
def jane() -> User:
    return patient_user("jane@example.com", "MRN-1001")


@pytest.fixture
def john() -> User:
    return patient_user("john@example.com", "MRN-2002")


@pytest.fixture
def staff() -> User:
    return records_staff()
