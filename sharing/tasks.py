"""Celery tasks: thin, take ids, idempotent; the work is in services."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from sharing.models import Instance
from sharing.services.completion import studies_mark_complete as _studies_mark_complete
from sharing.services.indexing import study_index_pending
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
def ingest_instance(instance_id: int) -> None:
    study_uid = Instance.objects.filter(pk=instance_id).values_list("study_instance_uid", flat=True).first()
    if study_uid is not None:
        study_index_pending(study_instance_uid=study_uid)


@retrying_task
def series_thumbnail(series_id: int) -> None:
    series_thumbnail_update(series_id=series_id)


@retrying_task
def studies_mark_complete() -> None:
    _studies_mark_complete()
