"""Domain errors for DICOM input. Callers never see pydicom's own exceptions."""


class DicomInputError(Exception):
    """Base class: the bytes offered are not an acceptable DICOM instance."""


class UnreadableDicom(DicomInputError):
    """The bytes cannot be parsed as DICOM at all (DIMSE 0xC000 range: cannot understand)."""


class InvalidDicom(DicomInputError):
    """Parsed, but required identifiers are missing or wrong (DIMSE 0xA900: does not match)."""
