"""Shared test helpers: receiving synthetic studies, users of each kind."""

from __future__ import annotations

from pathlib import Path

from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from sharing.models import Patient, Study, User
from sharing.services.receiving import ReceiveOutcome, Sender, instance_receive

SENDER = Sender(source=Study.Source.DIMSE, label="PACS@10.0.0.5")
PASSWORD = "pw-123456789"


def ingest(paths: list[Path]) -> None:
    """Receive files as a PACS would (indexing runs on commit, inline in tests)."""
    results = [instance_receive(path=path, sender=SENDER) for path in paths]
    assert all(r.outcome is ReceiveOutcome.STORED for r in results)


def patient_user(email: str, patient_id: str, *, issuer: str = "GENERAL") -> User:
    """A patient account linked to a DICOM identity, as records staff would link it."""
    user = User.objects.create_user(email, PASSWORD)
    Patient.objects.create(patient_id=patient_id, issuer=issuer, user=user)
    return user


def records_staff(email: str = "records@example.com") -> User:
    """Records staff with two-factor authentication set up (without it they reach nothing)."""
    user = User.objects.create_user(email, PASSWORD, role=User.Role.RECORDS)
    TOTP.activate(user, generate_totp_secret())
    return user
