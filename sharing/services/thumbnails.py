"""Series thumbnails: the middle image of the series (the middle frame of a multi-frame)."""

from __future__ import annotations

import contextlib

from django.db import transaction
from django.db.models import Subquery

from sharing.conf import app_settings
from sharing.dicom.render import RenderKind, render_thumbnail
from sharing.models import Instance, Series, Study
from sharing.selectors import series_received_within
from sharing.storage import StorageError, get_store, new_key


def series_middle_instance(series: Series) -> Instance | None:
    instances = Instance.objects.filter(series=series, state=Instance.State.INDEXED).order_by(
        "instance_number", "sop_instance_uid"
    )
    count = instances.count()
    return instances[count // 2] if count else None


def series_thumbnail_update(*, series_id: int, settle_seconds: float = 0) -> bool:
    """Render the thumbnail if the middle instance changed since the last one. True if rendered.

    A series still receiving moves its middle with every other instance: rendering each time
    would cost a 500-slice CT some 250 renders. So a series that has a thumbnail is re-rendered
    only once nothing has arrived for ``settle_seconds`` (the task is enqueued that much later, so
    the last batch's task always finds the series settled). A series without one gets one at once.
    """
    series = Series.objects.filter(pk=series_id).first()
    if series is None:
        return False
    middle = series_middle_instance(series)
    if middle is None or (series.thumbnail_instance_id == middle.pk and series.thumbnail_key):
        return False
    if (
        series.thumbnail_key
        and settle_seconds > 0
        and series_received_within(series=series, seconds=settle_seconds)
    ):
        return False

    store = get_store()
    with store.local_copy(middle.object_key) as path:
        thumbnail = render_thumbnail(
            path, size=app_settings.THUMBNAIL_SIZE, max_pixels=app_settings.MAX_IMAGE_PIXELS
        )
    suffix = ".jpg" if thumbnail.media_type == "image/jpeg" else ".png"
    key = new_key(f"thumbnails/{series.pk}", suffix)
    store.put_bytes(key, thumbnail.data, content_type=thumbnail.media_type)

    with transaction.atomic():
        locked = Series.objects.select_for_update().filter(pk=series.pk).first()
        if locked is None:
            stale_key = key  # the series is gone
        elif locked.thumbnail_instance_id == middle.pk and locked.thumbnail_key:
            stale_key = key  # another worker got there first
        else:
            stale_key = locked.thumbnail_key
            locked.thumbnail_key = key
            locked.thumbnail_kind = thumbnail.kind.value
            locked.thumbnail_instance = middle
            locked.save(update_fields=["thumbnail_key", "thumbnail_kind", "thumbnail_instance"])
            study_preview_update(study_id=locked.study_id)
        if stale_key:
            transaction.on_commit(lambda: _delete_quietly(stale_key))
    return stale_key != key


def study_preview_update(*, study_id: int) -> None:
    """Point the study at its first image series with a thumbnail, the one lists show.

    The study's row is locked first, so that the series are read after any other thumbnail
    task's commit: two series finishing at once both count. (Locks go series, then study, in
    the same order as the indexer's.)
    """
    with transaction.atomic():
        if not list(Study.objects.select_for_update().filter(pk=study_id).values_list("pk", flat=True)):
            return
        first = (
            Series.objects.filter(study_id=study_id, thumbnail_kind=RenderKind.IMAGE.value)
            .exclude(thumbnail_key="")
            .order_by("series_number", "pk")
            .values("pk")[:1]
        )
        Study.objects.filter(pk=study_id).update(preview_series=Subquery(first))


def _delete_quietly(key: str) -> None:
    with contextlib.suppress(StorageError):
        get_store().delete(key)
