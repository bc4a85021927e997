"""Study pages a viewer reaches, relative to a root: ``/`` for signed-in users (``for_user``) and
``/s/`` for share holders (``for_share``), so both get the same pages, narrowed to their scope."""

from __future__ import annotations

from collections.abc import Callable

from django.urls import URLPattern, path, re_path
from django.urls.resolvers import URLResolver

from sharing.access.decorators import ScopedView, View
from sharing.routes.uids import SERIES_UID, SOP_UID, UID
from sharing.views import downloads, library, viewer


def study_patterns(scoped: Callable[[ScopedView], View]) -> list[URLPattern | URLResolver]:
    return [
        re_path(rf"^studies/{UID}/$", scoped(library.study_detail), name="study"),
        re_path(rf"^studies/{UID}/view$", scoped(viewer.study_viewer), name="study-viewer"),
        re_path(rf"^studies/{UID}/thumbnail$", scoped(library.study_thumbnail), name="study-thumbnail"),
        re_path(
            rf"^studies/{UID}/series/{SERIES_UID}/thumbnail$",
            scoped(library.series_thumbnail),
            name="series-thumbnail",
        ),
        re_path(rf"^studies/{UID}/reports/{SOP_UID}\.pdf$", scoped(library.report_pdf), name="report-pdf"),
        re_path(rf"^studies/{UID}/download$", scoped(downloads.study_download), name="study-download"),
        re_path(
            rf"^studies/{UID}/download/jpeg$",
            scoped(downloads.study_download_jpeg),
            name="study-download-jpeg",
        ),
        path("download", scoped(downloads.studies_download), name="studies-download"),
    ]
