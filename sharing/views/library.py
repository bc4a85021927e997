"""The patient's library of studies, a study's page, and the pieces it shows (thumbnails, PDF reports)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from sharing.access.scope import ViewerScope
from sharing.dicom.errors import UnreadableDicom
from sharing.dicom.reports import cda_text, encapsulated_cda, encapsulated_pdf, structured_report_text
from sharing.dicom.sop import ENCAPSULATED_PDF, is_encapsulated_cda, is_structured_report
from sharing.models import AuditEvent, Instance, Study, User
from sharing.selectors import (
    report_pdf_get_in,
    series_get_in,
    study_get_in,
    study_library_for_user,
    study_modalities_for_user,
    study_preview_get_in,
    study_reports,
)
from sharing.services.audit import Client
from sharing.services.viewer_audit import viewer_access_record
from sharing.storage import ObjectNotFound, get_store

PAGE_SIZE = 24
NEW_FOR = datetime.timedelta(days=14)


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@dataclass(frozen=True)
class StudyCard:
    """A study and its multi-valued DICOM text made readable ("CHEST\\ABDOMEN" → "CHEST, ABDOMEN")."""

    study: Study
    body_parts: str

    @classmethod
    def of(cls, study: Study) -> StudyCard:
        return cls(study=study, body_parts=_readable(study.body_parts))


def _readable(value: str, separator: str = "\\") -> str:
    return ", ".join(part.strip() for part in value.split(separator) if part.strip())


class LibraryFilterForm(forms.Form):
    date_from = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    date_to = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    modality = forms.ChoiceField(label="Type of imaging", required=False)

    def __init__(self, data: Any, *, modalities: list[str]) -> None:
        super().__init__(data)
        self.fields["modality"].choices = [("", "All"), *((m, m) for m in modalities)]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("The “from” date must be on or before the “to” date.")
        return cleaned


@login_required
@require_GET
def library(request: HttpRequest) -> HttpResponse:
    """The signed-in patient's studies as cards, filtered by date and modality, 24 a page."""
    user = _user(request)
    number = request.GET.get("page", "")
    first_page = not number.isdigit() or int(number) <= 1
    filtering = any(request.GET.get(name) for name in LibraryFilterForm.base_fields)
    # Most libraries fit on one page. Its rows are then the whole library: the filter's
    # modalities come from them, and nothing needs counting.
    rows = None
    if first_page and not filtering:
        rows = list(study_library_for_user(user=user)[: PAGE_SIZE + 1])
    whole = rows if rows is not None and len(rows) <= PAGE_SIZE else None
    modalities = (
        sorted({m for study in whole for m in study.modality_list})
        if whole is not None
        else study_modalities_for_user(user=user)
    )
    form = LibraryFilterForm(request.GET or None, modalities=modalities)
    filters: dict[str, Any] = {}
    if form.is_bound and form.is_valid():
        filters = {
            "date_from": form.cleaned_data["date_from"],
            "date_to": form.cleaned_data["date_to"],
            "modality": form.cleaned_data["modality"],
        }
    if whole is not None:
        page = _CountedPaginator(whole, PAGE_SIZE, count=len(whole)).page(1)
    elif first_page:
        studies = study_library_for_user(user=user, **filters)
        if rows is None:
            rows = list(studies[: PAGE_SIZE + 1])
        count = len(rows) if len(rows) <= PAGE_SIZE else studies.count()
        page = _CountedPaginator(rows, PAGE_SIZE, count=count).page(1)
    else:
        page = Paginator(study_library_for_user(user=user, **filters), PAGE_SIZE).get_page(number)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "sharing/home.html",
        {
            "form": form,
            "date_fields": [form["date_from"], form["date_to"]],
            "chosen_modality": form["modality"].value() or "",
            "page": page,
            "studies": page.object_list,
            "cards": [StudyCard.of(study) for study in page.object_list],
            "filtered": any(filters.values()),
            "query": query.urlencode(),
            "new_since": timezone.now() - NEW_FOR,
        },
    )


class _CountedPaginator(Paginator[Study]):
    """Pages of rows already fetched, with the total counted separately (or not at all)."""

    def __init__(self, rows: list[Study], per_page: int, *, count: int) -> None:
        super().__init__(rows, per_page)
        self._count = count

    @cached_property
    def count(self) -> int:
        return self._count


@dataclass(frozen=True)
class ReportView:
    paragraphs: tuple[str, ...] = ()
    pdf_sop_instance_uid: str = ""
    unreadable: bool = False


def study_detail(request: HttpRequest, scope: ViewerScope, study_instance_uid: str) -> HttpResponse:
    """One study: what it is, its series, and its report. Every view is audited."""
    study = study_get_in(visible=scope.studies(), study_instance_uid=study_instance_uid)
    reports = [_report_view(instance) for instance in study_reports(study=study)]
    viewer_access_record(
        scope,
        action=AuditEvent.Action.VIEW,
        client=Client.of(request),
        patient=study.patient,
        study_instance_uid=study.study_instance_uid,
        detail={"page": "study", "reports": len(reports)},
    )
    return render(
        request,
        "sharing/study.html",
        {
            "scope": scope,
            "url_ns": scope.url_namespace,
            "study": study,
            "body_parts": _readable(study.body_parts),
            "referring_physician": " ".join(study.referring_physician.replace("^", " ").split()),
            "series_list": list(study.series.all()),
            "reports": reports,
        },
    )


def _report_view(instance: Instance) -> ReportView:
    if instance.sop_class_uid == ENCAPSULATED_PDF:
        return ReportView(pdf_sop_instance_uid=instance.sop_instance_uid)
    assert is_structured_report(instance.sop_class_uid) or is_encapsulated_cda(instance.sop_class_uid)
    try:
        with get_store().local_copy(instance.object_key) as path:
            if is_encapsulated_cda(instance.sop_class_uid):
                text = cda_text(encapsulated_cda(path))
            else:
                text = structured_report_text(path)
    except (UnreadableDicom, ObjectNotFound):
        return ReportView(unreadable=True)
    paragraphs = tuple(p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip())
    return ReportView(paragraphs=paragraphs)


def series_thumbnail(
    request: HttpRequest, scope: ViewerScope, study_instance_uid: str, series_instance_uid: str
) -> HttpResponseBase:
    """A series' thumbnail, cacheable by the browser only. Not audited: the study page is."""
    series = series_get_in(
        visible=scope.studies(),
        study_instance_uid=study_instance_uid,
        series_instance_uid=series_instance_uid,
    )
    return _thumbnail_response(request, series.thumbnail_key)


def study_thumbnail(request: HttpRequest, scope: ViewerScope, study_instance_uid: str) -> HttpResponseBase:
    """The thumbnail that stands for a study in the library (its preview series'). Not audited."""
    series = study_preview_get_in(visible=scope.studies(), study_instance_uid=study_instance_uid)
    return _thumbnail_response(request, series.thumbnail_key)


def _thumbnail_response(request: HttpRequest, key: str) -> HttpResponseBase:
    if not key:
        raise Http404("no thumbnail")
    etag = f'"{key}"'
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        response: HttpResponseBase = HttpResponse(status=304)
    else:
        try:
            chunks = get_store().iter_bytes(key)
            first = next(chunks, b"")
        except ObjectNotFound as exc:
            raise Http404("no thumbnail") from exc
        media_type = "image/png" if key.lower().endswith(".png") else "image/jpeg"
        response = StreamingHttpResponse(_prepend(first, chunks), content_type=media_type)
        response["X-Content-Type-Options"] = "nosniff"
    response["ETag"] = etag
    # Kept by the browser only, and revalidated by its ETag each time (a 304, no bytes): nothing is
    # shown from the cache once access has ended.
    response["Cache-Control"] = "private, no-cache"
    return response


def _prepend(first: bytes, rest: Any) -> Any:
    yield first
    yield from rest


def report_pdf(
    request: HttpRequest, scope: ViewerScope, study_instance_uid: str, sop_instance_uid: str
) -> HttpResponse:
    """The PDF inside an Encapsulated PDF report, for the browser's own PDF viewer."""
    instance = report_pdf_get_in(
        visible=scope.studies(), study_instance_uid=study_instance_uid, sop_instance_uid=sop_instance_uid
    )
    try:
        with get_store().local_copy(instance.object_key) as path:
            pdf = encapsulated_pdf(path)
    except (UnreadableDicom, ObjectNotFound) as exc:
        raise Http404("report unreadable") from exc
    if pdf is None:
        raise Http404("not a PDF")
    study = instance.series.study if instance.series else None
    viewer_access_record(
        scope,
        action=AuditEvent.Action.VIEW,
        client=Client.of(request),
        patient=study.patient if study else None,
        study_instance_uid=study_instance_uid,
        detail={"page": "report pdf", "sop_instance_uid": sop_instance_uid},
    )
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = 'inline; filename="report.pdf"'
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
