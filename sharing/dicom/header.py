"""Reading and validating the header of a received instance, without touching its pixels."""

from __future__ import annotations

import datetime
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from sharing.dicom.errors import InvalidDicom, UnreadableDicom

UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")
_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Everything pydicom raises on hostile bytes; RecursionError for absurdly nested sequences.
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    InvalidDicomError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    EOFError,
    OverflowError,
    RecursionError,
    struct.error,
    UnicodeError,
    OSError,
)


@dataclass(frozen=True)
class InstanceHeader:
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    patient_id: str
    issuer: str
    patient_name: str
    birth_date: datetime.date | None
    sex: str
    study_date: datetime.date | None
    study_time: str
    accession_number: str
    study_id: str
    study_description: str
    referring_physician: str
    institution: str
    modality: str
    series_number: int | None
    series_description: str
    body_part: str
    instance_number: int | None
    number_of_frames: int
    rows: int | None
    columns: int | None


def is_valid_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and UID_PATTERN.match(value) is not None


def read_header(path: Path) -> InstanceHeader:
    """Parse and validate a Part-10 file's header. Raises UnreadableDicom or InvalidDicom."""
    try:
        with path.open("rb") as handle:
            dataset = pydicom.dcmread(handle, stop_before_pixels=True, defer_size="64 KB")
            size = path.stat().st_size
            _check_elements_complete(dataset, size)
            _check_pixel_data_complete(handle, dataset, size)
            return _header_from(dataset)
    except (UnreadableDicom, InvalidDicom):
        raise
    except PARSE_ERRORS as exc:
        raise UnreadableDicom(f"not a readable DICOM file ({type(exc).__name__})") from None


def _header_from(ds: Dataset) -> InstanceHeader:
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = str(getattr(meta, "TransferSyntaxUID", "") or "")
    identifiers = {
        "SOPClassUID": _text(ds, "SOPClassUID"),
        "SOPInstanceUID": _text(ds, "SOPInstanceUID"),
        "StudyInstanceUID": _text(ds, "StudyInstanceUID"),
        "SeriesInstanceUID": _text(ds, "SeriesInstanceUID"),
    }
    missing = [name for name, value in identifiers.items() if not value]
    # PatientID is Type 2: it may be empty, and such an instance is stored for staff to match.
    patient_id = _text(ds, "PatientID")
    if len(missing) == len(identifiers) and not patient_id:
        raise UnreadableDicom("no DICOM identifiers found: not a DICOM instance")
    if missing:
        raise InvalidDicom(f"missing {', '.join(missing)}")
    bad = [name for name, value in identifiers.items() if not is_valid_uid(value)]
    if transfer_syntax and not is_valid_uid(transfer_syntax):
        bad.append("TransferSyntaxUID")
    if bad:
        raise InvalidDicom(f"malformed UID in {', '.join(bad)}")
    return InstanceHeader(
        sop_class_uid=identifiers["SOPClassUID"],
        sop_instance_uid=identifiers["SOPInstanceUID"],
        study_instance_uid=identifiers["StudyInstanceUID"],
        series_instance_uid=identifiers["SeriesInstanceUID"],
        transfer_syntax_uid=transfer_syntax,
        patient_id=patient_id[:64],
        issuer=_text(ds, "IssuerOfPatientID")[:64],
        patient_name=_text(ds, "PatientName")[:324],
        birth_date=_date(ds, "PatientBirthDate"),
        sex=_text(ds, "PatientSex")[:16],
        study_date=_date(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime")[:16],
        accession_number=_text(ds, "AccessionNumber")[:16],
        study_id=_text(ds, "StudyID")[:16],
        study_description=_text(ds, "StudyDescription")[:64],
        referring_physician=_text(ds, "ReferringPhysicianName")[:324],
        institution=_text(ds, "InstitutionName")[:64],
        modality=_text(ds, "Modality")[:16],
        series_number=_int(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription")[:64],
        body_part=_text(ds, "BodyPartExamined")[:64],
        instance_number=_int(ds, "InstanceNumber"),
        number_of_frames=max(1, _int(ds, "NumberOfFrames") or 1),
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
    )


def _value(ds: Dataset, keyword: str) -> Any:
    try:
        return ds.get(keyword)
    except PARSE_ERRORS:
        return None


def _text(ds: Dataset, keyword: str) -> str:
    value = _value(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, list | pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    # Names and descriptions end up in pages, logs and CSV exports: no control characters.
    return _CONTROL_CHARS.sub(" ", str(value)).strip().rstrip("\x00")


def _int(ds: Dataset, keyword: str) -> int | None:
    value = _value(ds, keyword)
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if value else None
    try:
        number = int(value) if value not in (None, "") else None
    except (TypeError, ValueError, OverflowError):
        return None
    if number is not None and not -(2**31) <= number < 2**31:
        return None
    return number


def _date(ds: Dataset, keyword: str) -> datetime.date | None:
    text = _text(ds, keyword).replace(".", "")  # old ACR-NEMA style YYYY.MM.DD
    try:
        return datetime.datetime.strptime(text[:8], "%Y%m%d").date() if len(text) >= 8 else None
    except ValueError:
        return None


def _check_elements_complete(ds: Dataset, file_size: int) -> None:
    """Reject a file cut short inside its header: pydicom reads a short value without a word.

    Top-level elements are still raw (unparsed) here, each knowing where its value starts.
    """
    meta = getattr(ds, "file_meta", None)
    if str(getattr(meta, "TransferSyntaxUID", "")) == pydicom.uid.DeflatedExplicitVRLittleEndian:
        return  # offsets refer to the inflated stream
    for element in ds._dict.values():
        if not isinstance(element, RawDataElement) or element.length == _UNDEFINED_LENGTH:
            continue
        if element.value_tell + element.length > file_size:
            raise UnreadableDicom("the file ends inside an element (truncated)")


def _check_pixel_data_complete(handle: BinaryIO, ds: Dataset, file_size: int) -> None:
    """Reject a file whose pixel data ends before its declared length (a truncated send).

    ``stop_before_pixels`` leaves the handle at the pixel data element; walk its header (and its
    fragments, when encapsulated) by seeking, so memory stays constant whatever the size.
    """
    meta = getattr(ds, "file_meta", None)
    syntax = pydicom.uid.UID(str(getattr(meta, "TransferSyntaxUID", "") or ""))
    if syntax == pydicom.uid.DeflatedExplicitVRLittleEndian or not syntax:
        return  # inflated by pydicom as a whole; truncation shows up as a parse error there
    little = syntax != pydicom.uid.ExplicitVRBigEndian
    explicit = syntax != pydicom.uid.ImplicitVRLittleEndian
    endian = "<" if little else ">"
    header = handle.read(8)
    if len(header) < 8:
        return  # no pixel data element
    group, element = struct.unpack(f"{endian}HH", header[:4])
    if (group << 16 | element) not in _PIXEL_TAGS:
        return
    if explicit and header[4:6] in (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"UT", b"SQ"):
        extra = handle.read(4)
        if len(extra) < 4:
            raise UnreadableDicom("pixel data truncated")
        (length,) = struct.unpack(f"{endian}L", extra)
    elif explicit:
        (length,) = struct.unpack(f"{endian}H", header[6:8])
    else:
        (length,) = struct.unpack(f"{endian}L", header[4:8])
    if length != _UNDEFINED_LENGTH:
        if handle.tell() + length > file_size:
            raise UnreadableDicom("pixel data shorter than declared (truncated)")
        return
    # Encapsulated: items until the sequence delimiter, each item seeked over.
    while True:
        item = handle.read(8)
        if len(item) < 8:
            raise UnreadableDicom("encapsulated pixel data ends without a sequence delimiter")
        tag_group, tag_element, item_length = struct.unpack(f"{endian}HHL", item)
        if (tag_group, tag_element) == (0xFFFE, 0xE0DD):
            return
        if (tag_group, tag_element) != (0xFFFE, 0xE000) or item_length == _UNDEFINED_LENGTH:
            raise UnreadableDicom("malformed encapsulated pixel data")
        if handle.tell() + item_length > file_size:
            raise UnreadableDicom("encapsulated pixel data truncated")
        handle.seek(item_length, 1)
