from django.urls import path, re_path

from sharing.views import downloads, pages, stow, upload

# A DICOM UID is digits and dots (PS3.5 §9.1); anything else in the path is not a study.
UID = r"(?P<study_instance_uid>[0-9]+(?:\.[0-9]+)*)"

urlpatterns = [
    path("", pages.home, name="home"),
    path("upload/", upload.upload, name="upload"),
    path("staff/unmatched/", pages.unmatched_studies, name="unmatched-studies"),
    path("dicomweb/studies", stow.store_instances, name="stow"),
    re_path(rf"^dicomweb/studies/{UID}$", stow.store_instances, name="stow-study"),
    re_path(rf"^studies/{UID}/download$", downloads.study_download, name="study-download"),
    re_path(rf"^studies/{UID}/download/jpeg$", downloads.study_download_jpeg, name="study-download-jpeg"),
    path("download", downloads.studies_download, name="studies-download"),
]
