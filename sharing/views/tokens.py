"""Staff pages for personal API tokens (``/staff/api-tokens/``): list, create, revoke.

A token's secret is on the response that creates it and nowhere else, ever. These pages are for a
signed-in session only (StaffMFAMiddleware holds it to two-factor sign-in); a token itself cannot
reach them, since tokens authenticate on DICOMweb routes alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from sharing.forms.tokens import ApiTokenCreateForm
from sharing.models import ApiToken, User
from sharing.selectors.tokens import api_token_get_for_owner, api_tokens_for_owner
from sharing.services.audit import Client
from sharing.services.tokens import api_token_create, api_token_revoke, may_hold_tokens

View = Callable[..., HttpResponse]


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _staff_only(view: View) -> View:
    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not may_hold_tokens(_user(request)):
            raise PermissionDenied("staff only")
        return view(request, *args, **kwargs)

    return wrapped


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "private, no-store"
    return response


@dataclass(frozen=True)
class TokenRow:
    token: ApiToken
    state: ApiToken.State


@_staff_only
@require_GET
def api_token_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    rows = [TokenRow(token, token.state_at(now)) for token in api_tokens_for_owner(user=_user(request))]
    return _no_store(
        render(
            request,
            "sharing/staff/tokens.html",
            {
                "active": [row for row in rows if row.state == ApiToken.State.ACTIVE],
                "ended": [row for row in rows if row.state != ApiToken.State.ACTIVE],
                "dicomweb_url": request.build_absolute_uri(reverse("stow")).removesuffix("/studies"),
            },
        )
    )


@_staff_only
@require_http_methods(["GET", "POST"])
def api_token_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "sharing/staff/tokens_new.html", {"form": ApiTokenCreateForm()})
    form = ApiTokenCreateForm(request.POST)
    if form.is_valid():
        try:
            created = api_token_create(
                owner=_user(request),
                name=form.cleaned_data["name"],
                scopes=form.scope_values(),
                expires_at=form.expires_at(now=timezone.now()),
                client=Client.of(request),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return _no_store(
                render(
                    request,
                    "sharing/staff/tokens_created.html",
                    {
                        "token": created.token,
                        "secret": created.secret,
                        "dicomweb_url": request.build_absolute_uri(reverse("stow")).removesuffix("/studies"),
                    },
                )
            )
    return render(request, "sharing/staff/tokens_new.html", {"form": form}, status=400)


@_staff_only
@require_http_methods(["GET", "POST"])
def api_token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    """GET asks for confirmation; POST revokes at once."""
    user = _user(request)
    token = api_token_get_for_owner(user=user, token_id=token_id)
    if request.method == "GET":
        state = token.state_at(timezone.now())
        return render(request, "sharing/staff/tokens_revoke.html", {"token": token, "state": state})
    if api_token_revoke(token=token, actor=user, client=Client.of(request)):
        messages.success(request, f"“{token.name}” is revoked. Its next request will be refused.")
    else:
        messages.info(request, f"“{token.name}” was already revoked.")
    return redirect("api-token-list")
