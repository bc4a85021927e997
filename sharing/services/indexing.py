"""Indexing received instances into patients, studies and series.

Idempotent by construction: each run indexes whatever of a study is still RECEIVED, locking those
rows (``skip_locked``) so concurrent workers split the work, and recomputes the aggregates from
the rows rather than incrementing them. A worker killed mid-run rolls back and the redelivered
task finds the same instances still pending.

Which record an instance joins is decided by ``sharing.services.identity``: a patient's upload
only ever joins that patient's own upload rows, and the hospital's instances that clash with a
linked patient's identity go to a study held for records staff.
"""

from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from sharing import queue
from sharing.conf import app_settings
from sharing.dicom.errors import DicomInputError
from sharing.dicom.header import InstanceHeader, read_header
from sharing.dicom.sop import is_report_sop_class
from sharing.models import Instance, Patient, Series, Study
from sharing.services.identity import (
    NO_PATIENT_ID,
    PatientIdentity,
    demographics_clash,
    is_clash_record_of,
    study_uid_clash,
)
from sharing.services.pacs import retrievals_attach
from sharing.storage import ObjectNotFound, get_store

logger = logging.getLogger(__name__)

BATCH_SIZE = 250
# A queued indexing task is flagged per study, so that a 500-instance study received in one go
# queues one task per LIGHTBOX_INDEX_COALESCE_SECONDS rather than 500 (each costs the SCP about
# a millisecond to publish and the worker several to run).
# The flag outlives a lost task by at most this long; the straggler sweep covers the rest.
PENDING_FLAG_SECONDS = 120
STRAGGLER_AGE = datetime.timedelta(minutes=2)


def _pending_flag(study_instance_uid: str) -> str:
    return f"lightbox:index-queued:{study_instance_uid}"


def study_index_request(*, study_instance_uid: str) -> None:
    """Ask for a study's received instances to be indexed; call after their rows are committed.

    The task clears the flag *before* it looks for pending rows, so a row committed after that
    look raises the flag again and queues a new task: no instance is left behind.
    """
    if cache.add(_pending_flag(study_instance_uid), 1, timeout=PENDING_FLAG_SECONDS):
        # Run a moment later, so that one run indexes what arrives meanwhile: a fast worker
        # would otherwise lower the flag at once and take a task per instance after all.
        queue.study_index(
            study_instance_uid=study_instance_uid, countdown=app_settings.INDEX_COALESCE_SECONDS
        )


def study_index_claimed(*, study_instance_uid: str) -> IndexSummary:
    """What the task runs: lower the flag, then index whatever is pending."""
    cache.delete(_pending_flag(study_instance_uid))
    return study_index_pending(study_instance_uid=study_instance_uid)


def instances_index_stragglers(*, now: datetime.datetime | None = None) -> list[str]:
    """Queue indexing for studies with instances left RECEIVED (a task lost with its broker)."""
    cutoff = (now or timezone.now()) - STRAGGLER_AGE
    study_uids = list(
        Instance.objects.filter(state=Instance.State.RECEIVED, received_at__lt=cutoff)
        .values_list("study_instance_uid", flat=True)
        .distinct()[:1000]
    )
    for study_uid in study_uids:
        queue.study_index(study_instance_uid=study_uid)
    return study_uids


@dataclass(frozen=True)
class IndexSummary:
    indexed: int
    failed: int
    series_ids: frozenset[int]


def study_index_pending(*, study_instance_uid: str) -> IndexSummary:
    indexed = failed = 0
    series_ids: set[int] = set()
    while True:
        batch = _index_batch(study_instance_uid)
        if batch is None:
            break
        indexed += batch.indexed
        failed += batch.failed
        series_ids |= batch.series_ids
    if series_ids:
        # Once per run, not per batch: a study arriving one instance at a time makes many runs.
        with transaction.atomic():
            _refresh_aggregates(series_ids)
            transaction.on_commit(lambda: _enqueue_thumbnails(series_ids), robust=True)
    return IndexSummary(indexed, failed, frozenset(series_ids))


@transaction.atomic
def _index_batch(study_instance_uid: str) -> IndexSummary | None:
    pending = list(
        Instance.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(study_instance_uid=study_instance_uid, state=Instance.State.RECEIVED)
        .order_by("pk")[:BATCH_SIZE]
    )
    if not pending:
        return None
    # Every series of this Study Instance UID, whoever's: each instance joins the one of its own
    # patient (``_joins``), or none.
    known = list(
        Series.objects.filter(
            study__study_instance_uid=study_instance_uid,
            series_instance_uid__in={i.series_instance_uid for i in pending},
        ).select_related("study__patient")
    )
    # What this run decided for an identity and series UID, whatever series that was.
    decided: dict[tuple[object, ...], Series] = {}
    members: dict[int, list[int]] = defaultdict(list)
    failures: dict[int, str] = {}
    for instance in pending:
        key = _series_key(instance)
        series = decided.get(key) or next((s for s in known if _joins(instance, s)), None)
        if series is None:
            # The first instance of a series: its header says what series, study and patient
            # these are. The others were described enough on receipt (number, frames, size).
            try:
                header = _stored_header(instance)
            except (DicomInputError, ObjectNotFound) as exc:
                failures[instance.pk] = str(exc)[:255]
                continue
            series = _series_for(header, instance)
            known.append(series)
        decided[key] = series
        members[series.pk].append(instance.pk)
    now = timezone.now()
    for series_id, instance_ids in members.items():
        Instance.objects.filter(pk__in=instance_ids).update(
            series_id=series_id, state=Instance.State.INDEXED, indexed_at=now
        )
    for instance_id, detail in failures.items():
        # Validated on receipt, so this means the stored object changed or vanished.
        Instance.objects.filter(pk=instance_id).update(state=Instance.State.FAILED, state_detail=detail)
    return IndexSummary(len(pending) - len(failures), len(failures), frozenset(members))


def _stored_header(instance: Instance) -> InstanceHeader:
    with get_store().local_copy(instance.object_key) as path:
        return read_header(path)


def _series_key(instance: Instance) -> tuple[object, ...]:
    return (instance.upload_owner_id, PatientIdentity.of_instance(instance), instance.series_instance_uid)


def _joins(instance: Instance, series: Series) -> bool:
    """Whether ``series`` is the one this instance belongs to: same UID, and the same patient."""
    patient = series.study.patient
    identity = PatientIdentity.of_instance(instance)
    if (
        series.series_instance_uid != instance.series_instance_uid
        or patient.upload_owner_id != instance.upload_owner_id
        or (patient.patient_id, patient.issuer) != (identity.patient_id, identity.issuer)
    ):
        return False
    if patient.clash_of_id is not None:
        return is_clash_record_of(patient=patient, identity=identity)
    return not demographics_clash(patient=patient, identity=identity)


def _series_for(header: InstanceHeader, instance: Instance) -> Series:
    patient, held_reason = _patient_for(header, instance)
    study = _study_for(header, instance, patient=patient, held_reason=held_reason)
    series, _ = Series.objects.select_related("study__patient").get_or_create(
        study=study,
        series_instance_uid=header.series_instance_uid,
        defaults={
            "modality": header.modality,
            "series_number": header.series_number,
            "description": header.series_description,
            "body_part": header.body_part,
        },
    )
    return series


def _study_for(header: InstanceHeader, instance: Instance, *, patient: Patient, held_reason: str) -> Study:
    study = Study.objects.filter(patient=patient, study_instance_uid=header.study_instance_uid).first()
    if study is None and patient.user_id is not None and patient.upload_owner_id is None:
        # One person's two hospital records (an MRN at each) may share a study: it stays one study.
        study = (
            Study.objects.filter(
                patient__user_id=patient.user_id,
                patient__upload_owner__isnull=True,
                study_instance_uid=header.study_instance_uid,
                held_reason="",
            )
            .order_by("pk")
            .first()
        )
    if study is not None:
        return study
    held_reason = held_reason or study_uid_clash(
        study_instance_uid=header.study_instance_uid, patient=patient
    )
    if held_reason:
        logger.warning("study held for records staff: %s", held_reason)
    study, _ = Study.objects.get_or_create(
        patient=patient,
        study_instance_uid=header.study_instance_uid,
        defaults={
            "study_date": header.study_date,
            "study_time": header.study_time,
            "accession_number": header.accession_number,
            "study_id": header.study_id,
            "description": header.study_description,
            "referring_physician": header.referring_physician,
            "institution": header.institution,
            "source": instance.source,
            "is_outside": instance.upload_owner_id is not None,
            "held_reason": held_reason,
            "first_received_at": instance.received_at,
            "last_received_at": instance.received_at,
        },
    )
    return study


def _patient_for(header: InstanceHeader, instance: Instance) -> tuple[Patient, str]:
    """The Patient row these images join, and why their study must wait for staff ("" if not)."""
    demographics = {"name": header.patient_name, "birth_date": header.birth_date, "sex": header.sex}
    if instance.upload_owner_id is not None:
        own, _ = Patient.objects.get_or_create(
            patient_id=header.patient_id,
            issuer=header.issuer,
            upload_owner_id=instance.upload_owner_id,
            defaults=demographics,
        )
        return own, ""
    patient, created = Patient.objects.get_or_create(
        patient_id=header.patient_id,
        issuer=header.issuer,
        upload_owner=None,
        clash_of=None,
        defaults=demographics,
    )
    if not header.patient_id:
        return patient, NO_PATIENT_ID
    clash = demographics_clash(patient=patient, identity=PatientIdentity.of_header(header))
    if clash:
        apart, _ = Patient.objects.get_or_create(
            patient_id=header.patient_id,
            issuer=header.issuer,
            clash_of=patient,
            name=header.patient_name,
            birth_date=header.birth_date,
            defaults={"sex": header.sex},
        )
        return apart, clash
    if not created and not patient.name and header.patient_name:
        # A record made by staff when linking an account: fill in what the images tell.
        patient.name = header.patient_name
        patient.birth_date = patient.birth_date or header.birth_date
        patient.sex = patient.sex or header.sex
        patient.save(update_fields=["name", "birth_date", "sex", "updated_at"])
    return patient, ""


def _refresh_aggregates(series_ids: Iterable[int]) -> None:
    study_ids = set()
    for series in Series.objects.filter(pk__in=series_ids).only("pk", "study_id"):
        count = Instance.objects.filter(series=series, state=Instance.State.INDEXED).count()
        Series.objects.filter(pk=series.pk).update(number_of_instances=count)
        study_ids.add(series.study_id)
    for study_id in sorted(study_ids):
        study_refresh_aggregates(study_id=study_id)


def study_refresh_aggregates(*, study_id: int) -> None:
    study = Study.objects.select_for_update(of=("self",)).select_related("patient").get(pk=study_id)
    series = list(Series.objects.filter(study=study).values("modality", "body_part"))
    instances = Instance.objects.filter(series__study=study, state=Instance.State.INDEXED)
    totals = instances.aggregate(
        count=Count("pk"), size=Sum("size_bytes"), first=Min("received_at"), last=Max("received_at")
    )
    sop_classes = set(instances.values_list("sop_class_uid", flat=True).distinct())
    study.number_of_series = len(series)
    study.number_of_instances = totals["count"] or 0
    study.size_bytes = totals["size"] or 0
    study.modalities = "\\".join(sorted({s["modality"] for s in series if s["modality"]}))[:128]
    study.body_parts = ", ".join(sorted({s["body_part"] for s in series if s["body_part"]}))[:256]
    study.has_report = any(is_report_sop_class(uid) for uid in sop_classes)
    if totals["first"]:
        study.first_received_at = min(study.first_received_at, totals["first"])
        study.last_received_at = max(study.last_received_at, totals["last"])
    study.save(
        update_fields=[
            "number_of_series",
            "number_of_instances",
            "size_bytes",
            "modalities",
            "body_parts",
            "has_report",
            "first_received_at",
            "last_received_at",
        ]
    )
    # A study retrieved from the PACS for a patient's request joins that request as it arrives;
    # a patient's upload or a held clash of the same UID is not what was retrieved.
    if not study.held_reason and study.patient.upload_owner_id is None:
        retrievals_attach(study=study)


def _enqueue_thumbnails(series_ids: Iterable[int]) -> None:
    # The thumbnail, and the viewer's series metadata (DICOM JSON) ready before anyone opens it.
    for series_id in series_ids:
        queue.series_prepare(series_id=series_id, settle_seconds=app_settings.THUMBNAIL_SETTLE_SECONDS)
