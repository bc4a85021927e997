"""Uploading images in the browser: files, a CD or USB folder, or a zip.

The page works as a plain form; ``static/js/upload.js`` adds drag and drop, batching (Django
takes at most DATA_UPLOAD_MAX_NUMBER_FILES files per request) and a progress bar, and asks for
the same report as JSON.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from sharing.conf import app_settings
from sharing.models import User
from sharing.services.audit import Client
from sharing.services.uploads import UploadReport, upload_receive


# Exempt only so that a request over the size limit is refused before Django reads its body
# (checking CSRF reads it); _upload_page is csrf_protect-ed, and that is where anything happens.
@csrf_exempt
@login_required
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > app_settings.UPLOAD_MAX_BYTES:
            return _refusal(
                request,
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"That is more than {_size(app_settings.UPLOAD_MAX_BYTES)} in one go. "
                "Upload fewer files at a time.",
            )
    try:
        return _upload_page(request)
    except TooManyFilesSent:
        return _refusal(
            request,
            HTTPStatus.BAD_REQUEST,
            f"That is more than {_max_files()} files in one go. Put them in a zip, "
            "or turn on JavaScript so Lightbox can send them in batches.",
        )


@csrf_protect
def _upload_page(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)  # login_required
    if request.method == "GET":
        return _page(request, user=user)
    files = request.FILES.getlist("files")
    if not files:
        return _refusal(request, HTTPStatus.BAD_REQUEST, "Choose at least one file or folder to upload.")
    report = upload_receive(files=files, user=user, client=Client.of(request))
    if _wants_json(request):
        return JsonResponse(report.as_json())
    return _page(request, user=user, report=report)


def _page(
    request: HttpRequest,
    *,
    user: User,
    report: UploadReport | None = None,
    error: str = "",
    status: int = HTTPStatus.OK,
) -> HttpResponse:
    context: dict[str, Any] = {
        "is_patient": user.role == User.Role.PATIENT,
        "report": report,
        "counts": report.counts() if report else None,
        "error": error,
        "max_files": _max_files(),
        "max_bytes": app_settings.UPLOAD_MAX_BYTES,
    }
    return render(request, "sharing/upload.html", context, status=status)


def _refusal(request: HttpRequest, status: HTTPStatus, message: str) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": message}, status=status)
    user = request.user
    assert isinstance(user, User)
    return _page(request, user=user, error=message, status=status)


def _wants_json(request: HttpRequest) -> bool:
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def _max_files() -> int:
    return int(settings.DATA_UPLOAD_MAX_NUMBER_FILES or 100)


def _size(n: int) -> str:
    return f"{n / 1024**3:.0f} GB" if n >= 1024**3 else f"{n / 1024**2:.0f} MB"
