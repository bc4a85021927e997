"""The one decorator that resolves a viewer's scope for a view, and its three uses.

A scoped view takes ``(request, scope, …)``. ``for_user`` and ``for_share`` are applied where a
page's URL is declared, so one view serves ``/studies/…`` and ``/s/studies/…``; DICOMweb resolves
either from the URL's namespace and answers refusals in its own JSON (``scope_required`` with its
own answers). Share pages add the share headers here; the middleware adds them to anything else
that answers under ``/s/`` (``sharing.security.PrivateResponsesMiddleware``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from http import HTTPStatus
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseNotAllowed
from django.http.response import HttpResponseBase
from django.shortcuts import render

from sharing.access.scope import NoViewer, ShareGone, ViewerScope, user_scope_for
from sharing.access.session import share_scope_for
from sharing.security import share_headers

ScopedView = Callable[..., HttpResponseBase]
View = Callable[..., HttpResponseBase]
Answer = Callable[[HttpRequest, HttpResponseBase], HttpResponseBase]


def _as_is(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    return response


def scope_required(
    resolve: Callable[[HttpRequest], ViewerScope],
    *,
    no_viewer: Callable[[HttpRequest], HttpResponseBase],
    gone: Callable[[HttpRequest, ShareGone], HttpResponseBase],
    answer: Answer = _as_is,
) -> Callable[[ScopedView], View]:
    """Read-only views (GET and HEAD) of a resolved scope; ``answer`` finishes every response."""

    def decorate(view: ScopedView) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in ("GET", "HEAD"):
                return answer(request, HttpResponseNotAllowed(["GET", "HEAD"]))
            try:
                scope = resolve(request)
            except NoViewer:
                return answer(request, no_viewer(request))
            except ShareGone as stopped:
                return answer(request, gone(request, stopped))
            return answer(request, view(request, scope, *args, **kwargs))

        return wrapper

    return decorate


def share_gone_response(request: HttpRequest, gone: ShareGone) -> HttpResponseBase:
    return share_headers(
        render(request, "sharing/shares/gone.html", {"state": gone.state}, status=HTTPStatus.GONE)
    )


def _sign_in(request: HttpRequest) -> HttpResponseBase:
    return redirect_to_login(request.get_full_path())


def _no_share(request: HttpRequest) -> HttpResponseBase:
    return render(request, "sharing/shares/no_session.html", status=HTTPStatus.FORBIDDEN)


def _with_share_headers(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    return share_headers(response)


# A user's scope has no share to stop working; ``gone`` is there for the type.
for_user = scope_required(user_scope_for, no_viewer=_sign_in, gone=share_gone_response)
for_share = scope_required(
    share_scope_for, no_viewer=_no_share, gone=share_gone_response, answer=_with_share_headers
)
