"""Shared test helpers: receiving synthetic studies, users of each kind."""

from __future__ import annotations

from pathlib import Path

from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from sharing.dicom.synthetic import SyntheticPatient, ct_series, pdf_report, sr_report, write_study
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


def make_study(
    tmp_path: Path,
    patient: SyntheticPatient,
    name: str,
    *,
    study_date: str = "20260115",
    description: str = "CT CHEST W/O CONTRAST",
    pdf: bool = True,
) -> Study:
    """A CT series, a text report and (optionally) a PDF report, received and indexed."""
    ct = ct_series(patient, slices=3, size=32, study_date=study_date, description=description)
    uid = str(ct[0].StudyInstanceUID)
    datasets = [*ct, sr_report(patient, study_uid=uid, text="No acute findings.", study_date=study_date)]
    if pdf:
        datasets.append(pdf_report(patient, study_uid=uid, study_date=study_date))
    ingest(write_study(datasets, tmp_path / name))
    return Study.objects.get(study_instance_uid=uid)
