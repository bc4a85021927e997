"""Downloading studies as a zip: one study (PDI disc layout or pictures only), or several at once."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from http import HTTPStatus

from django import forms
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse

from sharing.access.scope import ViewerScope
from sharing.selectors import studies_for_download_in
from sharing.services.audit import Client
from sharing.services.downloads import (
    DownloadKind,
    download_filename,
    download_record,
    study_archive_chunks,
)

logger = logging.getLogger(__name__)

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


def _while_allowed(scope: ViewerScope, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Stop a download part-way if the viewer loses access (a share revoked while it streams).

    Checked at most once a second; the recipient is left with a truncated, unusable zip.
    """
    checked = time.monotonic()
    for chunk in chunks:
        now = time.monotonic()
        if now - checked >= 1.0:
            checked = now
            if not scope.still_allowed():
                logger.info("download stopped: %s lost access", scope.describe())
                return
        yield chunk


def study_download(request: HttpRequest, scope: ViewerScope, study_instance_uid: str) -> HttpResponseBase:
    """One study in the IHE PDI disc layout: DICOM, DICOMDIR, previews, report, README."""
    return _download(request, scope, [study_instance_uid], DownloadKind.PDI)


def study_download_jpeg(
    request: HttpRequest, scope: ViewerScope, study_instance_uid: str
) -> HttpResponseBase:
    """One study as pictures only: a JPEG per image, the report and a README."""
    return _download(request, scope, [study_instance_uid], DownloadKind.JPEG)


def studies_download(request: HttpRequest, scope: ViewerScope) -> HttpResponseBase:
    """Several studies in one zip: ``?study=<uid>&study=<uid>[&kind=jpeg]``."""
    form = SelectionForm({"kind": request.GET.get("kind", "")}, request.GET.getlist("study"))
    if not form.is_valid():
        return HttpResponse(
            "Choose the studies to download.", status=HTTPStatus.BAD_REQUEST, content_type="text/plain"
        )
    kind = DownloadKind(form.cleaned_data["kind"] or DownloadKind.PDI)
    return _download(request, scope, form.study_uids, kind)


def _download(
    request: HttpRequest, scope: ViewerScope, study_uids: list[str], kind: DownloadKind
) -> HttpResponseBase:
    if not scope.can_download:
        return HttpResponse(
            "The patient did not allow downloads through this link; you can view the images.",
            status=HTTPStatus.FORBIDDEN,
            content_type="text/plain",
        )
    studies = studies_for_download_in(visible=scope.studies(), study_uids=study_uids)
    download_record(
        scope=scope,
        studies=studies,
        kind=kind,
        client=Client.of(request),
    )
    chunks = study_archive_chunks(studies=studies, kind=kind)
    response = StreamingHttpResponse(_while_allowed(scope, chunks), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{download_filename(studies=studies)}"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
