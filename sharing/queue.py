"""Work handed to the Celery workers: every task Lightbox queues is queued here, by its name.

Tasks call services, never the reverse, so a service that asks for work to be done later must not
import the tasks module; it asks this one, which finds the task in Celery's registry (filled when
Django starts, in ``SharingConfig.ready``). With nothing configured the tasks run inline
(``CELERY_TASK_ALWAYS_EAGER``), exactly as ``apply_async`` runs any registered task then.
"""

from __future__ import annotations

from typing import Any

from celery import current_app


def _queue(name: str, *args: Any, countdown: float | None = None) -> None:
    current_app.tasks[f"sharing.tasks.{name}"].apply_async(args, countdown=countdown or 0)


def study_index(*, study_instance_uid: str, countdown: float | None = None) -> None:
    """Index a study's received instances (``sharing.tasks.index_study``)."""
    _queue("index_study", study_instance_uid, countdown=countdown)


def series_prepare(*, series_id: int, settle_seconds: float) -> None:
    """A series' thumbnail and its viewer metadata, once it has been quiet for ``settle_seconds``."""
    _queue("series_thumbnail", series_id, settle_seconds, countdown=settle_seconds)
    _queue("series_metadata_prepare", series_id, settle_seconds, countdown=settle_seconds)


def pacs_retrieve(*, job_id: int) -> None:
    """Run a C-MOVE retrieval job (``sharing.tasks.pacs_retrieve``)."""
    _queue("pacs_retrieve", job_id)
