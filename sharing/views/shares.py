"""The patient's side of share links: create one, list them, see each one's accesses, revoke, extend."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from sharing.forms.shares import ShareCreateForm, ShareExtendForm
from sharing.models import AuditEvent, Share, User
from sharing.selectors.shares import (
    owner_studies_for_sharing,
    share_access_history,
    share_get_for_owner,
    shares_for_owner,
)
from sharing.services.audit import Client
from sharing.services.shares import share_create, share_extend, share_revoke

HISTORY_PAGE_SIZE = 50


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _no_store(response: HttpResponseBase) -> HttpResponseBase:
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _qr_data_uri(text: str) -> str:
    import segno  # on first use: web workers that never make a share need not carry it

    # A data URI of a whole SVG document: an inline fragment lacks the SVG namespace, and a browser
    # shows it as a broken image.
    uri: str = segno.make(text, error="m").svg_data_uri(scale=4, dark="#10212e", light="#ffffff")
    return uri


@login_required
@require_http_methods(["GET", "POST"])
def share_new(request: HttpRequest) -> HttpResponseBase:
    """Choose studies, expiry and protection; the link (and code) are shown once, on this response."""
    user = _user(request)
    studies = owner_studies_for_sharing(user=user)
    if request.method == "GET":
        form = ShareCreateForm(
            initial={"studies": studies.filter(study_instance_uid__in=request.GET.getlist("study"))},
            studies=studies,
        )
        return render(request, "sharing/shares/new.html", {"form": form, "has_studies": studies.exists()})
    form = ShareCreateForm(request.POST, studies=studies)
    if form.is_valid():
        now = timezone.now()
        data = form.cleaned_data
        try:
            created = share_create(
                owner=user,
                studies=list(data["studies"].select_related("patient")),
                expires_at=form.expires_at(now=now),
                protection=Share.Protection(data["protection"]),
                allow_download=data["allow_download"],
                recipient_name=data["recipient_name"],
                recipient_email=data["recipient_email"],
                message=data["message"],
                max_opens=data["max_opens"],
                notify_on_open=data["notify_on_open"],
                client=Client.of(request),
                link_for=lambda token: request.build_absolute_uri(reverse("share-open", args=[token])),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            link = request.build_absolute_uri(reverse("share-open", args=[created.token]))
            return _no_store(
                render(
                    request,
                    "sharing/shares/created.html",
                    {"share": created.share, "link": link, "code": created.code, "qr": _qr_data_uri(link)},
                )
            )
    return render(
        request, "sharing/shares/new.html", {"form": form, "has_studies": studies.exists()}, status=400
    )


@dataclass(frozen=True)
class ShareRow:
    share: Share
    state: Share.State


@login_required
def share_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    rows = [ShareRow(share, share.state_at(now)) for share in shares_for_owner(user=_user(request))]
    return render(
        request,
        "sharing/shares/list.html",
        {
            "active": [row for row in rows if row.state == Share.State.ACTIVE],
            "ended": [row for row in rows if row.state != Share.State.ACTIVE],
        },
    )


@dataclass(frozen=True)
class AccessRow:
    """One access, folded across the shared studies it was recorded for."""

    event: AuditEvent
    studies: int


def _folded(events: list[AuditEvent]) -> list[AccessRow]:
    rows: list[AccessRow] = []
    for event in events:
        last = rows[-1] if rows else None
        if (
            last is not None
            and last.event.action == event.action
            and last.event.remote_addr == event.remote_addr
            and abs((last.event.occurred_at - event.occurred_at).total_seconds()) < 2
            and last.event.detail.get("page") == event.detail.get("page")
        ):
            rows[-1] = AccessRow(last.event, last.studies + 1)
            continue
        rows.append(AccessRow(event, 1))
    return rows


@login_required
def share_detail(request: HttpRequest, share_id: int) -> HttpResponse:
    share = share_get_for_owner(user=_user(request), share_id=share_id)
    page = Paginator(share_access_history(share=share), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    state = share.state_at(timezone.now())
    return render(
        request,
        "sharing/shares/detail.html",
        {
            "share": share,
            "state": state,
            "page": page,
            "accesses": _folded(list(page.object_list)),
            "extend_form": ShareExtendForm(),
            "can_extend": state in (Share.State.ACTIVE, Share.State.EXPIRED, Share.State.EXHAUSTED),
        },
    )


@login_required
@require_POST
def share_revoke_view(request: HttpRequest, share_id: int) -> HttpResponse:
    user = _user(request)
    share = share_get_for_owner(user=user, share_id=share_id)
    if share_revoke(share=share, actor=user, client=Client.of(request)):
        messages.success(request, "The link is revoked. Nobody can use it any more.")
    return redirect("share-detail", share_id=share.pk)


@login_required
@require_POST
def share_extend_view(request: HttpRequest, share_id: int) -> HttpResponse:
    user = _user(request)
    share = share_get_for_owner(user=user, share_id=share_id)
    form = ShareExtendForm(request.POST)
    if form.is_valid():
        try:
            share_extend(
                share=share,
                actor=user,
                expires_at=form.expires_at(now=timezone.now()),
                client=Client.of(request),
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "The link now works until the new date.")
    else:
        messages.error(request, "Choose how long the link should work, up to 90 days from today.")
    return redirect("share-detail", share_id=share.pk)
