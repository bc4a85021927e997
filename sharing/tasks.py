"""Celery tasks: thin, take ids, idempotent; the work is in services."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from sharing.services.completion import studies_mark_complete as _studies_mark_complete
from sharing.services.indexing import instances_index_stragglers, study_index_claimed
from sharing.services.thumbnails import series_thumbnail_update
from sharing.storage import StorageUnavailable

# Storage and database outages are retried with exponential backoff; anything else is a bug.
retrying_task = shared_task(
    autoretry_for=(StorageUnavailable, OperationalError),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=12,
)


@retrying_task
def index_study(study_instance_uid: str) -> None:
    """Index a study's received instances (the natural key: one study, however many arrived)."""
    study_index_claimed(study_instance_uid=study_instance_uid)


@retrying_task
def index_stragglers() -> None:
    instances_index_stragglers()


@retrying_task
def series_thumbnail(series_id: int, settle_seconds: float = 0) -> None:
    if series_thumbnail.request.is_eager:
        settle_seconds = 0  # inline: there is no later task to wait for
    series_thumbnail_update(series_id=series_id, settle_seconds=settle_seconds)


@retrying_task
def series_metadata_prepare(series_id: int, settle_seconds: float = 0) -> None:
    from sharing.dicomweb.wado import series_metadata_prepare as prepare

    if series_metadata_prepare.request.is_eager:
        settle_seconds = 0
    prepare(series_id=series_id, settle_seconds=settle_seconds)


@retrying_task
def studies_mark_complete() -> None:
    _studies_mark_complete()


@retrying_task
def shares_expire() -> None:
    """Record the expiry of share links that have passed it (their access already stopped)."""
    from sharing.services.shares import shares_expire_sweep

    shares_expire_sweep()


# A C-MOVE of a large study takes a while. A copy delivered again while the first still runs
# (the broker's visibility timeout is shorter than this) finds the job claimed and does nothing.
@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3540)
def pacs_retrieve(job_id: int) -> None:
    """Retrieve one study from a PACS node (a RetrieveJob): no automatic retries, staff retry."""
    from sharing.services.pacs import retrieve_run

    retrieve_run(job_id)


@retrying_task
def retrievals_stalled() -> None:
    """Fail retrieves whose worker died mid-move, so they do not show "retrieving" forever."""
    from sharing.services.pacs import retrievals_fail_stalled

    retrievals_fail_stalled()
