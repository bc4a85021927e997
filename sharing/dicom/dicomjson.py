"""Instance headers as DICOM JSON (PS3.18 Annex F), pixel data and large binaries as BulkDataURIs.

A large binary value is named by its tag path: tags (8 hex digits) and, inside sequences, item
indexes, joined by dots (``00420011``, ``00540016.0.00181078``). The same path finds the value
again in the stored file (`bulk_data_value`).
"""

from __future__ import annotations

import json
import re
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from sharing.dicom.errors import DicomInputError, UnreadableDicom
from sharing.dicom.render import _FAILURES

# Binary values above this size are sent by reference (a BulkDataURI the client fetches);
# smaller ones (LUTs, overlays, icons) travel inline, base64-encoded.
BULK_DATA_THRESHOLD = 64 * 1024
TAG_PATH = r"[0-9A-Fa-f]{8}(?:\.\d{1,6}\.[0-9A-Fa-f]{8}){0,16}"
_TAG_PATH = re.compile(rf"^{TAG_PATH}$")
_PIXEL_VR = {True: "OB", False: "OW"}
# VRs whose values are words of this many bytes: swapped when the file is big endian.
_WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


class BulkDataNotFound(DicomInputError):
    """No binary value at that tag path of the instance."""


def instance_json(
    handle: BinaryIO, *, pixel_data_uri: str, bulk_data_uri: str | None = None
) -> dict[str, Any]:
    """The header of the Part-10 file in `handle` as a DICOM JSON object, read up to the pixels.

    Large binary values get `bulk_data_uri` followed by their tag path as BulkDataURI; without a
    `bulk_data_uri` they are left out.
    """
    try:
        ds = _read_header(handle)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        # A deflated file's position says nothing about what follows: an image header must do.
        deflated = bool(syntax) and pydicom.uid.UID(str(syntax)).is_deflated
        has_pixels = _pixel_data_follows(handle) or (deflated and "Rows" in ds and "BitsAllocated" in ds)
        result: dict[str, Any] = ds.to_json_dict(
            bulk_data_threshold=BULK_DATA_THRESHOLD, bulk_data_element_handler=_omitted
        )
    except _FAILURES as exc:
        raise UnreadableDicom("cannot read this instance's header") from exc
    result = _with_bulk_data_uris(result, bulk_data_uri, "")
    if has_pixels:
        compressed = bool(syntax) and pydicom.uid.UID(str(syntax)).is_compressed
        result["7FE00010"] = {"vr": _PIXEL_VR[compressed], "BulkDataURI": pixel_data_uri}
    return dict(sorted(result.items()))


_OMITTED = "urn:lightbox:omitted"


def _omitted(element: DataElement) -> str:
    return _OMITTED


def _with_bulk_data_uris(dataset: dict[str, Any], base: str | None, prefix: str) -> dict[str, Any]:
    """Large binaries pointed at by `base` + tag path, or left out when there is no `base`."""
    kept = {}
    for tag, value in dataset.items():
        if value.get("BulkDataURI") == _OMITTED:
            if base is None:
                continue
            value = {**value, "BulkDataURI": f"{base}{prefix}{tag}"}
        if value.get("vr") == "SQ" and "Value" in value:
            items = [
                _with_bulk_data_uris(item, base, f"{prefix}{tag}.{index}.")
                for index, item in enumerate(value["Value"])
            ]
            value = {**value, "Value": items}
        kept[tag] = value
    return kept


def _read_header(handle: BinaryIO) -> Dataset:
    try:
        return pydicom.dcmread(handle, stop_before_pixels=True)
    except InvalidDicomError:
        handle.seek(0)
        return pydicom.dcmread(handle, stop_before_pixels=True, force=True)


def is_tag_path(text: str) -> bool:
    return bool(_TAG_PATH.match(text))


def bulk_data_value(handle: BinaryIO, *, tag_path: str) -> bytes:
    """The binary value at `tag_path` in the header of the Part-10 file in `handle`, its words
    in little endian order whatever the file's. Raises BulkDataNotFound."""
    if not is_tag_path(tag_path):
        raise BulkDataNotFound("not a tag path")
    parts = tag_path.split(".")
    try:
        ds = _read_header(handle)
        big_endian = ds.original_encoding[1] is False
        current: Dataset = ds
        for position in range(0, len(parts) - 1, 2):
            sequence = current.get(Tag(int(parts[position], 16)))
            index = int(parts[position + 1])
            if sequence is None or sequence.VR != "SQ" or index >= len(sequence.value):
                raise BulkDataNotFound("no such item")
            current = sequence.value[index]
        element = current.get(Tag(int(parts[-1], 16)))
        value = element.value if element is not None else None
        vr = str(element.VR) if element is not None else ""
    except BulkDataNotFound:
        raise
    except _FAILURES as exc:
        raise UnreadableDicom("cannot read this instance's header") from exc
    if not isinstance(value, bytes | bytearray):
        raise BulkDataNotFound("no binary value there")
    data = bytes(value)
    size = _WORD_SIZES.get(vr, 1)
    if big_endian and size > 1 and len(data) % size == 0:
        data = np.frombuffer(data, dtype=f">u{size}").astype(f"<u{size}").tobytes()
    return data


def _pixel_data_follows(handle: BinaryIO) -> bool:
    tag = handle.read(4)
    return tag in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")


def dumps(instances: list[dict[str, Any]]) -> bytes:
    return json.dumps(instances, separators=(",", ":")).encode()
