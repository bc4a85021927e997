"""Account rules applied to every request: session time limits, and two-factor sign-in for staff.

Both come after allauth's AccountMiddleware in MIDDLEWARE, the timeout first, so that a session
that has run out is ended before anything else looks at its user.

Staff must not only *have* an authenticator: each session must have passed it. A session signed in
by any path that asked only for the password (Django's own admin sign-in before it was routed
through allauth, a session made before an authenticator was set up elsewhere) reaches nothing and
is signed out, so a password alone never opens patient data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from http import HTTPStatus
from urllib.parse import urlencode

from allauth.account.authentication import get_authentication_records
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse

from sharing.auth_backends import has_totp
from sharing.conf import app_settings
from sharing.models import User

LOGIN_AT_KEY = "lightbox.login_at"
SEEN_AT_KEY = "lightbox.seen_at"
# Last activity is written at most this often, so that reading a page does not save the session.
SEEN_AT_RESOLUTION = 60

MFA_REQUIRED_MESSAGE = (
    "Records staff must use two-factor authentication. Set up an authenticator app to continue."
)
MFA_REQUIRED_API_ERROR = "this staff account must set up two-factor authentication before using the API"
MFA_NOT_PASSED_MESSAGE = (
    "Records staff sign in with their authenticator app as well as their password. Please sign in again."
)
MFA_NOT_PASSED_API_ERROR = "this session did not pass two-factor authentication"

GetResponse = Callable[[HttpRequest], HttpResponse]


def _prefix(path: str) -> str:
    """The first segment of a path, as a prefix: ``/accounts/login/`` → ``/accounts/``."""
    return "/" + path.lstrip("/").split("/", 1)[0] + "/"


def _script_prefix_stripped(path: str) -> str:
    """``reverse`` includes the script prefix; ``request.path_info`` does not."""
    script_prefix = reverse("home").rstrip("/")
    return path[len(script_prefix) :] if script_prefix and path.startswith(script_prefix) else path


@cache
def _accounts_prefix() -> str:
    """Where allauth lives: sign-in, sign-out, password and two-factor pages."""
    return _prefix(_script_prefix_stripped(reverse("account_login")))


@cache
def _api_prefix() -> str:
    return _prefix(_script_prefix_stripped(reverse("stow")))


def _is_static(path_info: str) -> bool:
    static_url = _prefix(settings.STATIC_URL) if settings.STATIC_URL else None
    return (static_url is not None and path_info.startswith(static_url)) or path_info == "/favicon.ico"


def _exempt_from_mfa(path_info: str) -> bool:
    """What staff without an authenticator may still reach: allauth's pages, to set one up."""
    return path_info.startswith(_accounts_prefix()) or _is_static(path_info)


def is_staff_account(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Records staff and administrators: the accounts that must use two-factor authentication."""
    if not isinstance(user, User) or not user.is_authenticated:
        return False
    return bool(user.is_records_staff or user.is_staff or user.is_superuser)


def mfa_required(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether this user may do nothing but set up an authenticator app until they have one."""
    return is_staff_account(user) and not has_totp(user)  # type: ignore[arg-type]


def session_passed_mfa(request: HttpRequest) -> bool:
    """Whether the sign-in of the request's session included a second factor (allauth records each
    step of a sign-in in the session, for the user it signed in)."""
    records = get_authentication_records(request, request.user)
    return any(isinstance(record, dict) and record.get("method") == "mfa" for record in records)


def mfa_required_api_response() -> JsonResponse:
    return JsonResponse(
        {"error": MFA_REQUIRED_API_ERROR, "detail": "sign in on the website to set up an authenticator app"},
        status=HTTPStatus.FORBIDDEN,
    )


class StaffMFAMiddleware:
    """Staff reach nothing until this session has passed their second factor.

    Without an authenticator they are sent to set one up (allauth's pages stay open for that);
    with one, a session that did not use it is signed out and sent to sign in again. A request
    authenticated by a personal API token (``request.lightbox_api_token``) carries no session: its
    token was made from a session that passed two-factor authentication.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if not is_staff_account(user) or getattr(request, "lightbox_api_token", None) is not None:
            return self.get_response(request)
        is_api = request.path_info.startswith(_api_prefix())
        if mfa_required(user):
            if _exempt_from_mfa(request.path_info):
                return self.get_response(request)
            if is_api:
                return mfa_required_api_response()
            messages.warning(request, MFA_REQUIRED_MESSAGE)
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        if session_passed_mfa(request) or _is_static(request.path_info):
            return self.get_response(request)
        logout(request)
        if is_api:
            return JsonResponse(
                {"error": MFA_NOT_PASSED_API_ERROR, "detail": "sign in again with your authenticator app"},
                status=HTTPStatus.UNAUTHORIZED,
            )
        messages.warning(request, MFA_NOT_PASSED_MESSAGE)
        return HttpResponseRedirect(
            f"{reverse('account_login')}?{urlencode({'next': request.get_full_path()})}"
        )


def _duration(seconds: int) -> str:
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


class SessionTimeoutMiddleware:
    """Ends a signed-in session after a spell without requests, and some hours after sign-in.

    Sign-in time and last activity live in the session itself; ``logout`` flushes it from the
    session store, so a copied cookie is worthless afterwards.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            expired = self._expiry_reason(request)
            if expired is not None and request.path_info.startswith(_api_prefix()):
                logout(request)  # the API answers an anonymous request itself, with a 401
            elif expired is not None:
                return self._sign_out(request, expired)
        response = self.get_response(request)
        # After the view too: the request that signs in is anonymous until its view has run.
        if request.user.is_authenticated:
            self._record_activity(request)
        return response

    @staticmethod
    def _expiry_reason(request: HttpRequest) -> str | None:
        now = int(time.time())
        login_at = request.session.get(LOGIN_AT_KEY)
        seen_at = request.session.get(SEEN_AT_KEY)
        if not isinstance(login_at, int) or not isinstance(seen_at, int):
            return None  # first request of a session: _record_activity starts the clocks
        absolute = app_settings.SESSION_ABSOLUTE_SECONDS
        if now - login_at >= absolute:
            return f"You were signed out {_duration(absolute)} after signing in. Please sign in again."
        idle = app_settings.SESSION_IDLE_SECONDS
        if now - seen_at >= idle:
            return f"You were signed out after {_duration(idle)} without activity. Please sign in again."
        return None

    @staticmethod
    def _record_activity(request: HttpRequest) -> None:
        now = int(time.time())
        session = request.session
        if not isinstance(session.get(LOGIN_AT_KEY), int):
            session[LOGIN_AT_KEY] = now
            session[SEEN_AT_KEY] = now
            return
        seen_at = session.get(SEEN_AT_KEY)
        if not isinstance(seen_at, int) or now - seen_at >= SEEN_AT_RESOLUTION:
            session[SEEN_AT_KEY] = now

    @staticmethod
    def _sign_out(request: HttpRequest, reason: str) -> HttpResponse:
        next_url = request.get_full_path()
        logout(request)
        messages.info(request, reason)
        return HttpResponseRedirect(f"{reverse('account_login')}?{urlencode({'next': next_url})}")
