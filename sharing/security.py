"""Security headers every response carries, and what browsers may keep of private responses."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse

# What every response of a share's pages carries: nothing kept by the browser, no referrer sent on
# (a share link is a credential), and no search engine indexing a page it was led to.
SHARE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}

# Nothing inline, nothing from third parties: patients' pages load only Lightbox's own files.
# data: images are allauth's TOTP QR code; blob: is for images and workers a viewer builds.
DEFAULT_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def viewer_assets_policy(policy: str) -> str:
    """The policy for the image viewer's own static files (static/viewer/).

    Its DICOM codecs are WebAssembly, compiled inside its decoding worker, and a worker obeys the
    policy sent with its script, not the page's. 'wasm-unsafe-eval' lets it compile WebAssembly
    (it does not allow eval of JavaScript); every page keeps the strict policy.
    """
    return policy.replace("script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", 1)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = getattr(settings, "LIGHTBOX_CONTENT_SECURITY_POLICY", DEFAULT_POLICY)
        self.viewer_policy = viewer_assets_policy(self.policy)
        self.viewer_prefix = f"{settings.STATIC_URL}viewer/"

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = self.viewer_policy if request.path.startswith(self.viewer_prefix) else self.policy
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"
        )
        return response


def share_headers(response: HttpResponseBase) -> HttpResponseBase:
    for header, value in SHARE_HEADERS.items():
        response[header] = value
    return response


class PrivateResponsesMiddleware:
    """Private pages are not kept by the browser, and nothing under ``/s/`` escapes the share headers.

    A response to a signed-in user that says nothing about caching is a page about them: it gets
    ``no-store``, so the back button on a shared computer shows nothing after sign-out. Responses
    that chose their own policy keep it (images revalidate by their ETag; static files and public
    pages stay cacheable). Everything under the share prefix, including the 404 of an unknown
    token or sub-resource and the 410 of an ended share, gets ``SHARE_HEADERS``: a share page that
    forgot them, or an error raised before a view could add them, still sends no referrer.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.share_prefix = reverse("share:home")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(self.share_prefix):
            share_headers(response)
        elif "Cache-Control" not in response.headers and _signed_in(request):
            response["Cache-Control"] = "no-store"
        return response


def _signed_in(request: HttpRequest) -> bool:
    # No user when a middleware outside authentication answered (static files).
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)
