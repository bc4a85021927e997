"""What kind of object a SOP Class is, for the parts of Lightbox that do not speak pydicom."""

from __future__ import annotations

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
ENCAPSULATED_CDA = "1.2.840.10008.5.1.4.1.1.104.2"
SR_SOP_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."


def is_structured_report(sop_class_uid: str) -> bool:
    return sop_class_uid.startswith(SR_SOP_CLASS_PREFIX)


def is_report_sop_class(sop_class_uid: str) -> bool:
    """Reports a patient would read: structured reports and encapsulated documents."""
    return is_structured_report(sop_class_uid) or sop_class_uid in (ENCAPSULATED_PDF, ENCAPSULATED_CDA)


def is_encapsulated_cda(sop_class_uid: str) -> bool:
    return sop_class_uid == ENCAPSULATED_CDA


def is_text_report(sop_class_uid: str) -> bool:
    """Reports Lightbox shows as text: structured reports and CDA documents."""
    return is_structured_report(sop_class_uid) or is_encapsulated_cda(sop_class_uid)
