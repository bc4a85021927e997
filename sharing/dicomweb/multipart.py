"""multipart/related bodies (PS3.18 §8.7.1), sent whole or as one byte range (RFC 9110 §14).

When every part's size is known beforehand (frames, instances, bulk data), the body is a fixed
sequence of bytes: its boundary is derived from the representation's ETag, so the same request
always gets the same bytes. It then carries a Content-Length and answers ``Range: bytes=…`` with
206 Partial Content, so a client can resume an interrupted transfer. Parts are read from the
object store as they are sent, never held whole.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus
from typing import NamedTuple

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

# Reads bytes [start, end) of a part's content; end None means to its end.
Reader = Callable[[int, int | None], Iterator[bytes]]
_SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class Part(NamedTuple):
    content_type: str
    read: Reader
    size: int | None = None  # None: not known before sending (no Content-Length, no ranges)


def literal(data: bytes) -> Reader:
    """A reader of bytes already in memory."""

    def read(start: int, end: int | None) -> Iterator[bytes]:
        yield data[start:end]

    return read


class Segment(NamedTuple):
    size: int | None
    read: Reader


def _segments(parts: Sequence[Part], boundary: str) -> list[Segment]:
    segments = []
    for part in parts:
        head = f"--{boundary}\r\nContent-Type: {part.content_type}\r\n\r\n".encode()
        segments += [
            Segment(len(head), literal(head)),
            Segment(part.size, part.read),
            Segment(2, literal(b"\r\n")),
        ]
    closing = f"--{boundary}--\r\n".encode()
    return [*segments, Segment(len(closing), literal(closing))]


def _whole(segments: list[Segment]) -> Iterator[bytes]:
    for segment in segments:
        yield from segment.read(0, None)


def window(segments: Sequence[Segment], start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) of segments laid end to end; only the segments that overlap are read."""
    offset = 0
    for segment in segments:
        size = segment.size or 0
        first, last = offset, offset + size
        offset = last
        if last <= start:
            continue
        if first >= end:
            break
        yield from segment.read(max(start - first, 0), min(end, last) - first)


class Unsatisfiable(Exception):
    pass


def requested_range(request: HttpRequest, *, etag: str, total: int) -> tuple[int, int] | None:
    """The one byte range [start, end) the request asks for, or None to send everything.

    Several ranges, a malformed header, or an ``If-Range`` naming another representation all get
    the whole body, as RFC 9110 allows. Raises ``Unsatisfiable`` for a range past the end.
    """
    header = request.headers.get("Range", "").strip()
    if not header or request.method not in ("GET", "HEAD"):
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        return None
    match = _SINGLE_RANGE.match(header.replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or total == 0:
            raise Unsatisfiable
        return max(0, total - suffix), total
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= total:
        raise Unsatisfiable
    return start, total if not last else min(int(last) + 1, total)


def multipart_response(
    request: HttpRequest, parts: Sequence[Part], *, type_params: str, etag: str
) -> HttpResponse | StreamingHttpResponse:
    """``parts`` as multipart/related, whole (200) or the requested range (206, or 416)."""
    boundary = hashlib.sha256(f"lightbox-boundary:{etag}".encode()).hexdigest()[:32]
    content_type = f"multipart/related; {type_params}; boundary={boundary}"
    segments = _segments(parts, boundary)
    sizes = [segment.size for segment in segments]
    if any(size is None for size in sizes):
        response = StreamingHttpResponse(_whole(segments), content_type=content_type)
        response["ETag"] = etag
        return response
    total = sum(size or 0 for size in sizes)
    try:
        wanted = requested_range(request, etag=etag, total=total)
    except Unsatisfiable:
        refused = JsonResponse(
            {"error": "range not satisfiable", "detail": f"the body is {total} bytes"},
            status=HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
        )
        refused["Content-Range"] = f"bytes */{total}"
        return refused
    if wanted is None:
        response = StreamingHttpResponse(_whole(segments), content_type=content_type)
        response["Content-Length"] = str(total)
    else:
        start, end = wanted
        response = StreamingHttpResponse(
            window(segments, start, end),
            content_type=content_type,
            status=HTTPStatus.PARTIAL_CONTENT,
        )
        response["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
        response["Content-Length"] = str(end - start)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    return response
