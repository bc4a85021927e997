"""Whose images these are: the rules the indexer applies before it joins an instance to a record.

Identifiers are never trusted across sources. A patient's own upload is matched only against that
patient's earlier uploads. The hospital's instances join a Patient by PatientID and issuer, except
where that would merge someone else's images silently into a record linked to an account: the same
PatientID with no issuer but another name or birth date, a Study Instance UID that already belongs
to another patient, or no PatientID at all. Those studies are held for records staff, with the
reason, and no account sees them until a person decides.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from sharing.dicom.header import InstanceHeader
from sharing.models import Instance, Patient, Study

NO_PATIENT_ID = "The images carry no Patient ID: match them to a patient."


@dataclass(frozen=True)
class PatientIdentity:
    """Who an instance says it belongs to, as its header names them."""

    patient_id: str
    issuer: str
    name: str
    birth_date: datetime.date | None

    @classmethod
    def of_header(cls, header: InstanceHeader) -> PatientIdentity:
        return cls(header.patient_id, header.issuer, header.patient_name, header.birth_date)

    @classmethod
    def of_instance(cls, instance: Instance) -> PatientIdentity:
        return cls(
            instance.patient_identifier,
            instance.patient_issuer,
            instance.patient_name,
            instance.patient_birth_date,
        )


def _name_key(name: str) -> str:
    """Person names compared as DICOM writes them: case, padding and empty components aside."""
    return "^".join(part.strip() for part in name.upper().split("^")).rstrip("^ ")


def demographics_clash(*, patient: Patient, identity: PatientIdentity) -> str:
    """Why these images must not join ``patient``, a hospital record linked to an account; "" if
    nothing tells them apart. Only a PatientID without an issuer is this ambiguous."""
    if patient.user_id is None or identity.issuer or patient.issuer:
        return ""
    other_name = bool(patient.name and identity.name and _name_key(patient.name) != _name_key(identity.name))
    other_birth = bool(
        patient.birth_date and identity.birth_date and patient.birth_date != identity.birth_date
    )
    if not (other_name or other_birth):
        return ""
    return (
        f"Patient ID {identity.patient_id} (no issuer) is linked to an account for "
        f"{_describe(patient.name, patient.birth_date)}, but these images name "
        f"{_describe(identity.name, identity.birth_date)}."
    )[:255]


def is_clash_record_of(*, patient: Patient, identity: PatientIdentity) -> bool:
    """Whether ``patient``, a record set apart by ``demographics_clash``, is the one these images name."""
    return patient.name == identity.name and patient.birth_date == identity.birth_date


def study_uid_clash(*, study_instance_uid: str, patient: Patient) -> str:
    """Why a study for ``patient`` must wait: its Study Instance UID is another patient's; "" if not."""
    others = Study.objects.filter(study_instance_uid=study_instance_uid).exclude(patient=patient)
    if patient.upload_owner_id is None:
        # A patient's upload never holds up the hospital's own copy of the study.
        others = others.filter(patient__upload_owner__isnull=True)
    other = others.select_related("patient").order_by("pk").first()
    if other is None:
        return ""
    if patient.upload_owner_id is not None:
        return (
            "A patient's upload reuses the Study Instance UID of another study: kept apart as an "
            "outside study."
        )
    return (
        f"The Study Instance UID is already that of another patient's study (Patient ID "
        f"{other.patient}): these images, for Patient ID {patient}, are kept apart."
    )[:255]


def _describe(name: str, birth_date: datetime.date | None) -> str:
    born = birth_date.isoformat() if birth_date else "unknown"
    return f"{name or 'no name'} (born {born})"
