"""Downloading studies as a zip: one study (PDI disc layout or pictures only), or several at once."""

from __future__ import annotations

import re
from http import HTTPStatus

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.http import require_GET

from sharing.models import User
from sharing.selectors import studies_for_download
from sharing.services.downloads import (
    DownloadKind,
    download_filename,
    download_record,
    study_archive_chunks,
)

# As many studies as a patient could sensibly tick in one go; more is a mistake or a scraper.
MAX_STUDIES = 50
_UID = re.compile(r"^[0-9]+(?:\.[0-9]+)*$")


class SelectionForm(forms.Form):
    kind = forms.ChoiceField(choices=[(k.value, k.value) for k in DownloadKind], required=False)

    def __init__(self, data: dict[str, object], study_uids: list[str]) -> None:
        super().__init__(data)
        self.study_uids = study_uids

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        if not 1 <= len(self.study_uids) <= MAX_STUDIES:
            raise forms.ValidationError(f"choose between 1 and {MAX_STUDIES} studies")
        if not all(len(uid) <= 64 and _UID.match(uid) for uid in self.study_uids):
            raise forms.ValidationError("not a study identifier")
        return cleaned


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@login_required
@require_GET
def study_download(request: HttpRequest, study_instance_uid: str) -> HttpResponseBase:
    """One study in the IHE PDI disc layout: DICOM, DICOMDIR, previews, report, README."""
    return _download(request, [study_instance_uid], DownloadKind.PDI)


@login_required
@require_GET
def study_download_jpeg(request: HttpRequest, study_instance_uid: str) -> HttpResponseBase:
    """One study as pictures only: a JPEG per image, the report and a README."""
    return _download(request, [study_instance_uid], DownloadKind.JPEG)


@login_required
@require_GET
def studies_download(request: HttpRequest) -> HttpResponseBase:
    """Several studies in one zip: ``?study=<uid>&study=<uid>[&kind=jpeg]``."""
    form = SelectionForm({"kind": request.GET.get("kind", "")}, request.GET.getlist("study"))
    if not form.is_valid():
        return HttpResponse(
            "Choose the studies to download.", status=HTTPStatus.BAD_REQUEST, content_type="text/plain"
        )
    kind = DownloadKind(form.cleaned_data["kind"] or DownloadKind.PDI)
    return _download(request, form.study_uids, kind)


def _download(request: HttpRequest, study_uids: list[str], kind: DownloadKind) -> HttpResponseBase:
    user = _user(request)
    studies = studies_for_download(user=user, study_uids=study_uids)
    download_record(user=user, studies=studies, kind=kind, remote_addr=request.META.get("REMOTE_ADDR"))
    response = StreamingHttpResponse(
        study_archive_chunks(studies=studies, kind=kind), content_type="application/zip"
    )
    response["Content-Disposition"] = f'attachment; filename="{download_filename(studies=studies)}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
