from __future__ import annotations

from pathlib import Path
from unittest import mock

import pydicom
import pytest
from django.db import OperationalError

from sharing.dicom.synthetic import ct_series, write_part10
from sharing.models import AuditEvent, Instance, InstanceConflict, Study
from sharing.services.audit import Client
from sharing.services.receiving import ReceiveOutcome, Sender, instance_receive
from sharing.storage import StorageUnavailable, get_store
from tests.support.storage import stored_keys

pytestmark = pytest.mark.django_db


def ct_sop_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


SENDER = Sender(source=Study.Source.DIMSE, label="PACS@10.0.0.5", client=Client(address="10.0.0.5"))


def test_it_stores_an_instance_byte_exact(ct_files, object_store):
    result = instance_receive(path=ct_files[0], sender=SENDER)

    assert result.outcome is ReceiveOutcome.STORED
    instance = Instance.objects.get(sop_instance_uid=ct_sop_uid(ct_files[0]))
    with get_store().open(instance.object_key) as handle:
        assert handle.read() == ct_files[0].read_bytes()
    assert instance.sender == "PACS@10.0.0.5"
    assert instance.size_bytes == ct_files[0].stat().st_size


def test_it_stores_the_same_instance_once(ct_files, object_store):
    first = instance_receive(path=ct_files[0], sender=SENDER)
    second = instance_receive(path=ct_files[0], sender=SENDER)

    assert second.outcome is ReceiveOutcome.DUPLICATE
    assert second.instance_id == first.instance_id
    assert Instance.objects.count() == 1
    assert len([k for k in stored_keys(object_store) if k.startswith("instances/")]) == 1


def test_it_keeps_the_original_and_records_a_conflicting_copy(ct_files, tmp_path, object_store):
    assert instance_receive(path=ct_files[0], sender=SENDER).outcome is ReceiveOutcome.STORED
    ds = pydicom.dcmread(ct_files[0])
    ds.SeriesDescription = "CHANGED"
    changed = write_part10(ds, tmp_path / "changed.dcm")

    result = instance_receive(path=changed, sender=SENDER)

    assert result.outcome is ReceiveOutcome.CONFLICT
    instance = Instance.objects.get(sop_instance_uid=ct_sop_uid(ct_files[0]))
    with get_store().open(instance.object_key) as handle:
        assert handle.read() == ct_files[0].read_bytes()
    conflict = InstanceConflict.objects.get(instance=instance)
    with get_store().open(conflict.object_key) as handle:
        assert handle.read() == changed.read_bytes()
    event = AuditEvent.objects.get(action=AuditEvent.Action.INGEST_CONFLICT)
    assert (event.actor_label, event.remote_addr) == ("PACS@10.0.0.5", "10.0.0.5")


def test_it_refuses_an_instance_that_is_not_the_one_announced(ct_files, object_store):
    result = instance_receive(path=ct_files[0], sender=SENDER, expected_sop_instance_uid="1.2.3.4")

    assert result.outcome is ReceiveOutcome.INVALID
    assert not Instance.objects.exists()
    assert stored_keys(object_store) == []


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("StudyInstanceUID", None),
        ("SOPInstanceUID", "1.2.3/../../etc"),
        ("SeriesInstanceUID", "1.2.3.abc"),
        ("StudyInstanceUID", "1." + "2" * 70),
    ],
)
def test_it_refuses_missing_or_malformed_identifiers(ct_files, tmp_path, object_store, keyword, value):
    ds = pydicom.dcmread(ct_files[0])
    if value is None:
        delattr(ds, keyword)
    else:
        setattr(ds, keyword, value)
    path = write_part10(ds, tmp_path / "bad.dcm")

    result = instance_receive(path=path, sender=SENDER)

    assert result.outcome is ReceiveOutcome.INVALID
    assert keyword in result.reason
    assert stored_keys(object_store) == []


def test_it_refuses_bytes_that_are_not_dicom(tmp_path, object_store):
    path = tmp_path / "junk.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 50)

    result = instance_receive(path=path, sender=SENDER)

    assert result.outcome is ReceiveOutcome.UNREADABLE
    assert stored_keys(object_store) == []


def test_it_refuses_a_truncated_instance(ct_files, tmp_path, object_store):
    data = ct_files[0].read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(data[: len(data) - 1000])

    result = instance_receive(path=path, sender=SENDER)

    assert result.outcome is ReceiveOutcome.UNREADABLE
    assert "truncated" in result.reason or "shorter" in result.reason


def test_it_answers_unavailable_and_records_nothing_when_the_store_is_down(ct_files, object_store):
    with mock.patch("sharing.storage.LocalObjectStore.put_file", side_effect=StorageUnavailable("down")):
        result = instance_receive(path=ct_files[0], sender=SENDER)

    assert result.outcome is ReceiveOutcome.UNAVAILABLE
    assert not Instance.objects.exists()
    retry = instance_receive(path=ct_files[0], sender=SENDER)
    assert retry.outcome is ReceiveOutcome.STORED


def test_it_leaves_no_orphan_object_when_the_database_is_down(ct_files, object_store):
    with mock.patch.object(Instance.objects, "create", side_effect=OperationalError("connection refused")):
        result = instance_receive(path=ct_files[0], sender=SENDER)

    assert result.outcome is ReceiveOutcome.UNAVAILABLE
    assert stored_keys(object_store) == []
    assert instance_receive(path=ct_files[0], sender=SENDER).outcome is ReceiveOutcome.STORED


def test_a_deeply_nested_sequence_does_not_crash_the_receiver(patient, tmp_path, object_store):
    ds = ct_series(patient, slices=1, size=16)[0]
    inner = pydicom.Dataset()
    inner.CodeMeaning = "leaf"
    for _ in range(200):
        outer = pydicom.Dataset()
        outer.ContentSequence = pydicom.Sequence([inner])
        inner = outer
    ds.ContentSequence = inner.ContentSequence
    path = write_part10(ds, tmp_path / "nested.dcm")

    result = instance_receive(path=path, sender=SENDER)

    assert result.outcome in (ReceiveOutcome.STORED, ReceiveOutcome.UNREADABLE)


def test_keys_come_from_server_side_ids_not_dicom_text(ct_files, object_store):
    result = instance_receive(path=ct_files[0], sender=SENDER)

    key = Instance.objects.get(sop_instance_uid=ct_sop_uid(ct_files[0])).object_key
    assert result.header is not None
    assert result.header.sop_instance_uid not in key
    assert key.startswith("instances/")
    assert key.endswith(".dcm")
