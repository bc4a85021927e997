"""People for the web tests: two patients with linked records, and records staff with MFA.

Modules that need other kinds define their own fixtures of the same name, which take precedence.
"""

from __future__ import annotations

import pytest

from sharing.models import User
from tests.support.factories import patient_user, records_staff


@pytest.fixture
def jane() -> User:
    return patient_user("jane@example.com", "MRN-1001")


@pytest.fixture
def john() -> User:
    return patient_user("john@example.com", "MRN-2002")


@pytest.fixture
def staff() -> User:
    return records_staff()
