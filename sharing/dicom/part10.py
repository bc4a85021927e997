"""Telling what a file on a CD, a USB stick or in a zip is, before anything tries to store it.

Only the 132-byte preamble and, for DICOM files, the file meta group are read: a folder of
thousands of files is sorted quickly, and the full validation stays in ``header.read_header``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.filereader import read_file_meta_info

from sharing.dicom.header import PARSE_ERRORS, is_valid_uid

PREAMBLE_LENGTH = 128
MAGIC = b"DICM"
# Media Storage Directory Storage: the SOP class of a DICOMDIR (PS3.10 §7.2, PS3.3 F).
MEDIA_STORAGE_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"


class Part10Kind(enum.StrEnum):
    INSTANCE = "instance"  # a Part-10 file holding one SOP instance: hand it to the receiver
    DIRECTORY = "directory"  # a DICOMDIR: an index of the other files, no image of its own
    NOT_DICOM = "not-dicom"


def has_part10_magic(path: Path) -> bool:
    """A Part-10 file starts with a 128-byte preamble followed by the letters DICM."""
    try:
        with path.open("rb") as handle:
            head = handle.read(PREAMBLE_LENGTH + len(MAGIC))
    except OSError:
        return False
    return head[PREAMBLE_LENGTH:] == MAGIC


def part10_kind(path: Path) -> Part10Kind:
    if not has_part10_magic(path):
        return Part10Kind.NOT_DICOM
    try:
        meta = read_file_meta_info(path)
        sop_class = str(meta.get("MediaStorageSOPClassUID", "") or "")
    except PARSE_ERRORS:
        # DICM but a damaged meta group: the receiver reports exactly what is wrong.
        return Part10Kind.INSTANCE
    if sop_class == MEDIA_STORAGE_DIRECTORY_SOP_CLASS:
        return Part10Kind.DIRECTORY
    return Part10Kind.INSTANCE


@dataclass(frozen=True)
class Part10Identity:
    sop_class_uid: str = ""
    sop_instance_uid: str = ""


def part10_identity(path: Path) -> Part10Identity:
    """The SOP Class and Instance UIDs of a file that may be refused, to say which one it was.

    Best effort: whatever cannot be read, or is not a well-formed UID, comes back empty.
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
        meta = getattr(ds, "file_meta", None)
        sop_class = str(ds.get("SOPClassUID") or getattr(meta, "MediaStorageSOPClassUID", "") or "")
        sop_instance = str(ds.get("SOPInstanceUID") or getattr(meta, "MediaStorageSOPInstanceUID", "") or "")
    except PARSE_ERRORS:
        return Part10Identity()
    return Part10Identity(
        sop_class_uid=sop_class if is_valid_uid(sop_class) else "",
        sop_instance_uid=sop_instance if is_valid_uid(sop_instance) else "",
    )


# VRs whose explicit little endian element has a 4-byte length after two reserved bytes (PS3.5 7.1.2).
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)


def dataset_offset(path: Path) -> int:
    """Where the data set starts: after the preamble, DICM and the file meta group (group 0002).

    Every receiver writes a meta group of its own (implementation UID, source AE), so two copies of
    one instance are compared from here on. A file without a meta group starts at 0.
    """
    with path.open("rb") as handle:
        if handle.read(PREAMBLE_LENGTH + len(MAGIC))[PREAMBLE_LENGTH:] != MAGIC:
            return 0
        offset = PREAMBLE_LENGTH + len(MAGIC)
        while True:
            head = handle.read(8)
            if len(head) < 8 or head[:2] != b"\x02\x00":
                return offset
            vr = head[4:6]
            if vr in _LONG_VRS:
                extra = handle.read(4)
                if len(extra) < 4:
                    return offset
                length = int.from_bytes(extra, "little")
                header_length = 12
            else:
                length = int.from_bytes(head[6:8], "little")
                header_length = 8
            if length == 0xFFFFFFFF:
                return offset  # an undefined length has no place in the meta group
            offset += header_length + length
            handle.seek(offset)
