from django.urls import include, path, re_path

from sharing.views import dicomweb, downloads, library, pages, upload

# A DICOM UID is digits and dots (PS3.5 §9.1); anything else in the path is not a study.
_UID = r"[0-9]+(?:\.[0-9]+)*"
UID = rf"(?P<study_instance_uid>{_UID})"
SERIES_UID = rf"(?P<series_instance_uid>{_UID})"
SOP_UID = rf"(?P<sop_instance_uid>{_UID})"
INSTANCE = rf"^dicomweb/studies/{UID}/series/{SERIES_UID}/instances/{SOP_UID}"

urlpatterns = [
    path("", library.library, name="home"),
    path("upload/", upload.upload, name="upload"),
    path("staff/unmatched/", pages.unmatched_studies, name="unmatched-studies"),
    # DICOMweb: GET is QIDO-RS / WADO-RS (sharing.views.dicomweb), POST is STOW-RS (sharing.views.stow).
    path("dicomweb/studies", dicomweb.studies, name="stow"),
    re_path(rf"^dicomweb/studies/{UID}$", dicomweb.study, name="dicomweb-study"),
    re_path(rf"^dicomweb/studies/{UID}/metadata$", dicomweb.study_metadata, name="dicomweb-study-metadata"),
    re_path(rf"^dicomweb/studies/{UID}/series$", dicomweb.search_for_series, name="dicomweb-series-search"),
    re_path(
        rf"^dicomweb/studies/{UID}/series/{SERIES_UID}$", dicomweb.retrieve_series, name="dicomweb-series"
    ),
    re_path(
        rf"^dicomweb/studies/{UID}/series/{SERIES_UID}/metadata$",
        dicomweb.series_metadata,
        name="dicomweb-series-metadata",
    ),
    re_path(
        rf"^dicomweb/studies/{UID}/series/{SERIES_UID}/instances$",
        dicomweb.search_for_instances,
        name="dicomweb-instance-search",
    ),
    re_path(rf"{INSTANCE}$", dicomweb.retrieve_instance, name="dicomweb-instance"),
    re_path(rf"{INSTANCE}/rendered$", dicomweb.render_instance, name="dicomweb-instance-rendered"),
    re_path(rf"{INSTANCE}/frames/(?P<frames>[^/]+)$", dicomweb.retrieve_frames, name="dicomweb-frames"),
    re_path(
        rf"{INSTANCE}/frames/(?P<frame>[^/]+)/rendered$",
        dicomweb.render_frame,
        name="dicomweb-frame-rendered",
    ),
    re_path(rf"^studies/{UID}/download$", downloads.study_download, name="study-download"),
    re_path(rf"^studies/{UID}/download/jpeg$", downloads.study_download_jpeg, name="study-download-jpeg"),
    re_path(rf"^studies/{UID}/$", library.study_detail, name="study"),
    re_path(
        rf"^studies/{UID}/series/{SERIES_UID}/thumbnail$", library.series_thumbnail, name="series-thumbnail"
    ),
    re_path(rf"^studies/{UID}/reports/{SOP_UID}\.pdf$", library.report_pdf, name="report-pdf"),
    path("download", downloads.studies_download, name="studies-download"),
    path("", include("sharing.routes.viewer")),
    path("", include("sharing.routes.shares")),
    path("", include("sharing.routes.audit")),
    path("", include("sharing.routes.pacs")),
    path("", include("sharing.routes.releases")),
]
