from django.urls import include, path

from sharing.access.decorators import for_user
from sharing.routes.studies import study_patterns
from sharing.views import library, pages, upload

urlpatterns = [
    path("", library.library, name="home"),
    path("upload/", upload.upload, name="upload"),
    path("staff/unmatched/", pages.unmatched_studies, name="unmatched-studies"),
    path("dicomweb/", include("sharing.routes.dicomweb")),
    path("", include(study_patterns(for_user))),
    path("", include("sharing.routes.shares")),
    path("", include("sharing.routes.audit")),
    path("", include("sharing.routes.pacs")),
    path("", include("sharing.routes.releases")),
    path("", include("sharing.routes.tokens")),
]
