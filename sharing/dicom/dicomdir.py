"""Writing a DICOMDIR (PS3.10 media storage directory) without holding the instances.

pydicom's ``FileSet`` builds correct directory records but insists on writing (copying) every
instance file into the file-set itself, and names them after its own scheme. A download is
streamed straight from object storage instead, so this module takes only each instance's header,
lets pydicom's own record creators make the PATIENT/STUDY/SERIES/leaf records (IMAGE, SR DOCUMENT,
ENCAP DOC, …, exactly as ``FileSet`` would), keeps each record encoded (a few hundred bytes per
instance), and writes the DICOMDIR with the offsets filled in at the end.

File IDs are chosen by the caller from Lightbox's own counters, never from DICOM text.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

import pydicom
from pydicom import fileset
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset, write_file_meta_info
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
)

from sharing.dicom.errors import UnreadableDicom

# Each component of a File ID: at most 8 of uppercase A-Z, digits and underscore (PS3.10 8.2, 8.5).
_COMPONENT = re.compile(r"^[A-Z0-9_]{1,8}$")
_MAX_COMPONENTS = 8
_FILE_SET_ID = "LIGHTBOX"
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
# Offset Of The Next Directory Record, Offset Of Referenced Lower Level Directory Entity.
_NEXT, _LOWER = 0x00041400, 0x00041420
_ITEM, _SEQUENCE_DELIMITER = b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
# Type 1 attributes the record creators demand, with what dcmmkdir's "invent" mode would write
# when an instance lacks them: the DICOMDIR must stay valid even for sloppy senders.
_INVENTED = {
    "PatientID": "UNKNOWN",
    "StudyDate": "19000101",
    "StudyTime": "000000",
    "StudyID": "1",
    "Modality": "OT",
    "SeriesNumber": "1",
    "InstanceNumber": "1",
    "CompletionFlag": "PARTIAL",
    "VerificationFlag": "UNVERIFIED",
    "ContentDate": "19000101",
    "ContentTime": "000000",
}
_PARSE_ERRORS = (
    pydicom.errors.InvalidDicomError, ValueError, TypeError, KeyError, IndexError, AttributeError,
    NotImplementedError, EOFError, OverflowError, struct.error, UnicodeError, RecursionError,
)  # fmt: skip


class HeaderIncomplete(Exception):
    """The bytes given end before the header does: offer the whole file instead."""


def file_id_component(letter: str, index: int) -> str:
    """``P0000001``-style component: one letter and a 7-digit counter (ISO 9660 safe)."""
    component = f"{letter}{index:07d}"
    if not _COMPONENT.match(component):
        raise ValueError(f"not a valid File ID component: {component!r}")
    return component


@dataclass(slots=True)
class _Node:
    record: bytes = b""
    next_at: int = 0  # positions of the two offset values within the encoded record
    lower_at: int = 0
    children: dict[str, _Node] = field(default_factory=dict)
    next_sibling: _Node | None = None
    offset: int = 0

    def child(self, key: str, record: Dataset) -> _Node:
        found = self.children.get(key)
        if found is None:
            found = _encode(record)
            if self.children:
                list(self.children.values())[-1].next_sibling = found
            self.children[key] = found
        return found


class DicomdirBuilder:
    """Collect instance headers, then write one DICOMDIR referencing them all."""

    def __init__(self) -> None:
        self._root = _Node()
        self._uid = pydicom.uid.generate_uid()
        self.count = 0

    def add(self, source: BinaryIO, *, file_id: Sequence[str], whole: bool) -> None:
        """Add the instance whose Part-10 bytes start ``source``, stored as ``file_id``.

        ``whole`` says whether ``source`` holds the entire file; if it holds only a prefix and the
        header runs past it, ``HeaderIncomplete`` is raised. ``UnreadableDicom`` if it is not DICOM.
        """
        if not 1 <= len(file_id) <= _MAX_COMPONENTS or not all(_COMPONENT.match(c) for c in file_id):
            raise ValueError(f"not a valid File ID: {file_id!r}")
        header = _read_header(source, whole=whole)
        records = _records(header)
        records[-1].ReferencedFileID = list(file_id)
        records[-1].ReferencedSOPClassUIDInFile = header.SOPClassUID
        records[-1].ReferencedSOPInstanceUIDInFile = header.SOPInstanceUID
        records[-1].ReferencedTransferSyntaxUIDInFile = header.file_meta.TransferSyntaxUID
        node = self._root
        keys = [str(records[0].PatientID), str(header.StudyInstanceUID)]
        keys += [str(header.SeriesInstanceUID), str(header.SOPInstanceUID)]
        for key, record in zip(keys, records, strict=True):
            node = node.child(key, record)
        self.count += 1

    def chunks(self) -> Iterator[bytes]:
        """The DICOMDIR file, in pieces: preamble and meta, then the directory records."""
        nodes = list(_preorder(self._root))
        head_length = len(self._head(0, 0))
        offset = head_length + 12  # the Directory Record Sequence's tag, VR, reserved, length
        for node in nodes:
            node.offset = offset
            offset += 8 + len(node.record)
        roots = list(self._root.children.values())
        first, last = (roots[0].offset, roots[-1].offset) if roots else (0, 0)
        yield self._head(first, last) + b"\x04\x00\x20\x12SQ\x00\x00\xff\xff\xff\xff"
        for node in nodes:
            record = bytearray(node.record)
            following = node.next_sibling.offset if node.next_sibling else 0
            struct.pack_into("<I", record, node.next_at, following)
            lower = next(iter(node.children.values())).offset if node.children else 0
            struct.pack_into("<I", record, node.lower_at, lower)
            yield _ITEM + struct.pack("<I", len(record)) + bytes(record)
        yield _SEQUENCE_DELIMITER

    def _head(self, first: int, last: int) -> bytes:
        """Preamble, file meta and the DICOMDIR elements before the Directory Record Sequence."""
        ds = Dataset()
        ds.FileSetID = _FILE_SET_ID
        ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = first
        ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = last
        ds.FileSetConsistencyFlag = 0
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
        meta.MediaStorageSOPInstanceUID = self._uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        out = DicomBytesIO()
        out.is_little_endian, out.is_implicit_VR = True, False
        out.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(out, meta, enforce_standard=True)
        write_dataset(out, ds)
        return bytes(out.getvalue())


def _preorder(root: _Node) -> Iterator[_Node]:
    """Depth-first, parents before children: the order FileSet writes, and readers expect."""
    for node in root.children.values():
        yield node
        yield from _preorder(node)


def _read_header(source: BinaryIO, *, whole: bool) -> Dataset:
    try:
        ds = pydicom.dcmread(source, stop_before_pixels=True)
        if not whole:
            tag = source.read(4)
            little = ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian) != ExplicitVRBigEndian
            group, element = struct.unpack("<HH" if little else ">HH", tag) if len(tag) == 4 else (0, 0)
            if group << 16 | element not in _PIXEL_TAGS:
                raise HeaderIncomplete  # stopped at the end of the bytes, not at the pixel data
    except HeaderIncomplete:
        raise
    except _PARSE_ERRORS as exc:
        if not whole:
            raise HeaderIncomplete from exc
        raise UnreadableDicom(f"cannot read the header: {type(exc).__name__}") from exc
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if not ds.get(keyword):
            raise UnreadableDicom(f"header lacks {keyword}")
    if not ds.file_meta.get("TransferSyntaxUID"):
        raise UnreadableDicom("no transfer syntax")
    return ds


def _records(ds: Dataset) -> list[Dataset]:
    """PATIENT, STUDY, SERIES and leaf records, as pydicom's FileSet would make them."""
    filled = Dataset({element.tag: element for element in ds})  # ds itself is left as it was
    filled.file_meta = ds.file_meta
    for keyword, value in _INVENTED.items():
        if keyword not in filled or filled[keyword].VM == 0:
            setattr(filled, keyword, value)
    if "ConceptNameCodeSequence" not in filled or not filled.ConceptNameCodeSequence:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "18748-4", "LN", "Report"
        filled.ConceptNameCodeSequence = [code]
    leaf_type = fileset._four_level_record_type(filled)  # the choice FileSet.add() makes
    records = []
    for record_type in ("PATIENT", "STUDY", "SERIES", leaf_type):
        try:
            record = fileset.DIRECTORY_RECORDERS[record_type](filled)
        except (ValueError, KeyError, AttributeError) as exc:
            raise UnreadableDicom(f"cannot make a {record_type} record: {exc}") from exc
        record.OffsetOfTheNextDirectoryRecord = 0
        record.RecordInUseFlag = 0xFFFF
        record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
        record.DirectoryRecordType = record_type
        if "SpecificCharacterSet" in ds:
            record.SpecificCharacterSet = ds.SpecificCharacterSet
        records.append(record)
    return records


def _encode(record: Dataset) -> _Node:
    """Encode a record as Explicit VR Little Endian, noting where its two offsets sit."""
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    encoding = record.get("SpecificCharacterSet", "iso8859")
    node = _Node()
    for tag in sorted(record.keys()):
        if tag == _NEXT:
            node.next_at = out.tell() + 8  # UL: tag, VR and 2-byte length, then the value
        elif tag == _LOWER:
            node.lower_at = out.tell() + 8
        write_data_element(out, record[tag], encoding)
    node.record = bytes(out.getvalue())
    return node
