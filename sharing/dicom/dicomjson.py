"""Instance headers as DICOM JSON (PS3.18 Annex F), pixel data replaced by a BulkDataURI."""

from __future__ import annotations

import json
from typing import Any, BinaryIO

import pydicom
from pydicom.dataelem import DataElement
from pydicom.errors import InvalidDicomError

from sharing.dicom.errors import UnreadableDicom
from sharing.dicom.render import _FAILURES

# Binary values above this size are left out of the JSON (the client fetches frames instead);
# smaller ones (LUTs, overlays, icons) travel inline, base64-encoded.
BULK_DATA_THRESHOLD = 64 * 1024
_PIXEL_VR = {True: "OB", False: "OW"}


def instance_json(handle: BinaryIO, *, pixel_data_uri: str) -> dict[str, Any]:
    """The header of the Part-10 file in `handle` as a DICOM JSON object, read up to the pixels."""
    try:
        try:
            ds = pydicom.dcmread(handle, stop_before_pixels=True)
        except InvalidDicomError:
            handle.seek(0)
            ds = pydicom.dcmread(handle, stop_before_pixels=True, force=True)
        has_pixels = _pixel_data_follows(handle)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        result: dict[str, Any] = ds.to_json_dict(
            bulk_data_threshold=BULK_DATA_THRESHOLD, bulk_data_element_handler=_omitted
        )
    except _FAILURES as exc:
        raise UnreadableDicom("cannot read this instance's header") from exc
    # Large binaries other than pixel data have no endpoint of their own yet: leave them out
    # rather than point at nothing.
    result = _without_omitted(result)
    if has_pixels:
        compressed = bool(syntax) and pydicom.uid.UID(str(syntax)).is_compressed
        result["7FE00010"] = {"vr": _PIXEL_VR[compressed], "BulkDataURI": pixel_data_uri}
    return dict(sorted(result.items()))


_OMITTED = "urn:lightbox:omitted"


def _omitted(element: DataElement) -> str:
    return _OMITTED


def _without_omitted(dataset: dict[str, Any]) -> dict[str, Any]:
    kept = {}
    for tag, value in dataset.items():
        if value.get("BulkDataURI") == _OMITTED:
            continue
        if value.get("vr") == "SQ" and "Value" in value:
            value = {**value, "Value": [_without_omitted(item) for item in value["Value"]]}
        kept[tag] = value
    return kept


def _pixel_data_follows(handle: BinaryIO) -> bool:
    tag = handle.read(4)
    return tag in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")


def dumps(instances: list[dict[str, Any]]) -> bytes:
    return json.dumps(instances, separators=(",", ":")).encode()
