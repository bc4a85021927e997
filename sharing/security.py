"""Security headers every response carries."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

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
