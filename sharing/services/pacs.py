"""Query/retrieve from the hospital PACS on behalf of records staff.

Searching (C-FIND) and asking for a study (C-MOVE) both touch patient data, so both are audited;
the network work runs outside any transaction, and each audit row is written in the transaction
of the change it describes. A retrieve is a RetrieveJob run by a Celery task that claims it with a
conditional update, so a redelivered task does nothing. Studies arrive through Lightbox's own
Storage SCP and are indexed there; ``retrievals_attach`` then adds them to the request they were
retrieved for, whichever of the indexer and the task finishes last.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from sharing import queue
from sharing.conf import app_settings
from sharing.dicom.qr import (
    DicomNode,
    EchoResult,
    MoveOutcome,
    MoveProgress,
    MoveResult,
    PacsError,
    StudyMatch,
    echo,
    find_studies,
    move_study,
)
from sharing.models import AuditEvent, PacsNode, ReleaseAuthorization, RetrieveJob, Study, User
from sharing.services.audit import NO_CLIENT, Client, audit_event_record

logger = logging.getLogger(__name__)

Status = RetrieveJob.Status
# Progress is written at most this often: a 2,000-image study must not cost 2,000 updates.
PROGRESS_INTERVAL = 0.5
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_OUTCOMES = {
    MoveOutcome.SUCCESS: (Status.DONE, AuditEvent.Outcome.SUCCESS),
    MoveOutcome.PARTIAL: (Status.PARTIAL, AuditEvent.Outcome.MINOR_FAILURE),
    MoveOutcome.FAILED: (Status.FAILED, AuditEvent.Outcome.SERIOUS_FAILURE),
}


def dicom_node(pacs: PacsNode) -> DicomNode:
    return DicomNode(ae_title=pacs.ae_title, host=pacs.host, port=pacs.port)


def _require_staff(actor: User) -> None:
    if not actor.is_records_staff:
        raise PermissionDenied("records staff only")


def pacs_echo(*, node: PacsNode, actor: User) -> EchoResult:
    """C-ECHO: whether the PACS answers Lightbox at all (no patient data, so not audited)."""
    if not (actor.is_records_staff or actor.is_staff):
        raise PermissionDenied("staff only")
    result = echo(dicom_node(node))
    logger.info("C-ECHO to %s by %s: %s", node, actor.email, result.message)
    return result


def pacs_search(
    *,
    node: PacsNode,
    actor: User,
    client: Client,
    patient_id: str = "",
    patient_name: str = "",
    birth_date: datetime.date | None = None,
    date_from: datetime.date | None = None,
    date_to: datetime.date | None = None,
    modality: str = "",
    limit: int = 500,
) -> list[StudyMatch]:
    """C-FIND for studies; audited with the criteria (PHI, but the audit trail is where it belongs).

    Raises ``qr.CriteriaError`` for values that cannot be sent (forms catch those first) and
    ``qr.PacsError`` when the PACS cannot be reached or refuses; the failure is audited too.
    """
    _require_staff(actor)
    criteria = {
        "patient_id": patient_id,
        "patient_name": patient_name,
        "birth_date": birth_date,
        "date_from": date_from,
        "date_to": date_to,
        "modality": modality,
    }
    detail: dict[str, Any] = {
        "pacs": node.name,
        "criteria": {key: str(value) for key, value in criteria.items() if value},
    }
    try:
        matches = find_studies(dicom_node(node), limit=limit, **criteria)  # type: ignore[arg-type]
    except PacsError as exc:
        with transaction.atomic():
            _audit_query(actor, client, {**detail, "error": str(exc)}, AuditEvent.Outcome.SERIOUS_FAILURE)
        raise
    with transaction.atomic():
        detail.update(matches=len(matches), truncated=len(matches) >= limit)
        _audit_query(actor, client, detail, AuditEvent.Outcome.SUCCESS)
    return matches


def _audit_query(actor: User, client: Client, detail: dict[str, Any], outcome: AuditEvent.Outcome) -> None:
    audit_event_record(
        action=AuditEvent.Action.PACS_QUERY,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_user=actor,
        client=client,
        outcome=outcome,
        detail=detail,
    )


@transaction.atomic
def retrieve_start(
    *,
    node: PacsNode,
    study_instance_uid: str,
    actor: User,
    authorization: ReleaseAuthorization | None = None,
    client: Client = NO_CLIENT,
) -> RetrieveJob:
    """Queue a C-MOVE of one study to Lightbox; the task starts once this commits."""
    _require_staff(actor)
    if not node.is_active:
        raise ValidationError("This PACS node is switched off.")
    if len(study_instance_uid) > 64 or not _UID.match(study_instance_uid):
        raise ValidationError("Not a Study Instance UID.")
    job = RetrieveJob.objects.create(
        pacs=node,
        authorization=authorization,
        study_instance_uid=study_instance_uid,
        requested_by=actor,
        created_at=timezone.now(),
    )
    audit_event_record(
        action=AuditEvent.Action.PACS_RETRIEVE,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_user=actor,
        client=client,
        patient=authorization.patient if authorization else None,
        study_instance_uid=study_instance_uid,
        detail={
            "stage": "requested",
            "job": job.pk,
            "pacs": node.name,
            "request": authorization.pk if authorization else None,
        },
    )
    job_id = job.pk
    transaction.on_commit(lambda: _enqueue_retrieve(job_id))
    return job


def _enqueue_retrieve(job_id: int) -> None:
    queue.pacs_retrieve(job_id=job_id)


def retrieve_run(job_id: int) -> RetrieveJob | None:
    """The task's body: claim the job, move the study, record the outcome. None if not claimed."""
    claimed = RetrieveJob.objects.filter(pk=job_id, status=Status.QUEUED).update(status=Status.RUNNING)
    if not claimed:
        return None  # already run, or running elsewhere
    job = RetrieveJob.objects.select_related("pacs", "authorization", "requested_by").get(pk=job_id)
    progress_saver = _ProgressSaver(job_id)
    try:
        result = move_study(
            dicom_node(job.pacs),
            study_instance_uid=job.study_instance_uid,
            destination_ae=app_settings.SCP_AE_TITLE,
            on_progress=progress_saver,
        )
    except BaseException as exc:  # a bug or the task's time limit: the job must not stay "running"
        last = progress_saver.last
        result = MoveResult(
            outcome=MoveOutcome.FAILED,
            status=None,
            message=f"Lightbox stopped the retrieve: {type(exc).__name__}",
            completed=last.completed if last else 0,
            failed=last.failed if last else 0,
            warning=last.warning if last else 0,
        )
        _retrieve_finish(job, result)
        raise
    _retrieve_finish(job, result)
    study = hospital_studies().filter(study_instance_uid=job.study_instance_uid).order_by("pk").first()
    if study is not None:
        retrievals_attach(study=study)  # in case indexing finished before the task did
    job.refresh_from_db()
    return job


# The task's hard time limit is an hour from its start; a job still "running" this long after it
# was created lost its worker (killed, or the machine went away) and will never finish.
RETRIEVE_STALLED_AFTER = datetime.timedelta(hours=3)


def retrievals_fail_stalled(*, now: datetime.datetime | None = None) -> int:
    """Mark retrieves whose worker died as failed, so staff see it and can retry. Idempotent."""
    now = now or timezone.now()
    stalled = RetrieveJob.objects.filter(status=Status.RUNNING, created_at__lt=now - RETRIEVE_STALLED_AFTER)
    count = 0
    for job in stalled.select_related("pacs", "authorization", "requested_by"):
        result = MoveResult(
            outcome=MoveOutcome.FAILED,
            status=None,
            message="The retrieve stopped without finishing (its worker went away). Retrieve again.",
            completed=job.completed,
            failed=job.failed,
            warning=job.warning,
        )
        with transaction.atomic():
            if RetrieveJob.objects.filter(pk=job.pk, status=Status.RUNNING).exists():
                _retrieve_finish(job, result)
                count += 1
    return count


class _ProgressSaver:
    """The C-MOVE progress callback: saves the counters, at most every PROGRESS_INTERVAL."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.saved_at = 0.0
        self.last: MoveProgress | None = None

    def __call__(self, progress: MoveProgress) -> None:
        self.last = progress
        now = time.monotonic()
        if now - self.saved_at < PROGRESS_INTERVAL:
            return
        self.saved_at = now
        RetrieveJob.objects.filter(pk=self.job_id, status=Status.RUNNING).update(
            remaining=progress.remaining,
            completed=progress.completed,
            failed=progress.failed,
            warning=progress.warning,
        )


@transaction.atomic
def _retrieve_finish(job: RetrieveJob, result: MoveResult) -> None:
    status, outcome = _OUTCOMES[result.outcome]
    job.status = status
    job.remaining = 0 if result.outcome is MoveOutcome.SUCCESS else result.remaining
    job.completed, job.failed, job.warning = result.completed, result.failed, result.warning
    job.message = result.message[:500]
    job.finished_at = timezone.now()
    job.save(
        update_fields=["status", "remaining", "completed", "failed", "warning", "message", "finished_at"]
    )
    audit_event_record(
        action=AuditEvent.Action.PACS_RETRIEVE,
        client=NO_CLIENT,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_user=job.requested_by,
        patient=job.authorization.patient if job.authorization else None,
        study_instance_uid=job.study_instance_uid,
        outcome=outcome,
        detail={
            "stage": "finished",
            "job": job.pk,
            "pacs": job.pacs.name,
            "status": job.status,
            "dimse_status": f"0x{result.status:04X}" if result.status is not None else None,
            "completed": result.completed,
            "failed": result.failed,
            "warning": result.warning,
            "message": job.message,
        },
    )


def hospital_studies() -> QuerySet[Study]:
    """The hospital's own copies: not a patient's upload, nor a study held for an identity clash
    (both may carry the Study Instance UID of a study the PACS holds)."""
    return Study.objects.filter(patient__upload_owner__isnull=True, held_reason="")


def retrievals_attach(*, study: Study) -> int:
    """Add ``study`` to every request a retrieve of it was made for; the number added.

    Called by the indexer whenever a study's aggregates change, so the common case (no retrieve
    of this study for any request) costs one query.
    """
    authorization_ids = set(
        RetrieveJob.objects.filter(
            study_instance_uid=study.study_instance_uid, authorization__isnull=False
        ).values_list("authorization_id", flat=True)
    )
    if not authorization_ids:
        return 0
    through = ReleaseAuthorization.studies.through
    created = through.objects.bulk_create(
        [through(releaseauthorization_id=pk, study_id=study.pk) for pk in sorted(authorization_ids)],
        ignore_conflicts=True,
    )
    return len(created)


# --- Reads for the staff pages -------------------------------------------------------------------


def pacs_nodes_active() -> QuerySet[PacsNode]:
    return PacsNode.objects.filter(is_active=True)


def retrieve_jobs_recent(*, user: User, limit: int = 100) -> list[RetrieveJob]:
    _require_staff(user)
    return list(RetrieveJob.objects.select_related("pacs", "requested_by", "authorization")[:limit])


def retrieve_job_get(*, user: User, job_id: int) -> RetrieveJob:
    _require_staff(user)
    return RetrieveJob.objects.select_related("pacs", "requested_by", "authorization").get(pk=job_id)


def studies_present(*, study_uids: list[str]) -> dict[str, Study]:
    """Which of these studies Lightbox already holds (with at least one image)."""
    # A patient's own upload of a study is not the hospital's copy: staff may still need to retrieve it.
    studies = Study.objects.filter(
        study_instance_uid__in=study_uids, number_of_instances__gt=0, patient__upload_owner__isnull=True
    )
    return {study.study_instance_uid: study for study in studies.order_by("-pk")}


def authorization_for_staff(*, user: User, authorization_id: int) -> ReleaseAuthorization:
    _require_staff(user)
    return ReleaseAuthorization.objects.select_related("facility__pacs", "patient").get(pk=authorization_id)


def retrieve_audit_viewed(*, user: User, client: Client, detail: dict[str, Any]) -> None:
    audit_event_record(actor_user=user, action=AuditEvent.Action.QUERY, client=client, detail=detail)
