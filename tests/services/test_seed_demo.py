"""``manage.py seed_demo``: the demo that `make run` shows, received through the real SCP."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from sharing.models import Facility, PacsNode, Study, User

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_seeds_accounts_studies_and_a_facility_once(monkeypatch):
    monkeypatch.delenv("LIGHTBOX_DEMO_PACS", raising=False)
    call_command("seed_demo")
    studies = Study.objects.count()
    call_command("seed_demo")  # again: nothing more

    patient = User.objects.get(email="patient@example.com")
    assert User.objects.get(email="staff@example.com").is_records_staff
    assert Study.objects.filter(patient__user=patient).count() >= 5
    assert Study.objects.filter(patient__user__isnull=True).count() == 1  # waits for records staff
    assert Study.objects.count() == studies
    facility = Facility.objects.get()
    assert facility.issuer == "LIGHTBOX-DEMO"
    assert facility.pacs is None


def test_it_registers_the_demo_pacs_it_is_given(monkeypatch):
    monkeypatch.setenv("LIGHTBOX_DEMO_PACS", "ORTHANC@orthanc:4242")
    call_command("seed_demo")

    node = PacsNode.objects.get()
    assert (node.ae_title, node.host, node.port) == ("ORTHANC", "orthanc", 4242)
    assert Facility.objects.get().pacs == node


def test_a_malformed_demo_pacs_is_refused(monkeypatch):
    monkeypatch.setenv("LIGHTBOX_DEMO_PACS", "orthanc")
    with pytest.raises(CommandError, match="AE@host:port"):
        call_command("seed_demo")
