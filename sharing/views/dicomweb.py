"""DICOMweb over HTTP: QIDO-RS and WADO-RS for a viewer scope, STOW-RS passed to its own view.

Every handler resolves the viewer scope and asks it one question: is this study in scope? A study
outside it answers 404 like one that does not exist, never 403.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import partial
from http import HTTPStatus
from typing import Any

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseNotModified,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from sharing.access.decorators import scope_required
from sharing.access.scope import ShareGone, ViewerScope
from sharing.access.session import viewer_scope_for
from sharing.dicom.errors import DicomInputError
from sharing.dicom.frames import EXPLICIT_VR_LITTLE_ENDIAN, FrameError, Window, parse_window
from sharing.dicomweb import negotiation, qido, wado
from sharing.dicomweb.multipart import Part, literal, multipart_response
from sharing.models import AuditEvent, Instance, Series
from sharing.routes.paths import UidPaths
from sharing.services.audit import Client
from sharing.services.viewer_audit import frames_record, search_record, viewer_access_record
from sharing.storage import ObjectNotFound
from sharing.views import stow
from sharing.views.viewer import dicomweb_root

DICOM_JSON = "application/dicom+json"
# Images and metadata may be kept by the browser alone, and are asked for again each time: a 304
# against their ETag costs a round trip but no bytes, and nothing is shown from the cache after
# access has ended (a revoked share, a signed-out account).
CACHE_PRIVATE = "private, no-cache"
CACHE_SEARCH = "private, no-cache"
JSON_TYPES = "application/dicom+json or application/json"
View = Callable[..., HttpResponseBase]


def _error(status: HTTPStatus, error: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": error, "detail": detail}, status=status)


def _not_found() -> JsonResponse:
    return _error(HTTPStatus.NOT_FOUND, "not found", "no such study, series, instance or frame")


def _not_acceptable(detail: str) -> JsonResponse:
    response = _error(HTTPStatus.NOT_ACCEPTABLE, "not acceptable", detail)
    response["Vary"] = "Accept"
    return response


def _no_viewer(request: HttpRequest) -> HttpResponseBase:
    return _error(HTTPStatus.UNAUTHORIZED, "authentication required", "sign in to see images")


def _share_gone(request: HttpRequest, gone: ShareGone) -> HttpResponseBase:
    return _error(HTTPStatus.GONE, "share link ended", f"this share link is {gone.state.label.lower()}")


def _finish(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    response = _not_modified_if_current(request, response)
    if _is_share_route(request):
        # Share recipients: nothing kept by the browser, nothing sent on as a referrer.
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "no-referrer"
    return response


# The scope is resolved first: nobody signed in gets 401 and a share that stopped working 410,
# before any lookup.
_scoped = scope_required(viewer_scope_for, no_viewer=_no_viewer, gone=_share_gone, answer=_finish)


def _not_modified_if_current(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """304 when the client already holds this representation (its ETag in If-None-Match).

    Streaming bodies are generators, so answering 304 costs no read from the object store.
    """
    etag = response.get("ETag")
    # A matching If-None-Match wins over Range (RFC 9110 §13.2.2).
    if response.status_code not in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT) or not etag:
        return response
    held = [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]
    if etag not in held and "*" not in held:
        return response
    not_modified = HttpResponseNotModified()
    for header in ("ETag", "Cache-Control", "Vary", "X-Content-Type-Options"):
        if header in response:
            not_modified[header] = response[header]
    if isinstance(response, StreamingHttpResponse):
        response.close()
    return not_modified


def _phi_headers(
    response: HttpResponseBase, *, cache_control: str, etag: str | None = None
) -> HttpResponseBase:
    response["Cache-Control"] = cache_control
    response["Vary"] = "Accept, Cookie"
    response["X-Content-Type-Options"] = "nosniff"
    if etag is not None:
        response["ETag"] = _etag(etag)
    return response


def _etag(identity: str) -> str:
    """A strong ETag for a representation, from what identifies it (object, hash, options)."""
    return '"' + hashlib.sha256(identity.encode()).hexdigest()[:32] + '"'


def _url_for(request: HttpRequest, scope: ViewerScope) -> qido.UrlFor:
    """URLs of the results: the origin worked out once per search, each route once per process."""
    origin = request.build_absolute_uri("/").removesuffix("/")
    paths, namespace = UidPaths(), scope.url_namespace

    def url_for(name: str, *args: str) -> str:
        return origin + paths(namespace + name, *args)

    return url_for


def _json(
    request: HttpRequest, body: Any, *, cache_control: str, etag: str | None = None
) -> HttpResponseBase:
    response = JsonResponse(body, safe=False, content_type=DICOM_JSON)
    return _phi_headers(response, cache_control=cache_control, etag=etag)


# --- STOW-RS shares these URLs -------------------------------------------------------------------


def _is_share_route(request: HttpRequest) -> bool:
    return request.resolver_match is not None and "share" in request.resolver_match.namespaces


@csrf_exempt  # POST is STOW-RS, which enforces CSRF itself for cookie-authenticated requests
def studies(request: HttpRequest) -> HttpResponseBase:
    if request.method == "POST" and not _is_share_route(request):
        return stow.store_instances(request)
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD", "POST"])
    return search_for_studies(request)


@csrf_exempt  # as above
def study(request: HttpRequest, study_instance_uid: str) -> HttpResponseBase:
    if request.method == "POST" and not _is_share_route(request):
        return stow.store_instances(request, study_instance_uid=study_instance_uid)
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD", "POST"])
    return retrieve_study(request, study_instance_uid=study_instance_uid)


# --- QIDO-RS -------------------------------------------------------------------------------------


def _search(
    request: HttpRequest,
    scope: ViewerScope,
    level: str,
    run: Callable[[], list[dict[str, Any]]],
    uid: str = "",
) -> HttpResponseBase:
    if not negotiation.accepts_json(request.headers.get("Accept", "")):
        return _not_acceptable(f"search results are {JSON_TYPES}")
    try:
        results = run()
    except qido.QueryError as exc:
        return _error(HTTPStatus.BAD_REQUEST, "bad query", str(exc))
    keys = sorted(k for k in request.GET if k not in ("includefield", "fuzzymatching"))
    search_record(
        scope,
        path=request.path_info,
        query=dict(request.GET.lists()),
        detail={"dicomweb": level, "keys": keys, "results": len(results)},
        study_instance_uid=uid,
        client=Client.of(request),
    )
    return _json(request, results, cache_control=CACHE_SEARCH)


@_scoped
def search_for_studies(request: HttpRequest, scope: ViewerScope) -> HttpResponseBase:
    return _search(
        request,
        scope,
        "studies",
        lambda: qido.search_studies(
            studies=scope.studies(), query=dict(request.GET.lists()), url_for=_url_for(request, scope)
        ),
    )


@_scoped
def search_for_series(request: HttpRequest, scope: ViewerScope, study_instance_uid: str) -> HttpResponseBase:
    found = wado.study_in_scope(scope=scope, study_instance_uid=study_instance_uid)
    if found is None:
        return _not_found()
    return _search(
        request,
        scope,
        "series",
        lambda: qido.search_series(
            study=found, query=dict(request.GET.lists()), url_for=_url_for(request, scope)
        ),
        study_instance_uid,
    )


@_scoped
def search_for_instances(
    request: HttpRequest, scope: ViewerScope, study_instance_uid: str, series_instance_uid: str
) -> HttpResponseBase:
    series = wado.series_in_scope(
        scope=scope, study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid
    )
    if series is None:
        return _not_found()
    return _search(
        request,
        scope,
        "instances",
        lambda: qido.search_instances(
            series=series, query=dict(request.GET.lists()), url_for=_url_for(request, scope)
        ),
        study_instance_uid,
    )


# --- WADO-RS metadata ----------------------------------------------------------------------------


def _metadata(
    request: HttpRequest, scope: ViewerScope, study_uid: str, series: list[Series]
) -> HttpResponseBase:
    """The series' DICOM JSON, served from the text cached at ingest without parsing it: a
    500-instance series is 1.5 MB of JSON, and decoding and re-encoding it would cost more than
    everything else in the request."""
    if not negotiation.accepts_json(request.headers.get("Accept", "")):
        return _not_acceptable(f"metadata is {JSON_TYPES}")
    etag = "|".join(wado.metadata_cache_key(one) for one in series)
    # The cached text carries paths under the signed-in viewer's root; every BulkDataURI (pixel
    # data, and large binaries in any sequence) becomes absolute, under this viewer's root.
    base = request.build_absolute_uri("/").rstrip("/")
    default_root, root = dicomweb_root(""), dicomweb_root(scope.url_namespace)
    arrays = [wado.series_metadata_text(series=one, pixel_data_uri=wado.frames_path) for one in series]
    items = [text.strip()[1:-1].strip() for text in arrays]
    body = b"[" + b",".join(item for item in items if item) + b"]"
    for separator in (b'"BulkDataURI": "', b'"BulkDataURI":"'):
        body = body.replace(
            separator + default_root.encode() + b"/", separator + (base + root).encode() + b"/"
        )
    viewer_access_record(
        scope,
        action=AuditEvent.Action.VIEW,
        client=Client.of(request),
        study_instance_uid=study_uid,
        detail={
            "dicomweb": "metadata",
            "series": len(series),
            "instances": sum(one.number_of_instances for one in series),
        },
    )
    response = HttpResponse(body, content_type=DICOM_JSON)
    return _phi_headers(response, cache_control=CACHE_PRIVATE, etag=etag)


@_scoped
def study_metadata(request: HttpRequest, scope: ViewerScope, study_instance_uid: str) -> HttpResponseBase:
    found = wado.study_in_scope(scope=scope, study_instance_uid=study_instance_uid)
    if found is None:
        return _not_found()
    series = list(
        Series.objects.filter(study=found, number_of_instances__gt=0).order_by("series_number", "pk")
    )
    return _metadata(request, scope, study_instance_uid, series)


@_scoped
def series_metadata(
    request: HttpRequest, scope: ViewerScope, study_instance_uid: str, series_instance_uid: str
) -> HttpResponseBase:
    series = wado.series_in_scope(
        scope=scope, study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid
    )
    if series is None:
        return _not_found()
    return _metadata(request, scope, study_instance_uid, [series])


# --- WADO-RS instances ---------------------------------------------------------------------------


def _multipart(
    request: HttpRequest, parts: Sequence[Part], *, type_params: str, etag: str
) -> HttpResponseBase:
    response = multipart_response(request, parts, type_params=type_params, etag=_etag(etag))
    if response.status_code == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE:
        return response
    return _phi_headers(response, cache_control=CACHE_PRIVATE)


def _images_record(request: HttpRequest, scope: ViewerScope, instances: list[Instance]) -> None:
    """Frames, whole instances and rendered images are audited once per viewer, series and half
    hour (the viewer retrieves a series whole, then asks for single frames)."""
    for study_uid, series_uid in dict.fromkeys(
        (i.study_instance_uid, i.series_instance_uid) for i in instances
    ):
        frames_record(
            scope, series_instance_uid=series_uid, study_instance_uid=study_uid, client=Client.of(request)
        )


def _retrieve(request: HttpRequest, scope: ViewerScope, instances: list[Instance]) -> HttpResponseBase:
    # Whole files are a download: a share that allows viewing only gets frames, metadata and
    # rendered images, which is what the viewer reads, but not the files themselves.
    if not scope.can_download:
        return _error(
            HTTPStatus.FORBIDDEN,
            "download not allowed",
            "this share link is for viewing only: the patient did not allow downloading the files",
        )
    accept = request.headers.get("Accept", "")
    for instance in instances:
        if not negotiation.accepts_instance(accept, transfer_syntax=instance.transfer_syntax_uid):
            return _not_acceptable(
                'instances are sent as multipart/related; type="application/dicom" '
                "in their stored transfer syntax (transfer-syntax=* or the stored one)"
            )
    _images_record(request, scope, instances)
    parts = [
        Part(
            f"application/dicom; transfer-syntax={instance.transfer_syntax_uid}",
            partial(wado.instance_bytes, instance),
            instance.size_bytes,
        )
        for instance in instances
    ]
    etag = "|".join(f"{instance.object_key}:{instance.sha256}" for instance in instances)
    return _multipart(request, parts, type_params='type="application/dicom"', etag=etag)


@_scoped
def retrieve_study(request: HttpRequest, scope: ViewerScope, study_instance_uid: str) -> HttpResponseBase:
    found = wado.study_in_scope(scope=scope, study_instance_uid=study_instance_uid)
    if found is None:
        return _not_found()
    instances = list(
        Instance.objects.filter(series__study=found, state=Instance.State.INDEXED).order_by(
            "series__series_number", "series_id", "instance_number", "pk"
        )
    )
    return _retrieve(request, scope, instances)


@_scoped
def retrieve_series(
    request: HttpRequest, scope: ViewerScope, study_instance_uid: str, series_instance_uid: str
) -> HttpResponseBase:
    series = wado.series_in_scope(
        scope=scope, study_instance_uid=study_instance_uid, series_instance_uid=series_instance_uid
    )
    if series is None:
        return _not_found()
    return _retrieve(request, scope, list(qido.series_instances(series=series)))


def _instance(scope: ViewerScope, study: str, series: str, sop: str) -> Instance | None:
    return wado.instance_in_scope(
        scope=scope, study_instance_uid=study, series_instance_uid=series, sop_instance_uid=sop
    )


@_scoped
def retrieve_instance(
    request: HttpRequest,
    scope: ViewerScope,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
) -> HttpResponseBase:
    instance = _instance(scope, study_instance_uid, series_instance_uid, sop_instance_uid)
    if instance is None:
        return _not_found()
    return _retrieve(request, scope, [instance])


# --- WADO-RS frames and rendered images ----------------------------------------------------------


def _frame_numbers(text: str) -> list[int] | HttpResponse:
    numbers: list[int] = []
    for part in text.split(","):
        if not part.isdigit() or int(part) < 1:
            return _error(HTTPStatus.BAD_REQUEST, "bad frame number", "frames are numbered from 1")
        numbers.append(int(part))
    return numbers


@_scoped
def retrieve_frames(
    request: HttpRequest,
    scope: ViewerScope,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    frames: str,
) -> HttpResponseBase:
    numbers = _frame_numbers(frames)
    if isinstance(numbers, HttpResponse):
        return numbers
    source = wado.frame_source(
        scope=scope,
        study_instance_uid=study_instance_uid,
        series_instance_uid=series_instance_uid,
        sop_instance_uid=sop_instance_uid,
    )
    if source is None or source.layout is None or max(numbers) > source.layout.number_of_frames:
        return _not_found()
    instance, layout = source.instance, source.layout
    _images_record(request, scope, [instance])
    choice = negotiation.frame_choice(request.headers.get("Accept", ""), layout)
    etag = f"{instance.object_key}:{instance.sha256}:frames={frames}:{choice}"
    if choice == "stored":
        media_type = f"{layout.media_type}; transfer-syntax={layout.transfer_syntax_uid}"
        if not layout.encapsulated:
            media_type = f"application/octet-stream; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"
        parts = [
            Part(
                media_type,
                partial(wado.stored_frame, instance, layout, n),
                wado.stored_frame_size(layout, n),
            )
            for n in numbers
        ]
        return _multipart(request, parts, type_params=f'type="{media_type.split(";")[0]}"', etag=etag)
    if choice == "decoded":
        try:
            decoded = [wado.decoded_frame(instance, n) for n in numbers]
        except FrameError:
            return _not_acceptable("this frame cannot be decoded; ask for its stored transfer syntax")
        media_type = f"application/octet-stream; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"
        decoded_parts = [Part(media_type, literal(data), len(data)) for data in decoded]
        return _multipart(request, decoded_parts, type_params='type="application/octet-stream"', etag=etag)
    if not layout.locatable:
        return _not_acceptable(
            "these frames are only sent decoded, as multipart/related; type=application/octet-stream "
            f"with transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN} (or *)"
        )
    return _not_acceptable(
        f"frames are sent as multipart/related with type={layout.media_type or 'application/octet-stream'} "
        f"(transfer-syntax={layout.transfer_syntax_uid}) or application/octet-stream with "
        f"transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"
    )


@_scoped
def retrieve_bulk_data(
    request: HttpRequest,
    scope: ViewerScope,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    tag_path: str,
) -> HttpResponseBase:
    """A large binary value of the instance's header, at the BulkDataURI its metadata gave
    (PS3.18 §10.4.1.1.4), as multipart/related; type="application/octet-stream"."""
    if not negotiation.accepts_bulk_data(request.headers.get("Accept", "")):
        return _not_acceptable('bulk data is multipart/related; type="application/octet-stream"')
    instance = _instance(scope, study_instance_uid, series_instance_uid, sop_instance_uid)
    if instance is None:
        return _not_found()
    try:
        data = wado.bulk_data(instance, tag_path)
    except (DicomInputError, ObjectNotFound):
        return _not_found()
    viewer_access_record(
        scope,
        action=AuditEvent.Action.VIEW,
        client=Client.of(request),
        study_instance_uid=study_instance_uid,
        detail={"dicomweb": "bulkdata", "series": series_instance_uid, "tag_path": tag_path},
    )
    etag = f"{instance.object_key}:{instance.sha256}:bulkdata={tag_path}"
    parts = [Part("application/octet-stream", literal(data), len(data))]
    return _multipart(request, parts, type_params='type="application/octet-stream"', etag=etag)


def _rendered(
    request: HttpRequest, scope: ViewerScope, instance: Instance | None, number: int
) -> HttpResponseBase:
    media_type = negotiation.rendered_media_type(request.headers.get("Accept", ""))
    if media_type is None:
        return _not_acceptable("rendered images are image/jpeg or image/png")
    window: Window | None = None
    if request.GET.get("window"):
        try:
            window = parse_window(request.GET["window"])
        except ValueError as exc:
            return _error(HTTPStatus.BAD_REQUEST, "bad window", str(exc))
    if instance is None or number > instance.number_of_frames:
        return _not_found()
    try:
        data = wado.rendered_frame(instance, number, media_type=media_type, window=window)
    except (FrameError, ObjectNotFound):
        return _not_found()
    _images_record(request, scope, [instance])
    response = HttpResponse(data, content_type=media_type)
    etag = f"{instance.object_key}:{instance.sha256}:rendered={number}:{media_type}:{request.GET.get('window', '')}"
    return _phi_headers(response, cache_control=CACHE_PRIVATE, etag=etag)


@_scoped
def render_instance(
    request: HttpRequest,
    scope: ViewerScope,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
) -> HttpResponseBase:
    instance = _instance(scope, study_instance_uid, series_instance_uid, sop_instance_uid)
    return _rendered(request, scope, instance, 1)


@_scoped
def render_frame(
    request: HttpRequest,
    scope: ViewerScope,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    frame: str,
) -> HttpResponseBase:
    numbers = _frame_numbers(frame)
    if isinstance(numbers, HttpResponse):
        return numbers
    if len(numbers) != 1:
        return _error(HTTPStatus.BAD_REQUEST, "bad frame number", "one frame at a time")
    instance = _instance(scope, study_instance_uid, series_instance_uid, sop_instance_uid)
    return _rendered(request, scope, instance, numbers[0])
