"""The same pages for two kinds of viewer: a signed-in user, or the holder of an opened share.

A page view takes ``(request, scope, …)``; ``for_user`` and ``for_share`` resolve the scope and are
applied where the URL is declared, so one view serves ``/studies/…`` and ``/s/studies/…``.
Share pages add the share headers themselves; the middleware adds them to anything else that
answers under ``/s/`` (``sharing.security.PrivateResponsesMiddleware``).
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
from django.urls import reverse

from sharing.dicomweb.scope import NoViewer, ShareGone, ViewerScope, share_scope_for, user_scope_for
from sharing.security import share_headers

ScopedView = Callable[..., HttpResponseBase]
View = Callable[..., HttpResponseBase]


def dicomweb_root(url_namespace: str = "") -> str:
    """Where DICOMweb lives for a viewer: "/dicomweb" for users, "/s/dicomweb" with "share:"."""
    return reverse(f"{url_namespace}stow").removesuffix("/studies")


def share_gone_response(request: HttpRequest, gone: ShareGone) -> HttpResponseBase:
    return share_headers(
        render(request, "sharing/shares/gone.html", {"state": gone.state}, status=HTTPStatus.GONE)
    )


def for_user(view: ScopedView) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        try:
            scope: ViewerScope = user_scope_for(request)
        except NoViewer:
            return redirect_to_login(request.get_full_path())
        return view(request, scope, *args, **kwargs)

    return wrapper


def for_share(view: ScopedView) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method not in ("GET", "HEAD"):
            return share_headers(HttpResponseNotAllowed(["GET", "HEAD"]))
        try:
            scope: ViewerScope = share_scope_for(request)
        except NoViewer:
            return share_headers(
                render(request, "sharing/shares/no_session.html", status=HTTPStatus.FORBIDDEN)
            )
        except ShareGone as gone:
            return share_gone_response(request, gone)
        return share_headers(view(request, scope, *args, **kwargs))

    return wrapper
