"""DICOMweb routes, relative to a root: ``/dicomweb/`` for signed-in users and ``/s/dicomweb/`` (the
"share" namespace) for share holders. The views resolve the viewer scope from the namespace.
"""

from __future__ import annotations

from django.urls import URLPattern, path, re_path

from sharing.dicom.dicomjson import TAG_PATH
from sharing.routes.uids import SERIES_UID, SOP_UID, UID
from sharing.views import dicomweb

INSTANCE = rf"^studies/{UID}/series/{SERIES_UID}/instances/{SOP_UID}"

urlpatterns: list[URLPattern] = [
    # GET is QIDO-RS / WADO-RS (sharing.views.dicomweb), POST is STOW-RS (sharing.views.stow).
    path("studies", dicomweb.studies, name="stow"),
    re_path(rf"^studies/{UID}$", dicomweb.study, name="dicomweb-study"),
    re_path(rf"^studies/{UID}/metadata$", dicomweb.study_metadata, name="dicomweb-study-metadata"),
    re_path(rf"^studies/{UID}/series$", dicomweb.search_for_series, name="dicomweb-series-search"),
    re_path(rf"^studies/{UID}/series/{SERIES_UID}$", dicomweb.retrieve_series, name="dicomweb-series"),
    re_path(
        rf"^studies/{UID}/series/{SERIES_UID}/metadata$",
        dicomweb.series_metadata,
        name="dicomweb-series-metadata",
    ),
    re_path(
        rf"^studies/{UID}/series/{SERIES_UID}/instances$",
        dicomweb.search_for_instances,
        name="dicomweb-instance-search",
    ),
    re_path(rf"{INSTANCE}$", dicomweb.retrieve_instance, name="dicomweb-instance"),
    re_path(rf"{INSTANCE}/rendered$", dicomweb.render_instance, name="dicomweb-instance-rendered"),
    re_path(rf"{INSTANCE}/frames/(?P<frames>[^/]+)$", dicomweb.retrieve_frames, name="dicomweb-frames"),
    re_path(
        rf"{INSTANCE}/bulkdata/(?P<tag_path>{TAG_PATH})$",
        dicomweb.retrieve_bulk_data,
        name="dicomweb-bulkdata",
    ),
    re_path(
        rf"{INSTANCE}/frames/(?P<frame>[^/]+)/rendered$",
        dicomweb.render_frame,
        name="dicomweb-frame-rendered",
    ),
]
