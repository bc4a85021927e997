"""Where each frame's bytes lie in a stored Part-10 file, and frames decoded or rendered on request.

Only the header is parsed to find the pixel data; the caller then reads exactly those byte ranges
from object storage. Decoding and rendering touch one frame at a time.

Some frames have no byte range of their own: deflated data (offsets in the file are offsets in the
compressed stream), big endian data (the bytes must be swapped) and encapsulated data whose
fragments cannot be told apart. Their layout knows only how many frames there are; such frames
are decoded to Explicit VR Little Endian on request.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import utils as pixel_utils
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import apply_modality_lut
from pydicom.uid import UID, ExplicitVRLittleEndian

from sharing.dicom.errors import DicomInputError
from sharing.dicom.render import _FAILURES, frame_to_display, frame_view

EXPLICIT_VR_LITTLE_ENDIAN = str(ExplicitVRLittleEndian)
_PIXEL_DATA = 0x7FE00010
_ITEM = 0xFFFEE000
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Where a compressed frame starts: JPEG and JPEG-LS SOI; JPEG 2000 and HTJ2K SOC+SIZ, or a JP2 file.
_FRAME_STARTS = (b"\xff\xd8", b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP  ")
_FRAME_END = b"\xff\xd9"  # JPEG EOI, JPEG 2000 EOC: the end of a frame, give or take padding
_MARKER_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.92",
        "1.2.840.10008.1.2.4.93",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
    }
)
# Media types for frames kept in their stored (compressed) syntax: PS3.18 Table 8.7.3-2.
_FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "application/octet-stream",  # RLE Lossless
}
WINDOW_FUNCTIONS = ("linear", "linear_exact", "sigmoid")


class FrameError(DicomInputError):
    """The instance has no frames we can locate, decode or render."""


@dataclass(frozen=True)
class FrameLayout:
    """Byte ranges (start, end exclusive) of each frame; encapsulated frames may be several fragments.

    With no ranges, `count` frames exist but can only be decoded (deflated or big endian data,
    fragments that cannot be grouped into frames).
    """

    transfer_syntax_uid: str
    encapsulated: bool
    frames: tuple[tuple[tuple[int, int], ...], ...]
    count: int = 0

    @property
    def number_of_frames(self) -> int:
        return len(self.frames) or self.count

    @property
    def locatable(self) -> bool:
        """Whether each frame's stored bytes are known (else frames are only decoded)."""
        return bool(self.frames)

    @property
    def media_type(self) -> str | None:
        """The media type of one frame as stored; None if stored frames cannot be sent as they are."""
        if not self.locatable:
            return None
        if not self.encapsulated:
            return "application/octet-stream"
        return _FRAME_MEDIA_TYPES.get(self.transfer_syntax_uid)


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "linear"


def frame_layout(handle: BinaryIO) -> FrameLayout:
    """Locate every frame of the Part-10 file in `handle`, reading its header and item tags only."""
    try:
        return _layout(handle)
    except FrameError:
        raise
    except _FAILURES:
        raise FrameError("cannot locate the frames of this instance") from None


def _layout(handle: BinaryIO) -> FrameLayout:
    ds, syntax = _header(handle)
    count = max(1, _int(ds, "NumberOfFrames", 1))
    if syntax.is_deflated or not syntax.is_little_endian:
        return _decoded_only(ds, syntax, handle, count)
    tag_bytes = handle.read(4)
    if len(tag_bytes) < 4 or _tag(tag_bytes) != _PIXEL_DATA:
        raise FrameError("no pixel data")
    if syntax.is_implicit_VR:
        (length,) = struct.unpack("<I", handle.read(4))
    else:
        handle.read(4)  # VR and reserved bytes
        (length,) = struct.unpack("<I", handle.read(4))
    if length != _UNDEFINED_LENGTH:
        rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
        bits = _int(ds, "BitsAllocated", 0) * _int(ds, "SamplesPerPixel", 1) * rows * columns
        if bits <= 0 or bits % 8:
            raise FrameError("frames are not whole bytes")
        size, data = bits // 8, handle.tell()
        if size * count > length:
            raise FrameError("pixel data shorter than declared")
        ranges = tuple(((data + i * size, data + (i + 1) * size),) for i in range(count))
        return FrameLayout(str(syntax), False, ranges)
    items = _items(handle)
    if not items:
        raise FrameError("no basic offset table")
    (table_start, table_end), fragments = items[0], items[1:]
    if not fragments:
        raise FrameError("no fragments")
    handle.seek(table_start)
    table = handle.read(table_end - table_start)
    offsets = list(struct.unpack(f"<{len(table) // 4}I", table[: len(table) // 4 * 4]))
    if not offsets:
        offsets = _extended_offsets(ds)
    grouped: list[list[tuple[int, int]]] | None = None
    if count == 1:
        grouped = [fragments]
    if grouped is None and len(offsets) == count and offsets[0] == 0:
        grouped = _by_offsets(fragments, offsets)
    if grouped is None and len(fragments) == count:
        grouped = [[fragment] for fragment in fragments]
    if grouped is None and len(fragments) > count and str(syntax) in _MARKER_SYNTAXES:
        grouped = _by_markers(handle, fragments, count)
    if grouped is None:
        # Which fragments make which frame cannot be told from the markers: decode instead.
        return FrameLayout(str(syntax), True, (), count)
    return FrameLayout(str(syntax), True, tuple(tuple(group) for group in grouped))


def _decoded_only(ds: Dataset, syntax: UID, handle: BinaryIO, count: int) -> FrameLayout:
    """Deflated or big endian native data: the frames exist, but only decoding produces them."""
    if syntax.is_compressed:
        raise FrameError("compressed frames in a deflated or big endian syntax")
    if not syntax.is_deflated and handle.read(4) != b"\x7f\xe0\x00\x10":
        raise FrameError("no pixel data")
    if _int(ds, "Rows", 0) <= 0 or _int(ds, "Columns", 0) <= 0 or _int(ds, "BitsAllocated", 0) <= 0:
        raise FrameError("no pixel data")
    return FrameLayout(str(syntax), False, (), count)


def _extended_offsets(ds: Dataset) -> list[int]:
    """The Extended Offset Table (7FE0,0001), 64-bit offsets; empty when absent or malformed."""
    table = ds.get("ExtendedOffsetTable")
    if not isinstance(table, bytes) or not table or len(table) % 8:
        return []
    return list(struct.unpack(f"<{len(table) // 8}Q", table))


def _by_offsets(fragments: list[tuple[int, int]], offsets: list[int]) -> list[list[tuple[int, int]]] | None:
    """Fragments grouped by frame offsets measured from the first fragment's item tag; None when
    an offset points at no fragment's start."""
    first = fragments[0][0] - 8
    starts = {fragment[0] - 8 - first: index for index, fragment in enumerate(fragments)}
    if any(offset not in starts for offset in offsets) or offsets != sorted(offsets):
        return None
    bounds = [starts[offset] for offset in offsets] + [len(fragments)]
    grouped = [fragments[bounds[i] : bounds[i + 1]] for i in range(len(offsets))]
    return grouped if all(grouped) else None


def _by_markers(
    handle: BinaryIO, fragments: list[tuple[int, int]], count: int
) -> list[list[tuple[int, int]]] | None:
    """Fragments grouped into `count` frames by the codestream markers at their edges.

    A fragment that begins with a start-of-image (or start-of-codestream) marker begins a frame;
    failing that, one after a fragment ending in an end-of-image marker does. Either way each
    frame must begin with a start marker. Only the first and last few bytes of each fragment are
    read. None when neither rule yields exactly `count` frames.
    """
    heads, tails = [], []
    for start, end in fragments:
        handle.seek(start)
        heads.append(handle.read(min(12, end - start)))
        handle.seek(max(start, end - 10))
        tails.append(handle.read(end - max(start, end - 10)))
    starts = [i for i, head in enumerate(heads) if i == 0 or head.startswith(_FRAME_STARTS)]
    ends = [i for i in range(len(fragments)) if i == 0 or _FRAME_END in tails[i - 1]]
    for firsts in (starts, ends):
        if len(firsts) == count and all(heads[i].startswith(_FRAME_STARTS) for i in firsts):
            bounds = [*firsts, len(fragments)]
            return [fragments[bounds[i] : bounds[i + 1]] for i in range(count)]
    return None


def _items(handle: BinaryIO) -> list[tuple[int, int]]:
    """(start, end) of each item's value in encapsulated pixel data, offset table first."""
    items: list[tuple[int, int]] = []
    while True:
        header = handle.read(8)
        if len(header) < 8:
            raise FrameError("encapsulated pixel data ends early")
        tag = _tag(header[:4])
        (length,) = struct.unpack("<I", header[4:])
        if tag == _SEQUENCE_DELIMITER:
            return items
        if tag != _ITEM or length == _UNDEFINED_LENGTH:
            raise FrameError("malformed encapsulated pixel data")
        start = handle.tell()
        items.append((start, start + length))
        handle.seek(start + length)


def _tag(data: bytes) -> int:
    group, element = struct.unpack("<HH", data)
    return int(group << 16 | element)


def _header(handle: BinaryIO) -> tuple[Dataset, UID]:
    """The dataset up to its pixel data, with `handle` left at the pixel data element."""
    try:
        ds = pydicom.dcmread(handle, stop_before_pixels=True)
    except InvalidDicomError:
        handle.seek(0)
        ds = pydicom.dcmread(handle, stop_before_pixels=True, force=True)
    declared = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return ds, UID(str(declared or pydicom.uid.ImplicitVRLittleEndian))


def _int(ds: Dataset, keyword: str, default: int) -> int:
    try:
        return int(ds.get(keyword) or default)
    except (TypeError, ValueError):
        return default


def decode_frame(handle: BinaryIO, *, index: int) -> bytes:
    """Frame `index` (0-based) as native little endian bytes, as Explicit VR Little Endian holds it.

    Samples are interleaved or planar as the header's Planar Configuration says, and 1-bit data
    is packed eight pixels to a byte, so the bytes match the instance's metadata.
    """
    try:
        ds, syntax = _header(handle)
        frame = _frame_array(handle, syntax, index=index, raw=True)
    except _FAILURES:
        raise FrameError("cannot decode this frame") from None
    if _int(ds, "SamplesPerPixel", 1) > 1 and _int(ds, "PlanarConfiguration", 0) == 1 and frame.ndim == 3:
        frame = np.moveaxis(frame, -1, 0)
    if _int(ds, "BitsAllocated", 0) == 1:
        return bytes(np.packbits(frame.astype(np.uint8).ravel(), bitorder="little").tobytes())
    little = np.ascontiguousarray(frame).astype(frame.dtype.newbyteorder("<"), copy=False)
    return bytes(little.tobytes())


def _frame_array(handle: BinaryIO, syntax: UID, *, index: int, raw: bool) -> Any:
    """One frame's pixels; deflated files are inflated whole first (their offsets mean nothing)."""
    handle.seek(0)
    if syntax.is_deflated:
        ds = pydicom.dcmread(handle, force=True)
        frame, _ = get_decoder(syntax).as_array(ds, index=index, raw=raw)
        return np.asarray(frame)
    return np.asarray(pixel_utils.pixel_array(handle, index=index, raw=raw, transfer_syntax_uid=syntax))


def render_frame(
    handle: BinaryIO, *, index: int, media_type: str, window: Window | None = None, max_pixels: int
) -> bytes:
    """Frame `index` (0-based) for display, encoded as image/jpeg or image/png."""
    try:
        ds, syntax = _header(handle)
        if _int(ds, "Rows", 0) * _int(ds, "Columns", 0) > max_pixels:
            raise FrameError("image too large to render")
        frame = _frame_array(handle, syntax, index=index, raw=False)
        view = frame_view(ds, index)
        if window is not None and frame.ndim == 2:
            grey = _windowed(np.asarray(apply_modality_lut(frame, view), dtype=np.float64), window)
            photometric = str(view.get("PhotometricInterpretation") or "").strip().upper()
            pixels = 255 - grey if photometric == "MONOCHROME1" else grey
        else:
            pixels = frame_to_display(view, frame)
        image = Image.fromarray(pixels)
        out = io.BytesIO()
        if media_type == "image/png":
            image.save(out, format="PNG")
        else:
            image.save(out, format="JPEG", quality=90)
    except FrameError:
        raise
    except _FAILURES:
        raise FrameError("cannot render this frame") from None
    return out.getvalue()


def _windowed(values: Any, window: Window) -> Any:
    """PS3.3 C.11.2.1.2/3: VOI LUT functions LINEAR, LINEAR_EXACT and SIGMOID into 0..255."""
    center, width = window.center, window.width
    if window.function == "sigmoid":
        scaled = 255.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    elif window.function == "linear_exact":
        scaled = ((values - center) / width + 0.5) * 255.0
    else:
        scaled = ((values - (center - 0.5)) / max(width - 1.0, 1.0) + 0.5) * 255.0
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def parse_window(text: str) -> Window:
    """`center,width[,function]` as in PS3.18 §8.3.5.1.4; raises ValueError when malformed."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError("window is center,width[,function]")
    center, width = float(parts[0]), float(parts[1])
    function = parts[2].lower() if len(parts) == 3 else "linear"
    if (
        not (math.isfinite(center) and math.isfinite(width))
        or width <= 0
        or (width < 1 and function == "linear")
    ):
        raise ValueError("window width must be positive")
    if function not in WINDOW_FUNCTIONS:
        raise ValueError(f"window function is one of {', '.join(WINDOW_FUNCTIONS)}")
    return Window(center, width, function)
