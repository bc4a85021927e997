"""Turning one DICOM instance into a small preview image, without trusting its bytes.

Only the header is parsed up front; the declared size is checked before any pixel is decoded, and at
most one frame (the middle one) is ever decoded. Anything that is not a displayable image gets a
neutral placeholder tile that never shows text taken from the file.
"""

from __future__ import annotations

import functools
import io
import math
import os
import struct
import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import utils as pixel_utils
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut, convert_color_space
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

Array = npt.NDArray[Any]

# Everything pydicom, its codec plugins and Pillow raise on odd or unsupported bytes; RuntimeError is
# how pydicom reports that every decoding plugin failed.
_PARSE_ERRORS: tuple[type[Exception], ...] = (
    InvalidDicomError, ValueError, TypeError, KeyError, IndexError, AttributeError, NotImplementedError,
    EOFError, OverflowError, RuntimeError, struct.error, zlib.error, UnicodeError, OSError,
)  # fmt: skip
# Plus hostile ones: absurdly nested sequences, and a size under max_pixels that still exhausts RAM.
_FAILURES: tuple[type[Exception], ...] = (*_PARSE_ERRORS, RecursionError, MemoryError)
_PIXEL_TAGS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}


class RenderKind(StrEnum):
    IMAGE = "image"
    REPORT = "report"
    DOCUMENT = "document"
    WAVEFORM = "waveform"
    PRESENTATION = "presentation"
    RADIOTHERAPY = "radiotherapy"
    OTHER = "other"
    TOO_LARGE = "too_large"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Thumbnail:
    kind: RenderKind
    data: bytes
    media_type: str
    width: int
    height: int


_LABELS = {
    RenderKind.IMAGE: "Image",
    RenderKind.REPORT: "Report",
    RenderKind.DOCUMENT: "PDF / document",
    RenderKind.WAVEFORM: "Waveform",
    RenderKind.PRESENTATION: "Presentation\nstate",
    RenderKind.RADIOTHERAPY: "RT object",
    RenderKind.OTHER: "No image",
    RenderKind.TOO_LARGE: "Image too large",
    RenderKind.UNREADABLE: "Cannot display",
}
# (SOP Class UID prefix, modalities, kind) for objects that never carry pixel data of their own.
_CLASSES: tuple[tuple[str, str, RenderKind], ...] = (
    ("1.2.840.10008.5.1.4.1.1.88.", "SR KO", RenderKind.REPORT),
    ("1.2.840.10008.5.1.4.1.1.104.", "DOC", RenderKind.DOCUMENT),
    ("1.2.840.10008.5.1.4.1.1.9.", "ECG HD EPS AU RESP EEG EMG EOG", RenderKind.WAVEFORM),
    ("1.2.840.10008.5.1.4.1.1.11.", "PR", RenderKind.PRESENTATION),
    ("1.2.840.10008.5.1.4.1.1.481.", "RTPLAN RTSTRUCT RTDOSE RTRECORD", RenderKind.RADIOTHERAPY),
    ("1.2.840.10008.5.1.4.34.", "", RenderKind.RADIOTHERAPY),  # second-generation RT
)


def render_thumbnail(
    source: str | os.PathLike[str] | BinaryIO, *, size: int = 256, max_pixels: int = 200_000_000
) -> Thumbnail:
    """Render a `size`-pixel preview of a Part-10 file (or a bare dataset without preamble/meta).

    Never raises because of the file's content: anything undecodable becomes a placeholder tile.
    A path that cannot be opened does raise OSError, so that a storage fault is not recorded as
    a broken image. A file object is read from its start and left at the position it had.
    """
    if not 16 <= size <= 4096:
        raise ValueError(f"thumbnail size {size} outside 16..4096")
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as handle:
            return render_thumbnail(handle, size=size, max_pixels=max_pixels)
    position = source.tell()
    try:
        return _render(source, size, max_pixels)
    except _FAILURES:
        return placeholder_tile(RenderKind.UNREADABLE, size=size)
    finally:
        source.seek(position)


def _render(handle: BinaryIO, size: int, max_pixels: int) -> Thumbnail:
    ds, pixel_keyword, syntax = _read_header(handle)
    if pixel_keyword is None:
        sop_class = str(
            ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "")
        )
        # Read without a preamble, no SOP class, no pixels: that is pydicom's force=True guess at
        # arbitrary bytes rather than an instance.
        forced = getattr(ds, "preamble", None) is None
        kind = RenderKind.UNREADABLE if forced and not sop_class else _classify(ds, sop_class)
        return placeholder_tile(kind, size=size)
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    frames = max(1, _int(ds, "NumberOfFrames", 1))
    if rows < 1 or columns < 1:
        return placeholder_tile(RenderKind.UNREADABLE, size=size)
    if rows * columns > max_pixels or rows * columns * frames > max_pixels:
        return placeholder_tile(RenderKind.TOO_LARGE, size=size)
    index = frames // 2
    frame = _decode_frame(handle, ds, syntax, index)
    view = frame_view(ds, index)
    return _encode(frame_to_display(view, frame), _aspect(view), size)


def _read_header(handle: BinaryIO) -> tuple[Dataset, str | None, UID]:
    """Header up to (not including) the pixel data, the pixel data keyword if any, the syntax."""
    try:
        ds = pydicom.dcmread(handle, stop_before_pixels=True)
    except InvalidDicomError:  # no preamble / "DICM": may still be a bare dataset
        handle.seek(0)
        ds = pydicom.dcmread(handle, stop_before_pixels=True, force=True)
    syntax = _syntax(ds)
    if syntax == DeflatedExplicitVRLittleEndian:
        # pydicom inflated the whole file into memory, so the handle position says nothing;
        # read it all (the bytes are in memory already) and look at what is there.
        handle.seek(0)
        ds = pydicom.dcmread(handle, force=True)
        return ds, next((kw for kw in _PIXEL_TAGS.values() if kw in ds), None), syntax
    # dcmread rewinds to the start of the pixel data element when it stops there.
    tag = handle.read(4)
    if len(tag) < 4:
        return ds, None, syntax
    group, element = struct.unpack("<HH" if syntax.is_little_endian else ">HH", tag)
    return ds, _PIXEL_TAGS.get(group << 16 | element), syntax


def _syntax(ds: Dataset) -> UID:
    declared = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if declared:
        return UID(str(declared))
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian


def _classify(ds: Dataset, sop_class: str) -> RenderKind:
    modality = str(ds.get("Modality") or "").strip().upper()
    for prefix, modalities, kind in _CLASSES:
        if sop_class.startswith(prefix) or modality in modalities.split():
            return kind
    if "WaveformSequence" in ds:
        return RenderKind.WAVEFORM
    return RenderKind.OTHER


def _decode_frame(handle: BinaryIO, ds: Dataset, syntax: UID, index: int) -> Array:
    """Decode one frame, streaming from the file so other frames are never read into memory."""
    if not any(keyword in ds for keyword in _PIXEL_TAGS.values()):  # header only: stream the frame
        try:
            return np.asarray(pixel_utils.pixel_array(handle, index=index, transfer_syntax_uid=syntax))
        except _PARSE_ERRORS:
            # Some real files contradict their own transfer syntax (e.g. implicit VR under an
            # explicit-VR UID); the full reader copes with those, the streaming one does not.
            handle.seek(0)
            ds = pydicom.dcmread(handle, force=True)
    if not getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None):  # bare dataset
        meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        meta.TransferSyntaxUID = syntax
        ds.file_meta = meta
    return np.asarray(pixel_utils.pixel_array(ds, index=index))


def frame_view(ds: Dataset, index: int) -> Dataset:
    """`ds` with rescale, window and spacing of frame `index` of an enhanced multi-frame lifted
    to the top level, where frame_to_display and the modality/VOI functions look for them."""
    groups = [seq[0] for seq in (ds.get("SharedFunctionalGroupsSequence"),) if seq]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and 0 <= index < len(per_frame):
        groups.append(per_frame[index])
    if not groups:
        return ds
    view = Dataset({element.tag: element for element in ds})  # new element dict: ds is untouched
    for group in groups:
        for macro in ("PixelMeasuresSequence", "PixelValueTransformationSequence", "FrameVOILUTSequence"):
            for item in (group.get(macro) or [])[:1]:
                for element in item:
                    view[element.tag] = element
    return view


def frame_to_display(ds: Dataset, frame: Array, *, raw: bool = False) -> Array:
    """Map one decoded frame to uint8 grey (H, W) or RGB (H, W, 3) for display.

    `frame` is what pydicom returns by default (raw=False): YBR_FULL and YBR_FULL_422 data are
    then already RGB, whatever the dataset's Photometric Interpretation still says. Pass
    raw=True for frames decoded with pixel_array(..., raw=True) so they get converted here.
    """
    photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2").strip().upper()
    if photometric == "PALETTE COLOR" and frame.ndim == 2:
        rgb = np.asarray(apply_color_lut(frame, ds))
        # Palettes are nominally 8 or 16 bits; some declare 16 and hold 8-bit values.
        return np.asarray(rgb >> 8 if rgb.max() > 255 else rgb, dtype=np.uint8)
    if frame.ndim == 3:
        if frame.shape[-1] != 3:
            raise ValueError(f"cannot display {frame.shape[-1]} samples per pixel")
        if raw and photometric in ("YBR_FULL", "YBR_FULL_422"):
            frame = convert_color_space(frame, "YBR_FULL", "RGB")
        if frame.dtype == np.uint8:
            return frame
        if frame.dtype.kind == "f":
            return _auto_window(frame.astype(np.float32), frame, ds)
        bits = min(max(1, _int(ds, "BitsStored", frame.dtype.itemsize * 8)), frame.dtype.itemsize * 8)
        scaled = frame.astype(np.float64) * (255.0 / (2.0**bits - 1.0))
        return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
    if frame.dtype.kind == "f":
        grey = _auto_window(frame.astype(np.float32), frame, ds)
    else:
        try:
            values = np.asarray(apply_modality_lut(frame, ds), dtype=np.float32)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError):
            # A broken Modality LUT Sequence (seen in the wild with an empty descriptor): the
            # stored values, auto-windowed below, still show the anatomy.
            values = frame.astype(np.float32)
        grey = _apply_voi(values, frame, ds)
    return 255 - grey if photometric == "MONOCHROME1" else grey


def _apply_voi(values: Array, stored: Array, ds: Dataset) -> Array:
    lut_item = (ds.get("VOILUTSequence") or [None])[0]
    if lut_item is not None and lut_item.get("LUTDescriptor") and lut_item.get("LUTData"):
        try:
            out: Array = np.asarray(
                apply_voi_lut(values.astype(np.int64), ds, prefer_lut=True), dtype=np.float32
            )
            # The descriptor declares the output depth; some under-declare it, so never clip real data.
            top = max(float(2 ** int(lut_item.LUTDescriptor[2]) - 1), float(out.max()), 1.0)
            return np.clip(out * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError):
            pass  # a broken LUT: fall back to the window, or to the auto-window
    center, width = _first_float(ds.get("WindowCenter")), _first_float(ds.get("WindowWidth"))
    function = str(ds.get("VOILUTFunction") or "LINEAR").strip().upper()
    if center is None or width is None or width <= 0 or (width < 1 and function == "LINEAR"):
        return _auto_window(values, stored, ds)
    if function == "SIGMOID":
        scaled = 255.0 / (1.0 + np.exp(np.clip(-4.0 * (values - center) / width, -80, 80)))
    elif function == "LINEAR_EXACT":
        scaled = ((values - center) / width + 0.5) * 255.0
    elif width > 1:  # LINEAR, also the default for unknown functions (PS3.3 C.11.2.1.2.1)
        scaled = ((values - (center - 0.5)) / (width - 1.0) + 0.5) * 255.0
    else:  # a LINEAR width of exactly 1 is a threshold at the centre
        scaled = np.where(values > center - 0.5, 255.0, 0.0)
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def _auto_window(values: Array, stored: Array, ds: Dataset) -> Array:
    """Stretch the 0.5-99.5 percentile range, so a few outliers do not grey everything out."""
    flat = values.reshape(-1)
    sample = flat[:: max(1, flat.size // 1_000_000)]  # percentiles of a strided sample are enough
    sample = sample[np.isfinite(sample)]
    low = high = 0.0
    if sample.size:
        low, high = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
        if high <= low:
            low, high = float(sample.min()), float(sample.max())
    if high <= low:
        # A constant frame has no contrast to stretch: show the value where it sits within what
        # the stored bits can hold, so an all-zero frame is black and a saturated one white.
        if stored.dtype.kind not in "iub":
            return np.zeros(values.shape[:2], dtype=np.uint8)
        bits = min(max(1, _int(ds, "BitsStored", stored.dtype.itemsize * 8)), stored.dtype.itemsize * 8)
        low = -(2.0 ** (bits - 1)) if stored.dtype.kind == "i" else 0.0
        high, values = low + 2.0**bits - 1.0, stored.astype(np.float32)
    scaled = np.nan_to_num((values - low) * (255.0 / (high - low)), nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def _aspect(ds: Dataset) -> float:
    """Physical width/height of one pixel, or 1 when the header says nothing sane."""
    # Pixel Spacing is row (vertical) then column spacing; Pixel Aspect Ratio is vertical:horizontal,
    # so in both the first value is the pixel's height.
    pair = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or ds.get("PixelAspectRatio")
    if not isinstance(pair, list | tuple | MultiValue) or len(pair) != 2:
        return 1.0
    row, column = _first_float(pair[0]), _first_float(pair[1])
    if row is None or column is None or not (row > 0 and column > 0):
        return 1.0
    aspect = column / row
    return aspect if 0.1 <= aspect <= 10 else 1.0


def _encode(pixels: Array, aspect: float, size: int) -> Thumbnail:
    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))  # uint8 (H, W) is L, (H, W, 3) RGB
    width, height = image.width * aspect, float(image.height)
    scale = size / max(width, height)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    # LANCZOS after an integer pre-reduction is sharp and fast for shrinking; it rings when enlarging.
    if target[0] <= image.width and target[1] <= image.height:
        image = image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    else:
        image = image.resize(target, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return Thumbnail(RenderKind.IMAGE, out.getvalue(), "image/jpeg", image.width, image.height)


@functools.lru_cache(maxsize=64)
def placeholder_tile(kind: RenderKind, *, size: int = 256) -> Thumbnail:
    """A dark `size`x`size` PNG with a simple frame and a fixed label for `kind`."""
    image = Image.new("L", (size, size), 34)
    draw = ImageDraw.Draw(image)
    margin = max(2, size // 12)
    draw.rounded_rectangle(
        (margin, margin, size - 1 - margin, size - 1 - margin),
        radius=size // 16,
        outline=96,
        width=max(1, size // 64),
    )
    font = ImageFont.load_default(size=max(8, size // 11))  # FreeType font; a bitmap one without it
    draw.multiline_text((size / 2, size / 2), _LABELS[kind], fill=200, font=font, anchor="mm", align="center")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return Thumbnail(kind, out.getvalue(), "image/png", size, size)


def _first_float(value: Any) -> float | None:
    """First value of a (possibly multi-valued) numeric element, or None if absent or nonsense."""
    if isinstance(value, list | tuple | MultiValue):
        value = value[0] if len(value) else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(ds: Dataset, keyword: str, default: int) -> int:
    number = _first_float(ds.get(keyword))
    return default if number is None else int(number)
