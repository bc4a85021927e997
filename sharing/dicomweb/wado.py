"""WADO-RS (PS3.18 §10.4): metadata, instances, frames and rendered images of studies in scope.

Metadata is built from the stored headers once per series and kept in the object store under a key
that changes when instances are added; frames are read as exact byte ranges of the stored file.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.core.cache import cache
from django.db.models import QuerySet
from django.urls import reverse

from sharing.access.scope import ViewerScope
from sharing.dicom.dicomjson import bulk_data_value, instance_json
from sharing.dicom.errors import DicomInputError
from sharing.dicom.frames import FrameError, FrameLayout, Window, decode_frame, frame_layout, render_frame
from sharing.dicomweb.multipart import Reader, Segment, window
from sharing.dicomweb.qido import series_instances
from sharing.models import Instance, Series, Study
from sharing.recall import Recall
from sharing.selectors import series_received_within
from sharing.storage import ObjectNotFound, get_store

LAYOUT_CACHE_SECONDS = 24 * 3600
_LAYOUT_KEY = "dicomweb:layout:v2:{}:{}"  # an instance's pk and sha256
RENDER_MAX_PIXELS = 100_000_000
PixelDataUri = Callable[[Instance], str]


def study_in_scope(*, scope: ViewerScope, study_instance_uid: str) -> Study | None:
    return scope.studies().filter(study_instance_uid=study_instance_uid).select_related("patient").first()


def series_in_scope(
    *, scope: ViewerScope, study_instance_uid: str, series_instance_uid: str
) -> Series | None:
    return (
        Series.objects.filter(
            series_instance_uid=series_instance_uid,
            study__study_instance_uid=study_instance_uid,
            study__in=scope.studies(),
        )
        .select_related("study__patient")
        .first()
    )


def _series_instances_in_scope(
    scope: ViewerScope, study_instance_uid: str, series_instance_uid: str
) -> QuerySet[Instance]:
    return Instance.objects.filter(
        state=Instance.State.INDEXED,
        series__series_instance_uid=series_instance_uid,
        series__study__study_instance_uid=study_instance_uid,
        series__study__in=scope.studies(),
    )


def _instances_in_scope(
    scope: ViewerScope, study_instance_uid: str, series_instance_uid: str, sop_instance_uid: str
) -> QuerySet[Instance]:
    return _series_instances_in_scope(scope, study_instance_uid, series_instance_uid).filter(
        sop_instance_uid=sop_instance_uid
    )


def instance_in_scope(
    *, scope: ViewerScope, study_instance_uid: str, series_instance_uid: str, sop_instance_uid: str
) -> Instance | None:
    instances = _instances_in_scope(scope, study_instance_uid, series_instance_uid, sop_instance_uid)
    return instances.select_related("series__study__patient").first()


# A viewer fetches every frame of a series one request at a time, so the first frame a process
# serves from a series decides the whole series for that viewer: one query for its instances. The
# decision is remembered for a second, no longer: a change of access (a patient record unlinked, a
# study detached) must stop every process's frames within that time. A share is re-checked on every
# request anyway. Where the frames lie does not depend on who asks, so it is kept longer, per series.
FRAME_ACCESS_SECONDS = 1
FRAME_LAYOUT_SECONDS = 60
# What a frame request needs of an instance, in the model's field order (Model.from_db wants it).
_FRAME_FIELDS = tuple(
    field.attname
    for field in Instance._meta.concrete_fields
    if field.attname
    in {
        "id",
        "sop_instance_uid",
        "sop_class_uid",
        "study_instance_uid",
        "series_instance_uid",
        "transfer_syntax_uid",
        "object_key",
        "sha256",
        "number_of_frames",
        "rows",
        "columns",
    }
)
_ID, _SOP_UID, _SHA256 = (_FRAME_FIELDS.index(name) for name in ("id", "sop_instance_uid", "sha256"))


@dataclass(frozen=True)
class FrameSource:
    """An instance in a viewer's scope and where its frames lie (None if it has none)."""

    instance: Instance
    layout: FrameLayout | None


@dataclass(frozen=True)
class _SeriesFrames:
    """The indexed instances of one series in one viewer's scope (their ``_FRAME_FIELDS``, by
    SOP Instance UID), as decided until ``until``."""

    rows: dict[str, tuple[Any, ...]]
    until: float


def frame_source(
    *, scope: ViewerScope, study_instance_uid: str, series_instance_uid: str, sop_instance_uid: str
) -> FrameSource | None:
    """``instance_in_scope`` for the frame endpoint, with the frames' layout."""
    series_key = f"{study_instance_uid}:{series_instance_uid}"
    key = f"{scope.summary_key()}:{series_key}"
    now = _clock()
    series = _series.get(key, now)
    layouts = _layouts.get(series_key, now)
    if series is None:
        instances = _series_instances_in_scope(scope, study_instance_uid, series_instance_uid)
        rows = {row[_SOP_UID]: row for row in instances.values_list(*_FRAME_FIELDS)}
        series = _SeriesFrames(rows, until=now + FRAME_ACCESS_SECONDS)
        _series.keep(key, series, series.until)
    if layouts is None:
        layouts = _known_layouts(series.rows)
        _layouts.keep(series_key, layouts, now + FRAME_LAYOUT_SECONDS)
    row = series.rows.get(sop_instance_uid)
    if row is None:
        # Indexed since the series was decided, or not there: asked about on its own.
        instances = _instances_in_scope(scope, study_instance_uid, series_instance_uid, sop_instance_uid)
        found = instances.values_list(*_FRAME_FIELDS).first()
        if found is None:
            return None
        row = series.rows[sop_instance_uid] = found
    instance = Instance.from_db(None, _FRAME_FIELDS, row)
    try:
        layout = layouts[sop_instance_uid]
    except KeyError:
        try:
            layout = instance_layout(instance)
        except (FrameError, ObjectNotFound):
            layout = None
        layouts[sop_instance_uid] = layout
    return FrameSource(instance, layout)


def _known_layouts(rows: dict[str, tuple[Any, ...]]) -> dict[str, FrameLayout | None]:
    """The layouts of these instances that the cache holds, read in one round trip."""
    keys = {_LAYOUT_KEY.format(row[_ID], row[_SHA256]): sop for sop, row in rows.items()}
    found = cache.get_many(list(keys))
    return {keys[key]: layout for key, layout in found.items() if isinstance(layout, FrameLayout)}


# The series this process has decided lately, for whom. A 500-instance series takes some 300 kB.
_series: Recall[_SeriesFrames] = Recall(32)
# Where the frames of recently viewed series lie, by instance (None: an instance with no frames).
_layouts: Recall[dict[str, FrameLayout | None]] = Recall(32)
_clock = time.time


def frames_path(instance: Instance) -> str:
    """Where an instance's pixel data is fetched: the BulkDataURI of its PixelData (a path)."""
    frames = ",".join(str(n) for n in range(1, instance.number_of_frames + 1))
    args = [instance.study_instance_uid, instance.series_instance_uid, instance.sop_instance_uid, frames]
    return reverse("dicomweb-frames", args=args)


def bulk_data_path(instance: Instance) -> str:
    """Where an instance's large binary values are fetched: this path followed by a tag path."""
    args = [instance.study_instance_uid, instance.series_instance_uid, instance.sop_instance_uid]
    return reverse("dicomweb-instance", args=args) + "/bulkdata/"


def series_metadata_prepare(*, series_id: int, settle_seconds: float = 0) -> bool:
    """Build a series' metadata cache ahead of the first viewer, once the series has settled.

    True if it was built now. Like thumbnails, a series still receiving waits: its cache key
    changes with every new instance.
    """
    series = Series.objects.filter(pk=series_id).first()
    if series is None or series.number_of_instances == 0:
        return False
    if settle_seconds > 0 and series_received_within(series=series, seconds=settle_seconds):
        return False
    try:
        get_store().head(metadata_cache_key(series))
        return False
    except ObjectNotFound:
        pass
    series_metadata(series=series, pixel_data_uri=frames_path)
    return True


# Bumped whenever the JSON changes, so that no cache (nor ETag) of an older format is served.
METADATA_FORMAT = 2


def metadata_cache_key(series: Series) -> str:
    return f"metadata/series/{series.pk}/{series.number_of_instances}.v{METADATA_FORMAT}.json"


def series_metadata_text(*, series: Series, pixel_data_uri: PixelDataUri) -> bytes:
    """The series' DICOM JSON array as cached text (built and cached first if it is not yet)."""
    try:
        with get_store().open(metadata_cache_key(series)) as handle:
            cached: bytes = handle.read()
        return cached
    except ObjectNotFound:
        return json.dumps(series_metadata(series=series, pixel_data_uri=pixel_data_uri)).encode()


def series_metadata(*, series: Series, pixel_data_uri: PixelDataUri) -> list[dict[str, Any]]:
    """DICOM JSON of every instance in the series, from the cache in the object store if there.

    URIs are stored as paths; the caller makes them absolute for the request's host.
    """
    store = get_store()
    key = metadata_cache_key(series)
    try:
        with store.open(key) as handle:
            cached: list[dict[str, Any]] = json.loads(handle.read())
        return cached
    except ObjectNotFound:
        pass
    instances = []
    layouts: dict[str, FrameLayout] = {}
    for instance in series_instances(series=series):
        try:
            with store.local_copy(instance.object_key) as path, path.open("rb") as handle:
                instances.append(
                    instance_json(
                        handle,
                        pixel_data_uri=pixel_data_uri(instance),
                        bulk_data_uri=bulk_data_path(instance),
                    )
                )
                # While the file is open: where its frames lie, which a viewer asks next. A
                # report has none.
                handle.seek(0)
                with contextlib.suppress(FrameError):
                    layouts[_layout_key(instance)] = frame_layout(handle)
        except DicomInputError:
            continue  # indexed once, so readable; a file damaged since is left out, not fatal
    store.put_bytes(key, json.dumps(instances).encode(), content_type="application/json")
    cache.set_many(layouts, LAYOUT_CACHE_SECONDS)
    return instances


def instance_bytes(instance: Instance, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The stored file's bytes [start, end)."""
    return get_store().iter_bytes(instance.object_key, start=start, end=end)


def _layout_key(instance: Instance) -> str:
    return _LAYOUT_KEY.format(instance.pk, instance.sha256)


def instance_layout(instance: Instance) -> FrameLayout:
    """Where the frames lie in the stored file; raises FrameError for instances without frames."""
    cache_key = _layout_key(instance)
    layout = cache.get(cache_key)
    if isinstance(layout, FrameLayout):
        return layout
    with get_store().local_copy(instance.object_key) as path, path.open("rb") as handle:
        layout = frame_layout(handle)
    cache.set(cache_key, layout, LAYOUT_CACHE_SECONDS)
    return layout


def bulk_data(instance: Instance, tag_path: str) -> bytes:
    """The binary value at `tag_path` (as in a BulkDataURI); raises BulkDataNotFound."""
    return _with_handle(instance, lambda handle: bulk_data_value(handle, tag_path=tag_path))


def stored_frame(
    instance: Instance, layout: FrameLayout, number: int, start: int = 0, end: int | None = None
) -> Iterator[bytes]:
    """Bytes [start, end) of frame `number` (1-based) exactly as stored: native bytes, or its
    compressed fragments one after another. Only the fragments that overlap are read."""
    store = get_store()

    def fragment(first: int) -> Reader:
        return lambda low, high: store.iter_bytes(
            instance.object_key, start=first + low, end=None if high is None else first + high
        )

    fragments = [Segment(last - first, fragment(first)) for first, last in layout.frames[number - 1]]
    return window(fragments, start, stored_frame_size(layout, number) if end is None else end)


def stored_frame_size(layout: FrameLayout, number: int) -> int:
    return sum(last - first for first, last in layout.frames[number - 1])


def decoded_frame(instance: Instance, number: int) -> bytes:
    return _with_handle(instance, lambda handle: decode_frame(handle, index=number - 1))


def rendered_frame(instance: Instance, number: int, *, media_type: str, window: Window | None) -> bytes:
    return _with_handle(
        instance,
        lambda handle: render_frame(
            handle, index=number - 1, media_type=media_type, window=window, max_pixels=RENDER_MAX_PIXELS
        ),
    )


def _with_handle(instance: Instance, read: Callable[[BinaryIO], bytes]) -> bytes:
    with get_store().local_copy(instance.object_key) as path, path.open("rb") as handle:
        return read(handle)
