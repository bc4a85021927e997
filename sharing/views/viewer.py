"""The in-browser image viewer's page. The viewer itself is JavaScript (frontend/viewer/) reading
DICOMweb; this page only says where DICOMweb is, which study, and which series to open first."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from sharing.access.scope import ViewerScope
from sharing.models import AuditEvent
from sharing.selectors import study_get_in
from sharing.services.audit import Client
from sharing.services.viewer_audit import viewer_access_record

VIEWER_TEMPLATE = "sharing/viewer.html"


def dicomweb_root(url_namespace: str = "") -> str:
    """Where DICOMweb lives for a viewer: "/dicomweb" for users, "/s/dicomweb" with "share:"."""
    return reverse(f"{url_namespace}stow").removesuffix("/studies")


def study_viewer(request: HttpRequest, scope: ViewerScope, study_instance_uid: str) -> HttpResponse:
    """The viewer for a study in the viewer's scope (a user's, or a share's); `?series=` opens
    that series first."""
    ns = scope.url_namespace
    study = study_get_in(visible=scope.studies(), study_instance_uid=study_instance_uid)
    viewer_access_record(
        scope,
        action=AuditEvent.Action.VIEW,
        client=Client.of(request),
        patient=study.patient,
        study_instance_uid=study.study_instance_uid,
        detail={"page": "viewer"},
    )
    series_list = list(study.series.all())
    return render(
        request,
        VIEWER_TEMPLATE,
        {
            "scope": scope,
            "study": study,
            "dicomweb_root": dicomweb_root(ns),
            "initial_series_uid": request.GET.get("series", ""),
            "back_url": reverse(f"{ns}study", args=[study.study_instance_uid]),
            "can_download": scope.can_download,
            "series_list": [
                {
                    "series": series,
                    "thumbnail_url": reverse(
                        f"{ns}series-thumbnail", args=[study.study_instance_uid, series.series_instance_uid]
                    )
                    if series.thumbnail_key and series.thumbnail_kind == "image"
                    else "",
                }
                for series in series_list
            ],
        },
    )
