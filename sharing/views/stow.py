"""STOW-RS: ``POST /dicomweb/studies[/{StudyInstanceUID}]`` (DICOM PS3.18 §10.5).

Records staff store instances here from a browser session (CSRF enforced) or from a DICOMweb
client with a personal API token of the ``store`` scope (``Authorization: Bearer``, checked by
``sharing.auth.tokens``). A token request carries no cookie, so there is no CSRF to forge: the
exemption applies to token requests alone. Account passwords (HTTP Basic) are refused there.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from sharing.auth.tokens import REALM, api_token_of
from sharing.conf import app_settings
from sharing.models import User
from sharing.services.audit import Client
from sharing.services.multipart import MultipartError, UnsupportedMediaType, capped_reader
from sharing.services.stow import DICOM_JSON_MEDIA_TYPE, stow_receive, stow_response


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> HttpResponse:
        return _error(HTTPStatus.FORBIDDEN, "CSRF check failed", reason)


@csrf_exempt  # enforced in _authorized_user for every request that is not token-authenticated
@require_POST
def store_instances(request: HttpRequest, study_instance_uid: str | None = None) -> HttpResponse:
    user_or_refusal = _authorized_user(request)
    if isinstance(user_or_refusal, HttpResponse):
        return user_or_refusal
    read = _body_reader(request)
    if isinstance(read, HttpResponse):
        return read
    try:
        items = stow_receive(
            read=read,
            content_type=request.META.get("CONTENT_TYPE", ""),
            user=user_or_refusal,
            study_instance_uid=study_instance_uid,
            client=Client.of(request),
        )
    except UnsupportedMediaType as exc:
        return _error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported media type", str(exc))
    except MultipartError as exc:
        return _error(HTTPStatus.BAD_REQUEST, "malformed multipart body", str(exc))
    response = stow_response(items=items, studies_url=request.build_absolute_uri(reverse("stow")))
    return JsonResponse(response.dataset, status=response.status, content_type=DICOM_JSON_MEDIA_TYPE)


def _body_reader(request: HttpRequest) -> Callable[[int], bytes] | HttpResponse:
    """How to read the body as a stream: ``request.read`` never loads it whole, unlike ``body``."""
    limit = app_settings.UPLOAD_MAX_BYTES
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > 0:
        if int(length) > limit:
            return _error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "request too large",
                f"at most {limit} bytes per request: split the instances over several requests",
            )
        return request.read
    # A chunked body has no length, and Django then reads nothing. Servers that end such a
    # body themselves (gunicorn, mod_wsgi) say so with wsgi.input_terminated.
    if request.META.get("wsgi.input_terminated"):
        return capped_reader(request.META["wsgi.input"].read, limit=limit)
    return _error(
        HTTPStatus.LENGTH_REQUIRED, "Content-Length required", "this server needs the body's length up front"
    )


def _authorized_user(request: HttpRequest) -> User | HttpResponse:
    """The records staff member behind the request, or the response refusing it."""
    user = request.user
    if not isinstance(user, User) or not user.is_authenticated:
        return _unauthorized("sign in, or send a personal API token of records staff (Authorization: Bearer)")
    if not user.is_records_staff:
        return _error(HTTPStatus.FORBIDDEN, "forbidden", "only records staff may store instances")
    if api_token_of(request) is not None:
        return user
    check = _CsrfCheck(_no_response)
    check.process_request(request)
    refusal = check.process_view(request, _no_response, (), {})
    return refusal if refusal is not None else user


def _no_response(request: HttpRequest) -> HttpResponse:
    """Stands in for the view in the CSRF check (which must not see the view's exemption)."""
    return HttpResponse()


def _unauthorized(detail: str) -> HttpResponse:
    response = _error(HTTPStatus.UNAUTHORIZED, "authentication required", detail)
    response["WWW-Authenticate"] = REALM
    return response


def _error(status: HTTPStatus, error: str, detail: str) -> HttpResponse:
    body: dict[str, Any] = {"error": error, "detail": detail}
    return JsonResponse(body, status=status)
