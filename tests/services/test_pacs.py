"""Records staff search the PACS and retrieve studies into Lightbox: jobs, progress, audit, requests."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from sharing.dicom.qr import MoveOutcome, MoveProgress, MoveResult, PacsUnreachable
from sharing.dicom.synthetic import SyntheticPatient, cr_image, ct_series, write_study
from sharing.models import (
    AuditEvent,
    Instance,
    PacsNode,
    RetrieveJob,
    Study,
    User,
)
from sharing.services import pacs as pacs_service
from sharing.services.audit import NO_CLIENT, Client
from sharing.services.pacs import (
    pacs_echo,
    pacs_search,
    retrievals_attach,
    retrieve_run,
    retrieve_start,
)
from tests.support.factories import records_staff
from tests.support.network import free_port
from tests.support.orthanc import Orthanc, running_orthanc
from tests.support.pacs import authorization

pytestmark = pytest.mark.integration

JANE = SyntheticPatient(patient_id="PACS-1001", issuer="HOSP", name="DOE^JANE", birth_date="19800101")


@dataclass
class Pacs:
    orthanc: Orthanc
    ct_uid: str
    cr_uid: str


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory) -> Iterator[Pacs]:
    tmp = tmp_path_factory.mktemp("pacs")
    ct = ct_series(JANE, slices=3, size=32, study_date="20260115")
    cr = cr_image(JANE, rows=64, cols=48)
    modalities = {"lightbox": ("LIGHTBOX", "127.0.0.1", free_port())}
    with running_orthanc(
        tmp / "orthanc", http_port=free_port(), dicom_port=free_port(), modalities=modalities
    ) as running:
        running.upload_all(write_study([*ct, *cr], tmp / "studies"))
        yield Pacs(running, str(ct[0].StudyInstanceUID), str(cr[0].StudyInstanceUID))


def pacs_node(orthanc: Orthanc) -> PacsNode:
    return PacsNode.objects.create(
        name="Main PACS", ae_title=orthanc.ae_title, host="127.0.0.1", port=orthanc.dicom_port
    )


def down_node() -> PacsNode:
    return PacsNode.objects.create(name="Down PACS", ae_title="DOWN", host="127.0.0.1", port=free_port())


@pytest.fixture
def staff(transactional_db) -> User:
    return records_staff()


@pytest.fixture
def lightbox_in_pacs(orthanc: Pacs, scp) -> Pacs:
    """Orthanc knows this test's SCP as LIGHTBOX, the move destination."""
    orthanc.orthanc.modality_set("lightbox", scp.ae_title, scp.host, scp.port)
    return orthanc


def test_echo_reports_the_round_trip(orthanc, staff):
    result = pacs_echo(node=pacs_node(orthanc.orthanc), actor=staff)

    assert result.ok
    assert "ms" in result.message


def test_echo_is_for_staff_only(orthanc, transactional_db):
    patient = User.objects.create_user("jane@example.com", "pw-123456789")

    with pytest.raises(PermissionDenied):
        pacs_echo(node=pacs_node(orthanc.orthanc), actor=patient)


def test_search_returns_matches_and_audits_criteria_and_count(orthanc, staff):
    matches = pacs_search(
        node=pacs_node(orthanc.orthanc),
        actor=staff,
        client=Client(address="10.0.0.9"),
        patient_id="PACS-1001",
    )

    assert {m.study_instance_uid for m in matches} == {orthanc.ct_uid, orthanc.cr_uid}
    event = AuditEvent.objects.get(action=AuditEvent.Action.PACS_QUERY)
    assert event.actor_user == staff
    assert event.remote_addr == "10.0.0.9"
    assert event.outcome == AuditEvent.Outcome.SUCCESS
    assert event.detail == {
        "pacs": "Main PACS",
        "criteria": {"patient_id": "PACS-1001"},
        "matches": 2,
        "truncated": False,
    }


def test_a_failed_search_is_audited_and_raised(staff):
    with pytest.raises(PacsUnreachable):
        pacs_search(node=down_node(), actor=staff, client=NO_CLIENT, patient_name="DOE*")

    event = AuditEvent.objects.get(action=AuditEvent.Action.PACS_QUERY)
    assert event.outcome == AuditEvent.Outcome.SERIOUS_FAILURE
    assert "unreachable" in event.detail["error"]
    assert event.detail["criteria"] == {"patient_name": "DOE*"}


def test_patients_cannot_search(orthanc, transactional_db):
    patient = User.objects.create_user("jane@example.com", "pw-123456789")

    with pytest.raises(PermissionDenied):
        pacs_search(node=pacs_node(orthanc.orthanc), actor=patient, client=NO_CLIENT, patient_id="X")
    assert not AuditEvent.objects.exists()


def test_retrieve_brings_the_study_in_and_attaches_it_to_the_request(lightbox_in_pacs, staff):
    node = pacs_node(lightbox_in_pacs.orthanc)
    request = authorization(staff, node)

    job = retrieve_start(
        node=node,
        study_instance_uid=lightbox_in_pacs.ct_uid,
        actor=staff,
        authorization=request,
        client=Client(address="10.0.0.9"),
    )

    # The task ran inline once the job was committed.
    job.refresh_from_db()
    assert job.status == RetrieveJob.Status.DONE, job.message
    assert (job.completed, job.failed, job.warning, job.remaining) == (3, 0, 0, 0)
    assert job.finished_at is not None
    assert "3 images received" in job.message
    assert Instance.objects.filter(study_instance_uid=job.study_instance_uid, state="indexed").count() == 3
    study = Study.objects.get(study_instance_uid=lightbox_in_pacs.ct_uid)
    assert list(request.studies.all()) == [study]
    requested, finished = AuditEvent.objects.filter(action=AuditEvent.Action.PACS_RETRIEVE).order_by("pk")
    assert requested.detail["stage"] == "requested"
    assert requested.remote_addr == "10.0.0.9"
    assert finished.detail["stage"] == "finished"
    assert finished.detail["completed"] == 3
    assert finished.outcome == AuditEvent.Outcome.SUCCESS
    assert finished.study_instance_uid == lightbox_in_pacs.ct_uid


def test_progress_is_saved_while_the_move_runs(lightbox_in_pacs, staff, monkeypatch):
    monkeypatch.setattr(pacs_service, "PROGRESS_INTERVAL", 0)
    seen: list[tuple[int | None, int]] = []
    saver_call = pacs_service._ProgressSaver.__call__

    def spy(self: pacs_service._ProgressSaver, progress: MoveProgress) -> None:
        saver_call(self, progress)
        job = RetrieveJob.objects.get(pk=self.job_id)
        seen.append((job.remaining, job.completed))

    monkeypatch.setattr(pacs_service._ProgressSaver, "__call__", spy)
    node = pacs_node(lightbox_in_pacs.orthanc)

    retrieve_start(node=node, study_instance_uid=lightbox_in_pacs.ct_uid, actor=staff)

    assert seen == [(2, 1), (1, 2)]


def test_a_retrieve_without_a_request_attaches_nothing(lightbox_in_pacs, staff):
    node = pacs_node(lightbox_in_pacs.orthanc)
    other = authorization(staff, node)

    job = retrieve_start(node=node, study_instance_uid=lightbox_in_pacs.cr_uid, actor=staff)

    job.refresh_from_db()
    assert job.status == RetrieveJob.Status.DONE
    assert not other.studies.exists()


def test_running_a_job_twice_does_nothing_the_second_time(lightbox_in_pacs, staff):
    node = pacs_node(lightbox_in_pacs.orthanc)
    job = retrieve_start(node=node, study_instance_uid=lightbox_in_pacs.cr_uid, actor=staff)

    assert retrieve_run(job.pk) is None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PACS_RETRIEVE).count() == 2


def test_a_pacs_that_is_down_fails_the_job_as_unreachable(staff):
    node = down_node()

    job = retrieve_start(node=node, study_instance_uid="1.2.3.4", actor=staff)

    job.refresh_from_db()
    assert job.status == RetrieveJob.Status.FAILED
    assert "unreachable" in job.message
    assert f"127.0.0.1:{node.port}" in job.message
    finished = AuditEvent.objects.filter(action=AuditEvent.Action.PACS_RETRIEVE).latest("pk")
    assert finished.outcome == AuditEvent.Outcome.SERIOUS_FAILURE


def test_a_pacs_that_does_not_know_lightbox_fails_the_job_with_a_clear_message(orthanc, staff, settings):
    settings.LIGHTBOX_SCP_AE_TITLE = "UNKNOWN-TO-PACS"
    node = pacs_node(orthanc.orthanc)

    job = retrieve_start(node=node, study_instance_uid=orthanc.ct_uid, actor=staff)

    job.refresh_from_db()
    assert job.status == RetrieveJob.Status.FAILED
    assert "UNKNOWN-TO-PACS" in job.message


def test_move_destination_unknown_is_explained(staff, monkeypatch):
    def a801(*args: object, **kwargs: object) -> MoveResult:
        from sharing.dicom.qr import move_status_meaning

        return MoveResult(MoveOutcome.FAILED, 0xA801, move_status_meaning(0xA801, "LIGHTBOX"), 0, 0, 0)

    monkeypatch.setattr(pacs_service, "move_study", a801)

    job = retrieve_start(node=down_node(), study_instance_uid="1.2.3.4", actor=staff)

    job.refresh_from_db()
    assert job.status == RetrieveJob.Status.FAILED
    assert job.message.startswith("Move destination unknown (0xA801): register Lightbox's AE title LIGHTBOX")


def test_a_move_with_refused_images_is_partial(lightbox_in_pacs, staff, monkeypatch):
    # Lightbox's SCP refuses every image after the first (a processing failure, 0x0110); Orthanc
    # then gives up the C-MOVE, and the images it never sent count as failed.
    from sharing.services.receiving import ReceiveResult, instance_receive

    calls: list[int] = []

    def refuse_after_first(**kwargs: Any) -> ReceiveResult:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("simulated failure")
        return instance_receive(**kwargs)

    monkeypatch.setattr("sharing.scp.handlers.instance_receive", refuse_after_first)
    node = pacs_node(lightbox_in_pacs.orthanc)

    job = retrieve_start(node=node, study_instance_uid=lightbox_in_pacs.ct_uid, actor=staff)

    job.refresh_from_db()
    assert job.status == RetrieveJob.Status.PARTIAL, job.message
    assert (job.completed, job.failed) == (1, 2)
    assert "1 image received, 2 failed" in job.message
    finished = AuditEvent.objects.filter(action=AuditEvent.Action.PACS_RETRIEVE).latest("pk")
    assert finished.outcome == AuditEvent.Outcome.MINOR_FAILURE


def test_retrieve_refuses_what_is_not_a_uid_and_switched_off_nodes(staff):
    node = down_node()
    with pytest.raises(ValidationError):
        retrieve_start(node=node, study_instance_uid="1.2.3; drop", actor=staff)
    node.is_active = False
    node.save()
    with pytest.raises(ValidationError):
        retrieve_start(node=node, study_instance_uid="1.2.3", actor=staff)
    assert not RetrieveJob.objects.exists()


def test_patients_cannot_retrieve(transactional_db):
    patient = User.objects.create_user("jane@example.com", "pw-123456789")

    with pytest.raises(PermissionDenied):
        retrieve_start(node=down_node(), study_instance_uid="1.2.3", actor=patient)


def test_attach_adds_the_study_to_every_request_it_was_retrieved_for_once(staff, tmp_path: Path):
    from tests.support.factories import make_study

    study = make_study(tmp_path, SyntheticPatient(patient_id="PACS-1001", issuer="HOSP"), "s", pdf=False)
    node = down_node()
    first, second, unrelated = authorization(staff), authorization(staff), authorization(staff)
    for request in (first, second):
        RetrieveJob.objects.create(
            pacs=node,
            authorization=request,
            study_instance_uid=study.study_instance_uid,
            requested_by=staff,
            created_at=timezone.now(),
        )

    retrievals_attach(study=study)
    retrievals_attach(study=study)

    assert list(first.studies.all()) == [study]
    assert list(second.studies.all()) == [study]
    assert not unrelated.studies.exists()


def test_a_retrieve_whose_worker_died_is_failed_after_a_while(staff):
    from sharing.services.pacs import RETRIEVE_STALLED_AFTER, retrievals_fail_stalled

    node = down_node()
    now = timezone.now()

    def job(status: str, age: datetime.timedelta) -> RetrieveJob:
        return RetrieveJob.objects.create(
            pacs=node,
            study_instance_uid="1.2.3",
            requested_by=staff,
            status=status,
            completed=7,
            created_at=now - age,
        )

    stalled = job(RetrieveJob.Status.RUNNING, RETRIEVE_STALLED_AFTER + datetime.timedelta(minutes=1))
    running = job(RetrieveJob.Status.RUNNING, datetime.timedelta(minutes=20))
    done = job(RetrieveJob.Status.DONE, RETRIEVE_STALLED_AFTER * 2)

    assert retrievals_fail_stalled(now=now) == 1
    assert retrievals_fail_stalled(now=now) == 0
    stalled.refresh_from_db()
    assert stalled.status == RetrieveJob.Status.FAILED
    assert stalled.completed == 7
    assert "Retrieve again" in stalled.message
    assert stalled.finished_at is not None
    assert RetrieveJob.objects.get(pk=running.pk).status == RetrieveJob.Status.RUNNING
    assert RetrieveJob.objects.get(pk=done.pk).status == RetrieveJob.Status.DONE
    assert (
        AuditEvent.objects.filter(
            action=AuditEvent.Action.PACS_RETRIEVE, outcome=AuditEvent.Outcome.SERIOUS_FAILURE
        ).count()
        == 1
    )
