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
