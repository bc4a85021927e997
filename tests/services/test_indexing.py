from __future__ import annotations

import datetime
import json

import pytest
from django.core import mail
from django.utils import timezone

from sharing.dicom.synthetic import (
    SyntheticPatient,
    ct_series,
    mr_series,
    sr_report,
    us_multiframe,
    write_study,
)
from sharing.dicomweb import wado
from sharing.dicomweb.wado import metadata_cache_key, series_metadata_prepare
from sharing.models import AuditEvent, Instance, Patient, Series, Study, User
from sharing.services.completion import studies_mark_complete
from sharing.services.indexing import instances_index_stragglers, study_index_claimed, study_index_pending
from sharing.services.receiving import ReceiveOutcome, Sender, instance_receive
from sharing.services.thumbnails import series_middle_instance, series_thumbnail_update
from sharing.storage import get_store

pytestmark = pytest.mark.django_db(transaction=True)
SENDER = Sender(source=Study.Source.DIMSE, label="PACS@10.0.0.5")


def receive_all(paths):
    results = [instance_receive(path=path, sender=SENDER) for path in paths]
    assert all(r.outcome is ReceiveOutcome.STORED for r in results)
    return results


def test_indexing_builds_patient_study_series_and_aggregates(tmp_path, patient):
    ct = ct_series(patient, slices=4, size=32)
    study_uid = ct[0].StudyInstanceUID
    report = sr_report(patient, study_uid=study_uid, text="No acute findings.")
    receive_all(write_study([*ct, report], tmp_path / "study"))

    study = Study.objects.get(study_instance_uid=study_uid)
    assert study.patient == Patient.objects.get(patient_id="MRN-1001", issuer="GENERAL")
    assert study.patient.name == "DOE^JANE"
    assert study.patient.birth_date == datetime.date(1980, 1, 1)
    assert study.number_of_instances == 5
    assert study.number_of_series == 2
    assert study.modalities == "CT\\SR"
    assert study.has_report
    assert study.size_bytes == sum(i.size_bytes for i in Instance.objects.all())
    assert set(Instance.objects.values_list("state", flat=True)) == {Instance.State.INDEXED}


def test_indexing_again_changes_nothing(tmp_path, patient):
    receive_all(write_study(ct_series(patient, slices=3, size=32), tmp_path / "ct"))
    study = Study.objects.get()

    summary = study_index_pending(study_instance_uid=study.study_instance_uid)

    assert summary.indexed == 0
    assert Study.objects.get().number_of_instances == 3


def test_each_series_gets_a_thumbnail_of_its_middle_image(tmp_path, patient):
    receive_all(write_study(mr_series(patient, slices=5, size=32), tmp_path / "mr"))

    for series in Series.objects.all():
        middle = series.instances.order_by("instance_number")[series.number_of_instances // 2]
        assert series.thumbnail_instance == middle
        assert series.thumbnail_kind == "image"
        with get_store().open(series.thumbnail_key) as handle:
            assert handle.read(2) == b"\xff\xd8"


def test_a_study_is_previewed_by_its_first_image_series_with_a_thumbnail(tmp_path, patient):
    second = mr_series(patient, slices=2, size=32, series_number=2)
    study_uid = str(second[0].StudyInstanceUID)
    report = sr_report(patient, study_uid=study_uid, text="Letter.")
    receive_all(write_study([report, *second], tmp_path / "second"))
    study = Study.objects.get()
    assert study.preview_series == Series.objects.get(series_number=2, modality="MR")

    # A series that comes first arrives later: it stands for the study once it has a thumbnail.
    first = mr_series(patient, slices=2, size=32, series_number=1, study_uid=study_uid, weighting="T1")
    receive_all(write_study(first, tmp_path / "first"))

    study.refresh_from_db()
    assert study.preview_series == Series.objects.get(series_number=1)
    assert study.preview_series.thumbnail_kind == "image"


def test_a_colour_multiframe_is_thumbnailed(tmp_path, patient):
    receive_all(write_study(us_multiframe(patient, frames=6, rows=60, cols=80), tmp_path / "us"))

    series = Series.objects.get()
    assert series.thumbnail_kind == "image"
    assert Instance.objects.get().number_of_frames == 6


def test_studies_of_a_linked_patient_reach_that_user(tmp_path, patient):
    user = User.objects.create_user("jane@example.com", "pw-123456789")
    Patient.objects.create(patient_id="MRN-1001", issuer="GENERAL", user=user)

    receive_all(write_study(ct_series(patient, slices=2, size=32), tmp_path / "ct"))

    assert Study.objects.get().patient.user == user
    assert Patient.objects.get().name == "DOE^JANE"


def test_unlinked_studies_wait_for_staff(tmp_path):
    stranger = SyntheticPatient(patient_id="UNKNOWN-7")
    receive_all(write_study(ct_series(stranger, slices=2, size=32), tmp_path / "ct"))

    assert Study.objects.get().patient.user is None


def test_a_quiet_study_is_completed_once_and_its_patient_emailed(settings, tmp_path, patient):
    settings.LIGHTBOX_STUDY_QUIET_SECONDS = 60
    user = User.objects.create_user("jane@example.com", "pw-123456789")
    Patient.objects.create(patient_id="MRN-1001", issuer="GENERAL", user=user)
    receive_all(write_study(ct_series(patient, slices=2, size=32), tmp_path / "ct"))

    assert studies_mark_complete() == []  # still within the quiet period
    later = timezone.now() + datetime.timedelta(seconds=61)
    marked = studies_mark_complete(now=later)
    again = studies_mark_complete(now=later)

    assert marked == [Study.objects.get().pk]
    assert again == []
    assert Study.objects.get().completed_at is not None
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["jane@example.com"]
    assert "DOE" not in mail.outbox[0].body  # no patient data in email
    assert AuditEvent.objects.filter(action=AuditEvent.Action.STUDY_COMPLETE).count() == 1


def test_a_study_with_pending_instances_is_not_completed(tmp_path, patient, monkeypatch):
    monkeypatch.setattr("sharing.services.receiving._enqueue_indexing", lambda study_instance_uid: None)
    paths = write_study(ct_series(patient, slices=2, size=32), tmp_path / "ct")
    receive_all(paths[:1])
    study_index_pending(study_instance_uid=Instance.objects.get().study_instance_uid)
    receive_all(paths[1:])  # received, not yet indexed

    later = timezone.now() + datetime.timedelta(hours=1)
    assert studies_mark_complete(now=later) == []


def test_a_series_still_receiving_keeps_its_thumbnail_until_it_settles(tmp_path, patient, monkeypatch):
    paths = write_study(ct_series(patient, slices=4, size=32), tmp_path / "ct")
    receive_all(paths[:1])
    series = Series.objects.get()
    first = series.thumbnail_instance
    monkeypatch.setattr("sharing.services.indexing._enqueue_thumbnails", lambda series_ids: None)
    receive_all(paths[1:])  # the middle is now another slice

    assert not series_thumbnail_update(series_id=series.pk, settle_seconds=60)
    assert Series.objects.get().thumbnail_instance == first

    Instance.objects.update(received_at=timezone.now() - datetime.timedelta(seconds=61))
    assert series_thumbnail_update(series_id=series.pk, settle_seconds=60)
    assert Series.objects.get().thumbnail_instance == series_middle_instance(series)
    assert Series.objects.get().thumbnail_instance != first


def test_one_queued_task_serves_a_whole_study_received_in_one_go(tmp_path, patient, monkeypatch):
    queued: list[str] = []
    monkeypatch.setattr(
        "sharing.tasks.index_study.apply_async", lambda args, countdown: queued.append(args[0])
    )
    receive_all(write_study(ct_series(patient, slices=6, size=16), tmp_path / "ct"))

    assert len(queued) == 1
    study_index_claimed(study_instance_uid=queued[0])
    assert Instance.objects.filter(state=Instance.State.INDEXED).count() == 6


def test_an_instance_committed_after_the_task_started_queues_another(tmp_path, patient, monkeypatch):
    queued: list[str] = []
    monkeypatch.setattr(
        "sharing.tasks.index_study.apply_async", lambda args, countdown: queued.append(args[0])
    )
    paths = write_study(ct_series(patient, slices=2, size=16), tmp_path / "ct")
    receive_all(paths[:1])
    study_index_claimed(study_instance_uid=queued[0])

    receive_all(paths[1:])

    assert len(queued) == 2


def test_stragglers_left_by_a_lost_task_are_queued_again(tmp_path, patient, monkeypatch):
    monkeypatch.setattr("sharing.services.receiving._enqueue_indexing", lambda study_instance_uid: None)
    receive_all(write_study(ct_series(patient, slices=2, size=16), tmp_path / "ct"))
    study_uid = Instance.objects.values_list("study_instance_uid", flat=True)[0]

    assert instances_index_stragglers() == []  # too recent to call lost
    later = timezone.now() + datetime.timedelta(minutes=3)
    assert instances_index_stragglers(now=later) == [study_uid]  # eager: indexed at once
    assert Instance.objects.filter(state=Instance.State.INDEXED).count() == 2


def test_series_metadata_is_ready_before_the_first_viewer(tmp_path, patient):
    receive_all(write_study(ct_series(patient, slices=3, size=16), tmp_path / "ct"))

    series = Series.objects.get()
    with get_store().open(metadata_cache_key(series)) as handle:
        cached = json.loads(handle.read())
    assert len(cached) == 3
    assert {item["00080018"]["Value"][0] for item in cached} == set(
        Instance.objects.values_list("sop_instance_uid", flat=True)
    )
    assert all(item["7FE00010"]["BulkDataURI"].endswith("/frames/1") for item in cached)


def test_where_the_frames_lie_is_ready_before_the_first_viewer(tmp_path, patient, monkeypatch):
    datasets = ct_series(patient, slices=3, size=16)
    receive_all(write_study(datasets, tmp_path / "ct"))

    def no_reading(handle):
        raise AssertionError("the first frame request read the stored file to find its frames")

    monkeypatch.setattr(wado, "frame_layout", no_reading)
    layouts = [wado.instance_layout(instance) for instance in Instance.objects.order_by("instance_number")]

    assert [layout.number_of_frames for layout in layouts] == [1, 1, 1]
    assert [end - start for layout in layouts for [(start, end)] in layout.frames] == [16 * 16 * 2] * 3


def test_a_series_still_receiving_waits_for_its_metadata(tmp_path, patient, monkeypatch):
    monkeypatch.setattr("sharing.services.indexing._enqueue_thumbnails", lambda series_ids: None)
    receive_all(write_study(ct_series(patient, slices=2, size=16), tmp_path / "ct"))
    series = Series.objects.get()

    assert not series_metadata_prepare(series_id=series.pk, settle_seconds=60)
    Instance.objects.update(received_at=timezone.now() - datetime.timedelta(seconds=61))
    assert series_metadata_prepare(series_id=series.pk, settle_seconds=60)
    assert not series_metadata_prepare(series_id=series.pk, settle_seconds=60)  # already there
