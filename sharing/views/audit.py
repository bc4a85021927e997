"""The audit trail on the web: records staff search and export it; patients see who saw their data."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from sharing.models import AuditEvent, Study, User
from sharing.selectors import (
    AccessKind,
    AuditFilters,
    access_history_for_user,
    audit_events_for_export,
    audit_events_search,
    audit_trail_readable_by,
    studies_by_uid,
)
from sharing.services.audit import Client, audit_event_record
from sharing.services.audit_export import ExportFormat, audit_export_lines, audit_export_record

PAGE_SIZE = 50
EXPORT_BATCH = 2000


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


class AuditSearchForm(forms.Form):
    patient = forms.CharField(required=False, max_length=100, label="Patient ID or name")
    user = forms.CharField(required=False, max_length=254, label="User email")
    study = forms.CharField(required=False, max_length=64, label="Study Instance UID")
    action = forms.ChoiceField(required=False, choices=[("", "Any action"), *AuditEvent.Action.choices])
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def filters(self) -> AuditFilters:
        data = self.cleaned_data
        return AuditFilters(
            patient=data.get("patient") or "",
            user=data.get("user") or "",
            study_instance_uid=data.get("study") or "",
            action=data.get("action") or "",
            since=data.get("since"),
            until=data.get("until"),
        )


def _staff_filters(request: HttpRequest) -> tuple[AuditSearchForm, AuditFilters | None]:
    if not audit_trail_readable_by(_user(request)):
        raise PermissionDenied("records staff only")
    form = AuditSearchForm(request.GET or None)
    if not request.GET:
        return form, AuditFilters()
    return form, form.filters() if form.is_valid() else None


def _filters_detail(filters: AuditFilters) -> dict[str, str]:
    return {key: str(value) for key, value in asdict(filters).items() if value}


@login_required
@require_GET
def audit_search(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form, filters = _staff_filters(request)
    page = None
    if filters is not None:
        page = Paginator(audit_events_search(user=user, filters=filters), PAGE_SIZE).get_page(
            request.GET.get("page")
        )
        audit_event_record(
            actor_user=user,
            action=AuditEvent.Action.QUERY,
            detail={"list": "audit trail", "page": page.number, **_filters_detail(filters)},
            client=Client.of(request),
        )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request, "sharing/audit/search.html", {"form": form, "page": page, "query": query.urlencode()}
    )


def _export_name(extension: str) -> str:
    return f"lightbox-audit-{timezone.localdate():%Y%m%d}.{extension}"


def _export(request: HttpRequest, *, fmt: ExportFormat) -> StreamingHttpResponse | HttpResponse:
    user = _user(request)
    _, filters = _staff_filters(request)
    if filters is None:
        return HttpResponse("Invalid filters", status=400, content_type="text/plain")
    audit_export_record(fmt=fmt, filters=filters, actor_user=user, client=Client.of(request))
    events = audit_events_for_export(user=user, filters=filters).iterator(chunk_size=EXPORT_BATCH)
    content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/xml; charset=utf-8"
    response = StreamingHttpResponse(audit_export_lines(events=events, fmt=fmt), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{_export_name(fmt)}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def audit_export_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    return _export(request, fmt="csv")


@login_required
@require_GET
def audit_export_xml(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    return _export(request, fmt="xml")


# --- A patient's access history -----------------------------------------------------------------

_BROWSERS = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/")),
    ("Safari", re.compile(r"Safari/")),
)
_SYSTEMS = (
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Android", re.compile(r"Android")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Linux", re.compile(r"Linux")),
)


def browser_summary(user_agent: str) -> str:
    """'Firefox on Windows' from a User-Agent header; '' when there is none."""
    if not user_agent:
        return ""
    browser = next((name for name, pattern in _BROWSERS if pattern.search(user_agent)), "")
    system = next((name for name, pattern in _SYSTEMS if pattern.search(user_agent)), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Other"


@dataclass(frozen=True)
class AccessRow:
    occurred_at: datetime.datetime
    who: str
    is_you: bool
    remote_addr: str
    browser: str
    what: str
    study: Study | None
    outcome: str
    failed: bool


def _who(event: AuditEvent, user: User) -> str:
    if event.actor_user_id is not None and event.actor_user_id == user.pk:
        return "You"
    if event.actor_kind == AuditEvent.ActorKind.SHARE:
        label = event.share.label if event.share is not None else event.actor_label
        return f"Share: {label}"
    if event.actor_kind == AuditEvent.ActorKind.PEER:
        return "Hospital system"
    if event.actor_kind == AuditEvent.ActorKind.SYSTEM:
        return "Lightbox"
    return event.actor_label or "Someone"


def _access_rows(events: Iterable[AuditEvent], user: User) -> list[AccessRow]:
    events = list(events)
    studies = studies_by_uid(uids={e.study_instance_uid for e in events if e.study_instance_uid})
    return [
        AccessRow(
            occurred_at=event.occurred_at,
            who=_who(event, user),
            is_you=event.actor_user_id == user.pk,
            remote_addr=event.remote_addr or "",
            browser=browser_summary(event.user_agent),
            what=event.get_action_display(),
            study=studies.get(event.study_instance_uid),
            outcome=event.get_outcome_display(),
            failed=event.outcome != AuditEvent.Outcome.SUCCESS,
        )
        for event in events
    ]


@login_required
@require_GET
def access_history(request: HttpRequest) -> HttpResponse:
    """Who saw or shared my data, from where and when. Reading one's own history is not audited."""
    user = _user(request)
    kind = request.GET.get("kind", AccessKind.ALL)
    if kind not in dict(AccessKind.CHOICES):
        kind = AccessKind.ALL
    page = Paginator(access_history_for_user(user=user, kind=kind), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "sharing/audit/access_history.html",
        {
            "page": page,
            "rows": _access_rows(page.object_list, user),
            "kind": kind,
            "kinds": AccessKind.CHOICES,
        },
    )
