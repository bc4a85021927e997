"""Every file of the shared DICOM corpus, sent as raw bytes to the real Storage SCP.

An independent oracle (pydicom, read here in the test) says what each file should become: stored
byte-exact, a conflict with an earlier file of the same SOP Instance UID, or refused. Files the
corpus marks MALFORMED must be refused or end up stored but flagged "cannot display". After every
file the SCP must still answer C-ECHO.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE, _config

from sharing.dicom.header import is_valid_uid
from sharing.models import Instance, InstanceConflict, Series
from sharing.storage import get_store
from tests.support.corpus import CORPUS_DIR, corpus_files

pytestmark = [
    pytest.mark.integration,
    pytest.mark.corpus,
    pytest.mark.skipif(
        not (CORPUS_DIR / "MANIFEST.tsv").exists(), reason="no DICOM corpus beside the checkout"
    ),
]

REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


def dataset_offset(data: bytes) -> int | None:
    """Where the data set starts after the preamble and explicit little endian file meta."""
    if data[128:132] != b"DICM":
        return None
    offset = 132
    while offset + 8 <= len(data):
        group, _element = struct.unpack_from("<HH", data, offset)
        if group != 0x0002:
            return offset
        vr = data[offset + 4 : offset + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR", b"OF", b"OD", b"OL", b"OV"):
            (length,) = struct.unpack_from("<L", data, offset + 8)
            offset += 12 + length
        else:
            (length,) = struct.unpack_from("<H", data, offset + 6)
            offset += 8 + length
    return None


def expected_identity(path: Path) -> str | None:
    """The SOP Instance UID if the file carries every identifier Lightbox requires, else None.

    A Patient ID is not among them: it is Type 2, and an instance without one is stored and waits
    for staff (sharing.services.identity)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            values = [str(ds.get(keyword) or "") for keyword in REQUIRED]
            announced = str(getattr(ds.file_meta, "MediaStorageSOPInstanceUID", "") or values[1])
        except Exception:
            return None
    if not all(is_valid_uid(value) for value in values):
        return None
    if announced != values[1]:
        return None  # the C-STORE command announces the meta's UID: a mismatch is refused
    return values[1]


def send_raw(path: Path, port: int) -> int | None:
    """C-STORE the file's encoded data set as is (no decoding). None: the SCU could not send it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            meta = pydicom.filereader.read_file_meta_info(path)
            sop_class, syntax = str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)
        except Exception:
            return None
    ae = AE(ae_title="CORPUS")
    ae.add_requested_context(sop_class, syntax)
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title="LIGHTBOX")
        if not assoc.is_established:
            return None
        try:
            status = assoc.send_c_store(path)
        except Exception:
            return None
        finally:
            assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
    return int(status.Status) if status and "Status" in status else None


def echo_ok(port: int) -> bool:
    ae = AE(ae_title="CORPUS")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="LIGHTBOX")
    try:
        return bool(assoc.is_established and assoc.send_c_echo().Status == 0)
    finally:
        if assoc.is_established:
            assoc.release()


def test_every_corpus_file_is_stored_exactly_or_refused_and_the_scp_survives(scp):
    files = corpus_files()
    assert len(files) > 250
    first_bytes: dict[str, bytes] = {}
    outcomes: dict[str, str] = {}
    for item in files:
        data = item.path.read_bytes()
        status = send_raw(item.path, scp.port)
        assert echo_ok(scp.port), f"SCP stopped answering C-ECHO after {item.path.name}"
        sop_uid = expected_identity(item.path)
        if status is None:
            outcomes[str(item.path)] = "unsendable"
            continue
        if status != 0x0000:
            outcomes[str(item.path)] = f"refused {status:#06x}"
            # A file with every identifier, whose UID is new, may only be refused if malformed.
            assert sop_uid is None or sop_uid in first_bytes or item.malformed, (
                f"{item.path.name} refused with {status:#06x}"
            )
            if sop_uid in first_bytes and not item.malformed and status == 0x0111:
                assert InstanceConflict.objects.filter(instance__sop_instance_uid=sop_uid).exists()
            continue
        outcomes[str(item.path)] = "stored"
        assert sop_uid is not None, f"{item.path.name} lacks required identifiers but was accepted"
        instance = Instance.objects.get(sop_instance_uid=sop_uid)
        with get_store().open(instance.object_key) as handle:
            stored = handle.read()
        assert hashlib.sha256(stored).hexdigest() == instance.sha256
        offset, stored_offset = dataset_offset(data), dataset_offset(stored)
        assert offset is not None
        assert stored_offset is not None
        if sop_uid not in first_bytes:
            # The data set travels byte for byte; only the file meta is the receiver's own.
            assert stored[stored_offset:] == data[offset:], f"{item.path.name} not stored byte-exact"
            first_bytes[sop_uid] = data[offset:]
        else:
            assert data[offset:] == first_bytes[sop_uid], (
                f"{item.path.name}: same UID, different bytes, accepted"
            )

    for item in files:
        if item.malformed and outcomes[str(item.path)] == "stored":
            sop_uid = expected_identity(item.path)
            series = Series.objects.get(instances__sop_instance_uid=sop_uid)
            if series.thumbnail_instance and series.thumbnail_instance.sop_instance_uid == sop_uid:
                assert series.thumbnail_kind in ("unreadable", "other"), f"{item.path.name} shown as fine"

    assert not Instance.objects.exclude(state=Instance.State.INDEXED).exists()
    assert not Series.objects.filter(thumbnail_kind="").exists()
    print(Counter(outcomes.values()))
    assert Instance.objects.count() == len(first_bytes)
