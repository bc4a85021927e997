from django.urls import path, re_path

from sharing.views import downloads, library, pages, stow, upload

# A DICOM UID is digits and dots (PS3.5 §9.1); anything else in the path is not a study.
_UID = r"[0-9]+(?:\.[0-9]+)*"
UID = rf"(?P<study_instance_uid>{_UID})"
SERIES_UID = rf"(?P<series_instance_uid>{_UID})"
SOP_UID = rf"(?P<sop_instance_uid>{_UID})"

urlpatterns = [
    path("", library.library, name="home"),
    path("upload/", upload.upload, name="upload"),
    path("staff/unmatched/", pages.unmatched_studies, name="unmatched-studies"),
    path("dicomweb/studies", stow.store_instances, name="stow"),
    re_path(rf"^dicomweb/studies/{UID}$", stow.store_instances, name="stow-study"),
    re_path(rf"^studies/{UID}/download$", downloads.study_download, name="study-download"),
    re_path(rf"^studies/{UID}/download/jpeg$", downloads.study_download_jpeg, name="study-download-jpeg"),
    re_path(rf"^studies/{UID}/$", library.study_detail, name="study"),
    re_path(
        rf"^studies/{UID}/series/{SERIES_UID}/thumbnail$", library.series_thumbnail, name="series-thumbnail"
    ),
    re_path(rf"^studies/{UID}/reports/{SOP_UID}\.pdf$", library.report_pdf, name="report-pdf"),
    path("download", downloads.studies_download, name="studies-download"),
]
