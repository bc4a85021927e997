"""Streaming multipart/related parsing for STOW-RS bodies.

A body can be gigabytes: it is split on its boundary while it is read from the request, each
part streamed to a temporary file, so memory holds about one chunk whatever the size.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.utils.http import parse_header_parameters

logger = logging.getLogger(__name__)


CHUNK_SIZE = 256 * 1024
DICOM_MEDIA_TYPE = "application/dicom"


class MultipartError(Exception):
    """The body is not a well-formed multipart message (or ended before its closing boundary)."""


class UnsupportedMediaType(Exception):
    """The request is not multipart/related with application/dicom parts."""


@dataclass(frozen=True)
class BodyPart:
    content_type: str
    path: Path
    size: int


class _StreamBuffer:
    """Reads a stream in chunks and consumes it up to markers, passing what precedes them on."""

    def __init__(self, read: Callable[[int], bytes], chunk_size: int) -> None:
        self._read = read
        self._chunk_size = chunk_size
        self._data = bytearray()
        self._eof = False

    def push(self, data: bytes) -> None:
        self._data[:0] = data

    def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            data = self._read(self._chunk_size)
        except OSError as exc:  # the client went away mid-body (Django's UnreadablePostError)
            raise MultipartError("the request body could not be read to its end") from exc
        if not data:
            self._eof = True
            return False
        self._data += data
        return True

    def read_until(
        self, marker: bytes, *, sink: Callable[[bytes], object] | None = None, limit: int | None = None
    ) -> bool:
        """Consume through ``marker``, giving the bytes before it to ``sink``.

        Returns False if the stream ends first. Only ``len(marker) - 1`` bytes are held back
        between reads, so memory stays at one chunk whatever the distance to the marker.
        """
        passed = 0
        keep = len(marker) - 1
        while True:
            index = self._data.find(marker)
            cut = index if index >= 0 else max(0, len(self._data) - keep)
            passed += cut
            if limit is not None and passed > limit:
                raise MultipartError("a multipart boundary or header line is missing")
            if sink is not None and cut:
                sink(bytes(self._data[:cut]))
            if index >= 0:
                del self._data[: index + len(marker)]
                return True
            del self._data[:cut]
            if not self._fill():
                if sink is not None and self._data:
                    sink(bytes(self._data))
                self._data.clear()
                return False


def capped_reader(read: Callable[[int], bytes], *, limit: int) -> Callable[[int], bytes]:
    """``read`` that refuses to go past ``limit`` bytes, for a body that came without a length."""
    total = 0

    def read_capped(size: int) -> bytes:
        nonlocal total
        data = read(size)
        total += len(data)
        if total > limit:
            raise MultipartError("the body is larger than the upload limit")
        return data

    return read_capped


def multipart_boundary(content_type: str) -> bytes:
    """The boundary of a STOW-RS request, after checking it asks to store DICOM Part-10 files."""
    try:
        media_type, params = parse_header_parameters(content_type)
    except ValueError as exc:
        raise MultipartError("the Content-Type header cannot be parsed") from exc
    if media_type != "multipart/related":
        raise UnsupportedMediaType(
            f'expected multipart/related; type="{DICOM_MEDIA_TYPE}", not {media_type or "nothing"}'
        )
    part_type = params.get("type", DICOM_MEDIA_TYPE).strip().lower()
    if part_type != DICOM_MEDIA_TYPE:
        raise UnsupportedMediaType(f"only {DICOM_MEDIA_TYPE} parts are accepted, not {part_type}")
    boundary = params.get("boundary", "")
    if not 0 < len(boundary) <= 70 or not boundary.isascii():
        raise MultipartError("the Content-Type header has no valid boundary parameter")
    return boundary.encode("ascii")


def multipart_parts(
    *,
    read: Callable[[int], bytes],
    boundary: bytes,
    directory: Path,
    max_part_bytes: int,
    chunk_size: int = CHUNK_SIZE,
) -> Generator[BodyPart, None, None]:
    """Each part of a multipart body as a temporary file, deleted when the next one is asked for.

    Wrap in ``contextlib.closing`` so the last file goes too if the caller stops early.
    """
    buffer = _StreamBuffer(read, chunk_size)
    delimiter = b"\r\n--" + boundary
    buffer.push(b"\r\n")  # a body may open with its first boundary: same pattern as the rest
    if not buffer.read_until(delimiter, limit=1024 * 1024):
        raise MultipartError("no multipart boundary found in the body")
    while True:
        line = bytearray()
        ended = not buffer.read_until(b"\r\n", sink=line.extend, limit=1024)
        if line.startswith(b"--"):
            return  # the close delimiter; any epilogue is ignored
        if ended or line.strip(b" \t"):
            raise MultipartError("the body ends, or has stray bytes, after a boundary")
        content_type = _part_headers(buffer).get("content-type", "")
        with _part_file(directory=directory, max_bytes=max_part_bytes) as part:
            if not buffer.read_until(delimiter, sink=part.write):
                raise MultipartError("the body ends inside a part, before its closing boundary")
            part.handle.close()
            yield BodyPart(content_type=content_type, path=part.path, size=part.size)


class _PartFile:
    def __init__(self, handle: IO[bytes], max_bytes: int) -> None:
        self.handle = handle
        self.path = Path(handle.name)
        self.size = 0
        self._max_bytes = max_bytes

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._max_bytes:
            raise MultipartError("a part is larger than the upload limit")
        self.handle.write(data)


@contextlib.contextmanager
def _part_file(*, directory: Path, max_bytes: int) -> Iterator[_PartFile]:
    """A temporary file for one part, gone when the block ends whatever happens."""
    handle = tempfile.NamedTemporaryFile(dir=directory, prefix="stow-", suffix=".part", delete=False)  # noqa: SIM115
    try:
        with handle:
            yield _PartFile(handle, max_bytes)
    finally:
        Path(handle.name).unlink(missing_ok=True)


def _part_headers(buffer: _StreamBuffer) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(64):
        line = bytearray()
        if not buffer.read_until(b"\r\n", sink=line.extend, limit=8192):
            raise MultipartError("the body ends inside the headers of a part")
        if not line:
            return headers
        name, colon, value = bytes(line).decode("latin-1").partition(":")
        if not colon:
            raise MultipartError("a part header has no colon")
        headers[name.strip().lower()] = value.strip()
    raise MultipartError("a part has too many headers")
