"""The Storage SCP against dcmtk's echoscu and storescu, as a PACS would talk to it."""

from __future__ import annotations

import subprocess
import time

import pydicom
import pytest

from sharing.dicom.synthetic import SyntheticPatient, ct_series, pdf_report, write_part10, write_study
from sharing.models import AuditEvent, Instance, Series, Study
from sharing.storage import get_store
from tests.support.binaries import require_binary
from tests.support.scp import running_scp, storescu

pytestmark = pytest.mark.integration


def echoscu(scp, env, *, calling_ae: str = "ECHOSCU") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("echoscu"), "-aet", calling_ae, "-aec", scp.ae_title, scp.host, str(scp.port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_it_answers_c_echo(scp, dcmtk_env):
    result = echoscu(scp, dcmtk_env)

    assert result.returncode == 0, result.stderr


def test_a_study_sent_with_storescu_is_stored_indexed_and_thumbnailed(scp, dcmtk_env, ct_files):
    result = storescu(scp, dcmtk_env, *ct_files)

    assert result.returncode == 0, result.stderr
    assert Instance.objects.filter(state=Instance.State.INDEXED).count() == len(ct_files)
    study = Study.objects.get()
    assert study.number_of_instances == len(ct_files)
    assert study.modalities == "CT"
    assert study.patient.patient_id == "MRN-1001"
    assert study.patient.issuer == "GENERAL"
    series = Series.objects.get()
    assert series.thumbnail_kind == "image"
    with get_store().open(series.thumbnail_key) as handle:
        assert handle.read(3) == b"\xff\xd8\xff"  # a JPEG
    for instance in Instance.objects.all():
        with get_store().open(instance.object_key) as handle:
            stored = pydicom.dcmread(handle)
        original = pydicom.dcmread(
            next(p for p in ct_files if pydicom.dcmread(p).SOPInstanceUID == instance.sop_instance_uid)
        )
        assert stored.PixelData == original.PixelData


def test_each_association_writes_one_audit_event_per_study(scp, dcmtk_env, ct_files):
    storescu(scp, dcmtk_env, *ct_files)

    # The SCP writes it once the association is released, which storescu does not wait for.
    deadline = time.monotonic() + 10
    while not AuditEvent.objects.filter(action=AuditEvent.Action.INGEST).exists():
        assert time.monotonic() < deadline, "no ingest audit event"
        time.sleep(0.05)
    event = AuditEvent.objects.get(action=AuditEvent.Action.INGEST)
    assert event.actor_kind == AuditEvent.ActorKind.PEER
    assert event.actor_label == "PACS@127.0.0.1"
    assert event.detail["instances"] == len(ct_files)
    assert event.detail["stored"] == len(ct_files)
    assert event.outcome == AuditEvent.Outcome.SUCCESS
    assert event.study_instance_uid == Study.objects.get().study_instance_uid


def test_sending_the_same_study_twice_stores_it_once(scp, dcmtk_env, ct_files):
    assert storescu(scp, dcmtk_env, *ct_files).returncode == 0
    again = storescu(scp, dcmtk_env, *ct_files)

    assert again.returncode == 0, again.stderr
    assert Instance.objects.count() == len(ct_files)


def test_a_mismatched_instance_gets_a_failure_status_and_is_not_stored(scp, dcmtk_env, patient, tmp_path):
    ds = ct_series(patient, slices=1, size=16)[0]
    del ds.StudyInstanceUID
    path = write_part10(ds, tmp_path / "no-study.dcm")

    result = storescu(scp, dcmtk_env, path)

    assert "DataSetDoesNotMatchSOPClass" in result.stdout + result.stderr  # 0xA900
    assert not Instance.objects.exists()
    assert echoscu(scp, dcmtk_env).returncode == 0


def test_objects_without_pixels_get_a_typed_placeholder(scp, dcmtk_env, patient, tmp_path):
    path = write_part10(pdf_report(patient, study_uid=pydicom.uid.generate_uid()), tmp_path / "report.dcm")

    assert storescu(scp, dcmtk_env, path).returncode == 0

    series = Series.objects.get()
    assert series.thumbnail_kind == "document"
    assert Study.objects.get().has_report


def test_only_listed_calling_aes_may_store_when_configured(transactional_db, dcmtk_env, ct_files):
    with running_scp(allowed_aes=["PACS"]) as scp:
        refused = storescu(scp, dcmtk_env, ct_files[0], calling_ae="INTRUDER")
        accepted = storescu(scp, dcmtk_env, ct_files[0], calling_ae="PACS")

    assert refused.returncode != 0
    assert "rejected" in (refused.stdout + refused.stderr).lower()
    assert accepted.returncode == 0, accepted.stderr
    assert Instance.objects.count() == 1


def test_an_allowed_ae_title_from_the_wrong_host_is_refused(transactional_db, dcmtk_env, ct_files):
    with running_scp(allowed_aes=["PACS@10.9.9.9"]) as scp:
        result = storescu(scp, dcmtk_env, ct_files[0], calling_ae="PACS")

    assert result.returncode != 0
    assert not Instance.objects.exists()


def test_the_allow_list_comes_from_the_environment_by_default(
    settings, transactional_db, dcmtk_env, ct_files
):
    settings.LIGHTBOX_SCP_ALLOWED_AES = ["PACS@127.0.0.1"]
    with running_scp() as scp:
        refused = storescu(scp, dcmtk_env, ct_files[0], calling_ae="OTHER")
        accepted = storescu(scp, dcmtk_env, ct_files[0], calling_ae="PACS")

    assert refused.returncode != 0
    assert accepted.returncode == 0, accepted.stderr


def test_hostile_text_is_stored_as_inert_text(scp, dcmtk_env, tmp_path):
    hostile = SyntheticPatient(patient_id="X<script>1", name="<img src=x onerror=alert(1)>^EVIL")
    ds = ct_series(hostile, slices=1, size=16)[0]
    ds.StudyDescription = "line one\r\nline two"
    path = write_study([ds], tmp_path / "hostile")[0]

    assert storescu(scp, dcmtk_env, path).returncode == 0

    study = Study.objects.select_related("patient").get()
    assert study.patient.name == "<img src=x onerror=alert(1)>^EVIL"
    assert "\r" not in study.description
    assert "\n" not in study.description
    assert "script" not in Instance.objects.get().object_key
