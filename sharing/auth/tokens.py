"""``Authorization: Bearer <token>`` on the DICOMweb routes (``/dicomweb/…``).

A request with a personal API token authenticates as the token's owner, with the token's scopes:
POST (STOW-RS) needs ``store``, every other method (QIDO-RS, WADO-RS) ``read``. The token is read
from the database on every request, never cached, so a revocation on one web process is seen by
the next request on all of them. Each request made with a token is audited once.

HTTP Basic with an account password is refused: it would bypass two-factor sign-in. A token can
only be made from a session that passed it, so the token stands for that check (the request
carries ``lightbox_api_token``, which StaffMFAMiddleware may take as proof).

A token request has no cookie and no session: whatever later middleware notes in the session ends
with the request, and CSRF (a defence for cookies) does not apply to it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from http import HTTPStatus

from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import get_resolver

from sharing.models import ApiToken
from sharing.services.audit import Client
from sharing.services.tokens import Refusal, api_token_authenticate, api_token_use_record

REALM = 'Bearer realm="Lightbox DICOMweb"'
# Failed token attempts per client address, counted in the cache (shared by every process when
# Redis is configured): a guesser is stopped long before 256 random bits could matter, and a
# script left running with a revoked token stops hammering the database.
FAILURE_LIMIT = 20
FAILURE_WINDOW = 15 * 60
BASIC_REFUSED = (
    "Lightbox does not accept account passwords here: create a personal API token under "
    "API tokens (/staff/api-tokens/) and send it as 'Authorization: Bearer lbx_…'"
)

GetResponse = Callable[[HttpRequest], HttpResponseBase]


def api_token_of(request: HttpRequest) -> ApiToken | None:
    """The token this request was authenticated with, if any."""
    token = getattr(request, "lightbox_api_token", None)
    return token if isinstance(token, ApiToken) else None


@functools.cache
def _dicomweb_prefix() -> str:
    """``/dicomweb/``, as ``request.path_info`` has it (the resolver's paths carry no script prefix)."""
    path = str(get_resolver().reverse("stow"))
    return "/" + path.lstrip("/").split("/", 1)[0] + "/"


def required_scope(method: str | None) -> ApiToken.Scope:
    return ApiToken.Scope.STORE if method == "POST" else ApiToken.Scope.READ


class RequestOnlySession(SessionBase):
    """The session of a token request: middleware may write to it, nothing is ever saved, so no
    session row and no cookie come of an API call."""

    def __init__(self) -> None:
        super().__init__(session_key=None)

    @property
    def modified(self) -> bool:
        return False

    @modified.setter
    def modified(self, value: bool) -> None:
        pass

    def exists(self, session_key: str) -> bool:
        return False

    def create(self) -> None:
        pass

    def save(self, must_create: bool = False) -> None:
        pass

    def delete(self, session_key: str | None = None) -> None:
        pass

    def load(self) -> dict[str, object]:
        return {}


class ApiTokenMiddleware:
    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not request.path_info.startswith(_dicomweb_prefix()):
            return self.get_response(request)
        scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "basic":
            response = _error(HTTPStatus.UNAUTHORIZED, "account passwords are not accepted", BASIC_REFUSED)
            response["WWW-Authenticate"] = REALM
            return response
        if scheme.lower() != "bearer":
            return _with_challenge(self.get_response(request))
        return self._with_token(request, credentials.strip())

    def _with_token(self, request: HttpRequest, secret: str) -> HttpResponseBase:
        addr = request.META.get("REMOTE_ADDR")
        if _throttled(addr):
            busy = _error(
                HTTPStatus.TOO_MANY_REQUESTS, "too_many_failures", "too many failed token attempts: try later"
            )
            busy["Retry-After"] = str(FAILURE_WINDOW)
            return busy
        checked = api_token_authenticate(secret=secret)
        token, refusal = checked.token, checked.refusal
        if token is None or refusal is not None:
            _count_failure(addr)
            refusal = refusal or Refusal.UNKNOWN
            invalid = _challenge(HTTPStatus.UNAUTHORIZED, "invalid_token", refusal.value)
            if token is not None:  # a token we know, that no longer works: its owner should see it
                self._record(request, token, invalid, refused=refusal.name.lower())
            return invalid
        scope = required_scope(request.method)
        if not token.allows(scope):
            forbidden = _challenge(
                HTTPStatus.FORBIDDEN,
                "insufficient_scope",
                f"this token's scopes ({', '.join(token.scopes)}) do not include {scope.value}",
                scope=scope.value,
            )
            self._record(request, token, forbidden, refused="scope")
            return forbidden
        request.user = token.owner
        request.lightbox_api_token = token  # type: ignore[attr-defined]
        request.session = RequestOnlySession()
        # CSRF defends cookies; a header a page on another site cannot set needs no such defence.
        request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        response = _with_challenge(self.get_response(request))
        self._record(request, token, response)
        return response

    @staticmethod
    def _record(
        request: HttpRequest,
        token: ApiToken,
        response: HttpResponseBase,
        *,
        refused: str = "",
    ) -> None:
        match = request.resolver_match
        study_uid = str(match.kwargs.get("study_instance_uid", "")) if match is not None else ""
        api_token_use_record(
            token=token,
            method=request.method or "",
            path=request.path_info,
            status=response.status_code,
            client=Client.of(request),
            study_instance_uid=study_uid,
            refused=refused,
        )


def _failure_key(addr: str | None) -> str:
    return f"lightbox:api-token-fail:addr:{addr or '-'}"


def _throttled(addr: str | None) -> bool:
    count = cache.get(_failure_key(addr), 0)
    return isinstance(count, int) and count >= FAILURE_LIMIT


def _count_failure(addr: str | None) -> None:
    key = _failure_key(addr)
    if not cache.add(key, 1, timeout=FAILURE_WINDOW):
        with contextlib.suppress(ValueError):  # expired between add and incr
            cache.incr(key)


def _error(status: HTTPStatus, error: str, detail: str) -> HttpResponse:
    return JsonResponse({"error": error, "detail": detail}, status=status)


def _challenge(status: HTTPStatus, error: str, detail: str, *, scope: str = "") -> HttpResponse:
    """An RFC 6750 refusal: the error in the challenge, and a JSON body saying what to do."""
    response = _error(status, error, detail)
    challenge = f'{REALM}, error="{error}"'
    if scope:
        challenge += f', scope="{scope}"'
    response["WWW-Authenticate"] = challenge
    return response


def _with_challenge(response: HttpResponseBase) -> HttpResponseBase:
    """A 401 tells the client how to authenticate (RFC 9110 §15.5.2): with a token."""
    if response.status_code == HTTPStatus.UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = REALM
    return response
