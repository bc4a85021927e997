"""The recipient's side of a share link: the landing page, the check, and the shared studies.

``/s/<token>`` shows nothing about the patient until the check passes. Then the token is swapped
for a grant in a fresh server-side session and the browser goes to ``/s/``, a URL without it.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import cast

from django.contrib.auth.hashers import check_password
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.decorators import decorator_from_middleware
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from sharing.access.decorators import share_gone_response
from sharing.access.scope import ShareGone, ShareScope, ViewerScope
from sharing.access.session import share_session_end, share_session_start
from sharing.forms.shares import ShareCheckForm
from sharing.models import AuditEvent, Share
from sharing.security import share_headers
from sharing.services.audit import Client
from sharing.services.shares import Check, share_check, share_lookup, share_open
from sharing.services.viewer_audit import viewer_access_record


class _ShareCsrf(CsrfViewMiddleware):
    """CSRF protection for the share pages' forms, which browsers post with ``Origin: null``.

    Share pages send ``Referrer-Policy: no-referrer`` (the link is a credential), and under that
    policy a browser serialises the origin of a form POST as "null". The origin check cannot
    help there; the CSRF token (a cookie the attacker's page cannot read, and the same value in
    the form) is still required.
    """

    def _origin_verified(self, request: HttpRequest) -> bool:
        verified = super()._origin_verified(request)  # type: ignore[misc]  # private, unstubbed
        return request.META.get("HTTP_ORIGIN") == "null" or bool(verified)


_share_csrf_protect = decorator_from_middleware(_ShareCsrf)


def share_csrf(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Exempt from the site-wide check, protected by ``_ShareCsrf`` instead."""
    protected = cast(Callable[..., HttpResponseBase], _share_csrf_protect(view))
    return csrf_exempt(protected)


# Checked against when the token is unknown, so a guess costs the same time either way.
_DUMMY_HASH = (
    "pbkdf2_sha256$1000000$lightbox$e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)


def _unknown(request: HttpRequest) -> HttpResponseBase:
    return share_headers(render(request, "sharing/shares/unknown.html", status=HTTPStatus.NOT_FOUND))


def _landing(
    request: HttpRequest, share: Share, form: ShareCheckForm | None, *, status: int = 200, error: str = ""
) -> HttpResponseBase:
    return share_headers(
        render(
            request,
            "sharing/shares/landing.html",
            {"protection": share.protection, "form": form, "error": error},
            status=status,
        )
    )


def share_link_not_found(request: HttpRequest, token: str) -> HttpResponseBase:
    """A share link of the wrong length (cut short, or with the next character run on)."""
    return _unknown(request)


@share_csrf
@require_http_methods(["GET", "POST"])
def share_open_view(request: HttpRequest, token: str) -> HttpResponseBase:
    share = share_lookup(token=token)
    if share is None:
        if request.method == "POST":
            check_password(request.POST.get("answer", ""), _DUMMY_HASH)
        return _unknown(request)
    state = share.state_at(timezone.now(), opening=True)
    if state != Share.State.ACTIVE:
        return share_gone_response(request, ShareGone(share, state))
    needs_answer = share.protection != Share.Protection.NONE
    if request.method == "GET":
        form = ShareCheckForm(protection=share.protection) if needs_answer else None
        return _landing(request, share, form)

    client = Client.of(request)
    form = ShareCheckForm(request.POST, protection=share.protection) if needs_answer else None
    if form is not None and not form.is_valid():
        return _landing(request, share, form, status=HTTPStatus.BAD_REQUEST)
    answer = form.cleaned_data["answer"] if form is not None else ""
    outcome = share_check(share=share, answer=answer, client=client)
    if outcome is Check.THROTTLED:
        return _landing(
            request,
            share,
            form,
            status=HTTPStatus.TOO_MANY_REQUESTS,
            error="Too many attempts. Wait a few minutes, then try again.",
        )
    if outcome is Check.WRONG:
        what = "date of birth" if share.protection == Share.Protection.BIRTH_DATE else "code"
        return _landing(
            request,
            share,
            form,
            status=HTTPStatus.FORBIDDEN,
            error=f"That {what} is not right. Check it and try again.",
        )
    if outcome in (Check.LOCKED, Check.GONE):
        share.refresh_from_db()
        return share_gone_response(request, ShareGone(share, share.state_at(timezone.now(), opening=True)))
    if not share_open(share=share, client=client):
        share.refresh_from_db()
        return share_gone_response(request, ShareGone(share, share.state_at(timezone.now(), opening=True)))
    share_session_start(request, share=share)
    return share_headers(redirect("share:home"))


def share_home(request: HttpRequest, scope: ViewerScope) -> HttpResponse:
    """The shared studies, and the patient's message. Applied with ``for_share``."""
    studies = list(scope.studies().select_related("patient").order_by("-study_date", "pk"))
    if not isinstance(scope, ShareScope):
        raise Http404("not a share")
    share = scope.share
    for study in studies:
        viewer_access_record(
            scope,
            action=AuditEvent.Action.VIEW,
            client=Client.of(request),
            patient=study.patient,
            study_instance_uid=study.study_instance_uid,
            detail={"page": "shared studies"},
        )
    return render(
        request, "sharing/shares/shared_home.html", {"share": share, "studies": studies, "scope": scope}
    )


@share_csrf
@require_POST
def share_leave(request: HttpRequest) -> HttpResponseBase:
    """The recipient ends their share session (a shared computer)."""
    share_session_end(request)
    return share_headers(render(request, "sharing/shares/left.html"))
