"""Tests for sharing.dicom.render, on synthetic datasets built with pydicom (no patient data)."""

from __future__ import annotations

import io
import random
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.processing import convert_color_space
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    GrayscaleSoftcopyPresentationStateStorage,
    RLELossless,
    RTDoseStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    SecondaryCaptureImageStorage,
    TwelveLeadECGWaveformStorage,
    generate_uid,
)

from sharing.dicom import render
from sharing.dicom.render import RenderKind, frame_to_display, placeholder_tile, render_thumbnail
from tests.support.corpus import CORPUS_DIR, CorpusFile, corpus_files


# ----------------------------------------------------------------------------- helpers
def base_dataset(sop_class: UID = SecondaryCaptureImageStorage, modality: str = "OT") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "SYNTH-1"
    ds.PatientName = "SECRET^PATIENT"
    ds.Modality = modality
    return ds


def image_dataset(
    arr: np.ndarray, photometric: str = "MONOCHROME2", bits: int | None = None, **attrs: Any
) -> Dataset:
    ds = base_dataset()
    ds.set_pixel_data(arr, photometric, bits or arr.dtype.itemsize * 8, generate_instance_uid=False)
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def write(ds: Dataset, path: Path, **kwargs: Any) -> Path:
    ds.save_as(path, enforce_file_format=True, **kwargs)
    return path


def thumb_pixels(path: Path | io.BytesIO, **kwargs: Any) -> tuple[render.Thumbnail, np.ndarray]:
    thumb = render_thumbnail(path, **kwargs)
    with Image.open(io.BytesIO(thumb.data)) as image:
        return thumb, np.asarray(image)


def halves(left: int, right: int, dtype: str = "uint16", shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    arr = np.full(shape, left, dtype=dtype)
    arr[:, shape[1] // 2 :] = right
    return arr


@pytest.fixture
def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pixel data must not be decoded")

    monkeypatch.setattr(pydicom.pixels.utils, "pixel_array", refuse)


# ----------------------------------------------------------------------------- greyscale
def test_monochrome2_gives_greyscale_jpeg(tmp_path: Path) -> None:
    ramp = np.tile(np.arange(64, dtype=np.uint16) * 64, (64, 1))
    thumb, pixels = thumb_pixels(write(image_dataset(ramp, bits=12), tmp_path / "a.dcm"))
    assert (thumb.kind, thumb.media_type, thumb.width, thumb.height) == (
        RenderKind.IMAGE,
        "image/jpeg",
        256,
        256,
    )
    assert pixels.ndim == 2  # greyscale JPEG
    assert pixels[:, :8].mean() < 10
    assert pixels[:, -8:].mean() > 245  # auto-window stretches the ramp


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    arr = halves(100, 900)
    _, mono2 = thumb_pixels(write(image_dataset(arr), tmp_path / "m2.dcm"))
    _, mono1 = thumb_pixels(write(image_dataset(arr, "MONOCHROME1"), tmp_path / "m1.dcm"))
    assert mono2[:, :100].mean() < 10
    assert mono2[:, -100:].mean() > 245
    assert np.abs(mono1.astype(int) + mono2.astype(int) - 255).max() <= 3


def test_window_center_width_changes_output(tmp_path: Path) -> None:
    arr = halves(100, 300)
    _, around = thumb_pixels(write(image_dataset(arr, WindowCenter=200, WindowWidth=100), tmp_path / "a.dcm"))
    _, above = thumb_pixels(write(image_dataset(arr, WindowCenter=1000, WindowWidth=100), tmp_path / "b.dcm"))
    _, wide = thumb_pixels(
        write(image_dataset(arr, WindowCenter=[200, 0], WindowWidth=[800, 1]), tmp_path / "c.dcm")
    )
    assert around[:, :100].max() < 5
    assert around[:, -100:].min() > 250
    assert above.max() < 5  # both values below the window
    # Multi-valued window: the first pair is used; 100 and 300 sit at 3/8 and 5/8 of 800 wide.
    assert abs(wide[:, :100].mean() - 96) < 4
    assert abs(wide[:, -100:].mean() - 160) < 4


def test_voi_lut_functions() -> None:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.WindowCenter, ds.WindowWidth = 100, 50
    frame = np.array([[0, 75, 100, 125, 200]], dtype=np.uint16)
    assert frame_to_display(ds, frame).tolist() == [[0, 0, 130, 255, 255]]  # LINEAR: (x-99.5)/49+0.5
    ds.VOILUTFunction = "LINEAR_EXACT"
    assert frame_to_display(ds, frame).tolist() == [[0, 0, 128, 255, 255]]
    ds.VOILUTFunction = "SIGMOID"
    sigmoid = frame_to_display(ds, frame)[0]
    assert sigmoid[2] == 128
    assert sigmoid[0] < 1
    assert sigmoid[-1] > 254
    assert 10 < sigmoid[1] < 40


def test_voi_lut_sequence_is_applied() -> None:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]  # 4 entries for inputs 0..3, 8-bit output
    item.LUTData = [255, 0, 255, 0]
    ds.VOILUTSequence = Sequence([item])
    assert frame_to_display(ds, np.array([[0, 1, 2, 3, 9]], dtype=np.uint8)).tolist() == [[255, 0, 255, 0, 0]]


def test_rescale_slope_intercept_is_applied(tmp_path: Path) -> None:
    arr = halves(0, 100)
    # Stored 0/100 become -100/+100 after rescale; a window around 0 then separates them fully,
    # whereas without rescale both values would be at or above the window.
    rescaled = image_dataset(arr, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=0, WindowWidth=20)
    _, pixels = thumb_pixels(write(rescaled, tmp_path / "r.dcm"))
    assert pixels[:, :100].max() < 5
    assert pixels[:, -100:].min() > 250
    plain = image_dataset(arr, WindowCenter=0, WindowWidth=20)
    _, unscaled = thumb_pixels(write(plain, tmp_path / "p.dcm"))
    assert unscaled[:, :100].mean() > 100  # stored 0 sits in the middle of that window


def test_signed_pixel_data(tmp_path: Path) -> None:
    arr = halves(-1000, 1000, dtype="int16")
    ds = image_dataset(arr, WindowCenter=0, WindowWidth=100)
    assert ds.PixelRepresentation == 1
    _, pixels = thumb_pixels(write(ds, tmp_path / "s.dcm"))
    assert pixels[:, :100].max() < 5
    assert pixels[:, -100:].min() > 250


def test_sixteen_bit_full_range(tmp_path: Path) -> None:
    arr = np.tile(np.linspace(0, 65535, 128).astype(np.uint16), (32, 1))
    thumb, pixels = thumb_pixels(write(image_dataset(arr, bits=16), tmp_path / "16.dcm"))
    assert (thumb.width, thumb.height) == (256, 64)
    assert pixels[:, :4].mean() < 10
    assert pixels[:, -4:].mean() > 245


def test_constant_frame_is_placed_within_stored_range() -> None:
    ds = Dataset()
    ds.BitsStored = 8
    assert frame_to_display(ds, np.full((4, 4), 0, np.uint8)).max() == 0
    assert frame_to_display(ds, np.full((4, 4), 255, np.uint8)).min() == 255


def test_float_pixel_data_is_auto_windowed(tmp_path: Path) -> None:
    ds = base_dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 16, 16, 1, 32
    ds.PhotometricInterpretation = "MONOCHROME2"
    values = np.tile(np.linspace(-5.0, 5.0, 16, dtype=np.float32), (16, 1))
    ds.FloatPixelData = values.tobytes()
    _, pixels = thumb_pixels(write(ds, tmp_path / "f.dcm"))
    assert pixels[:, :8].mean() < 10
    assert pixels[:, -8:].mean() > 245
    # NaN and infinities must not poison the window.
    values[0, 0], values[1, 1] = np.nan, np.inf
    assert frame_to_display(ds, values)[8, 15] > 245


def test_enhanced_multiframe_functional_groups_apply_per_frame(tmp_path: Path) -> None:
    frames = np.full((3, 16, 16), 100, dtype=np.uint16)
    ds = image_dataset(frames, bits=16, NumberOfFrames=3)
    shared, window = Dataset(), Dataset()
    window.WindowCenter, window.WindowWidth = 0, 10
    shared.FrameVOILUTSequence = Sequence([window])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for intercept in (0, -200, 0):  # only the middle frame maps 100 below the window
        group, transform = Dataset(), Dataset()
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 1, intercept, "US"
        group.PixelValueTransformationSequence = Sequence([transform])
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    _, pixels = thumb_pixels(write(ds, tmp_path / "e.dcm"))
    assert pixels.max() < 5
    assert "WindowCenter" not in ds  # frame_view copies, never edits the caller's dataset
    assert frame_to_display(render.frame_view(ds, 0), frames[0]).min() == 255


# ----------------------------------------------------------------------------- colour
def red_rgb(shape: tuple[int, int] = (32, 32)) -> np.ndarray:
    arr = np.zeros((*shape, 3), dtype=np.uint8)
    arr[..., 0] = 220
    return arr


def assert_red(pixels: np.ndarray) -> None:
    assert pixels.ndim == 3
    r, g, b = (pixels[..., i].astype(int).mean() for i in range(3))
    assert r > 190
    assert g < 40
    assert b < 40


def test_rgb_stays_coloured(tmp_path: Path) -> None:
    _, pixels = thumb_pixels(write(image_dataset(red_rgb(), "RGB"), tmp_path / "rgb.dcm"))
    assert_red(pixels)


def test_rgb_planar_configuration_1(tmp_path: Path) -> None:
    ds = image_dataset(red_rgb(), "RGB")
    ds.PlanarConfiguration = 1
    ds.PixelData = np.moveaxis(red_rgb(), -1, 0).tobytes()  # all R, then all G, then all B
    _, pixels = thumb_pixels(write(ds, tmp_path / "planar.dcm"))
    assert_red(pixels)


def test_ybr_full_is_converted_to_rgb(tmp_path: Path) -> None:
    ybr = convert_color_space(red_rgb(), "RGB", "YBR_FULL")
    _, pixels = thumb_pixels(write(image_dataset(ybr, "YBR_FULL"), tmp_path / "ybr.dcm"))
    assert_red(pixels)


def test_frame_to_display_converts_ybr_only_for_raw_frames() -> None:
    ds = Dataset()
    ds.PhotometricInterpretation = "YBR_FULL"
    ybr = convert_color_space(red_rgb((2, 2)), "RGB", "YBR_FULL")
    assert_red(frame_to_display(ds, ybr, raw=True))
    # pydicom's default decoding already returns RGB: converting it again would wreck the colours.
    assert_red(frame_to_display(ds, red_rgb((2, 2))))


def test_sixteen_bit_rgb_is_scaled_by_bits_stored() -> None:
    ds = Dataset()
    ds.PhotometricInterpretation, ds.BitsStored = "RGB", 12
    arr = np.zeros((2, 2, 3), dtype=np.uint16)
    arr[..., 0] = 4095
    assert frame_to_display(ds, arr)[0, 0].tolist() == [255, 0, 0]


def test_palette_colour(tmp_path: Path) -> None:
    ds = image_dataset(halves(0, 1, dtype="uint8"), "PALETTE COLOR", bits=8)
    lut = {"Red": [65535, 0], "Green": [0, 65535], "Blue": [0, 0]}
    for colour, values in lut.items():
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [2, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", struct.pack("<2H", *values))
    _, pixels = thumb_pixels(write(ds, tmp_path / "pal.dcm"))
    left, right = pixels[:, :100].reshape(-1, 3).mean(axis=0), pixels[:, -100:].reshape(-1, 3).mean(axis=0)
    assert left[0] > 240
    assert left[1] < 15
    assert right[1] > 240
    assert right[0] < 15


# ----------------------------------------------------------------------------- frames, codecs
@pytest.mark.parametrize(("count", "middle"), [(5, 2), (4, 2), (2, 1)])
def test_multiframe_uses_middle_frame_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, middle: int
) -> None:
    values = [10, 60, 110, 160, 210][:count]
    frames = np.stack([np.full((16, 16), v, dtype=np.uint8) for v in values])
    path = write(image_dataset(frames, NumberOfFrames=count), tmp_path / "mf.dcm")
    calls: list[Any] = []
    original = pydicom.pixels.utils.pixel_array

    def spy(*args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(kwargs.get("index"))
        return original(*args, **kwargs)

    monkeypatch.setattr(pydicom.pixels.utils, "pixel_array", spy)
    _, pixels = thumb_pixels(path)
    assert calls == [middle]
    assert abs(pixels.mean() - values[middle]) < 3


def test_rle_compressed_matches_uncompressed(tmp_path: Path) -> None:
    arr = (np.arange(48 * 40, dtype=np.uint16).reshape(48, 40) * 3) % 4096
    native = write(image_dataset(arr, bits=12), tmp_path / "native.dcm")
    ds = image_dataset(arr, bits=12)
    ds.compress(RLELossless, arr, generate_instance_uid=False)
    rle = write(ds, tmp_path / "rle.dcm")
    assert pydicom.dcmread(rle).file_meta.TransferSyntaxUID == RLELossless
    assert render_thumbnail(rle) == render_thumbnail(native)


def test_deflated_transfer_syntax(tmp_path: Path) -> None:
    ds = image_dataset(halves(0, 1000))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    _, pixels = thumb_pixels(write(ds, tmp_path / "dfl.dcm"))
    assert pixels[:, :100].max() < 5
    assert pixels[:, -100:].min() > 250


def test_file_object_without_preamble_or_meta(tmp_path: Path) -> None:
    ds = image_dataset(halves(0, 1000))
    del ds.file_meta
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=True, little_endian=True)
    assert buffer.getvalue()[128:132] != b"DICM"
    buffer.seek(7)
    thumb, pixels = thumb_pixels(buffer)
    assert thumb.kind is RenderKind.IMAGE
    assert pixels[:, -100:].min() > 250
    assert buffer.tell() == 7  # the caller's position is restored


# ----------------------------------------------------------------------------- geometry
@pytest.mark.parametrize(
    ("rows", "columns", "attrs", "expected"),
    [
        (300, 100, {}, (85, 256)),
        (100, 300, {}, (256, 85)),
        (100, 100, {"PixelSpacing": [2.0, 1.0]}, (128, 256)),  # rows 2 mm apart: twice as tall
        (100, 100, {"PixelAspectRatio": [1, 2]}, (256, 128)),  # vertical:horizontal
        (100, 100, {"PixelSpacing": [0.0, 1.0]}, (256, 256)),  # nonsense spacing is ignored
        (100, 100, {"PixelSpacing": [1000.0, 1.0]}, (256, 256)),
        (10, 20, {}, (256, 128)),  # small images are enlarged
    ],
)
def test_aspect_ratio(
    tmp_path: Path, rows: int, columns: int, attrs: dict[str, Any], expected: tuple[int, int]
) -> None:
    ds = image_dataset(np.zeros((rows, columns), dtype=np.uint8), **attrs)
    thumb, pixels = thumb_pixels(write(ds, tmp_path / "g.dcm"))
    assert (thumb.width, thumb.height) == expected == (pixels.shape[1], pixels.shape[0])


def test_size_parameter(tmp_path: Path) -> None:
    thumb = render_thumbnail(write(image_dataset(np.zeros((64, 32), np.uint8)), tmp_path / "s.dcm"), size=64)
    assert (thumb.width, thumb.height) == (32, 64)
    with pytest.raises(ValueError):
        render_thumbnail(tmp_path / "s.dcm", size=0)


# ----------------------------------------------------------------------------- size limits
def test_declared_huge_image_is_refused_before_decoding(tmp_path: Path, forbid_decoding: None) -> None:
    ds = base_dataset()
    ds.Rows = ds.Columns = 65535
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 16, 15, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = b"\0" * 16
    path = write(ds, tmp_path / "huge.dcm")
    started = time.perf_counter()
    thumb = render_thumbnail(path)
    assert thumb.kind is RenderKind.TOO_LARGE
    assert thumb.media_type == "image/png"
    assert time.perf_counter() - started < 1.0


def test_frame_count_counts_towards_the_limit(tmp_path: Path, forbid_decoding: None) -> None:
    ds = image_dataset(np.zeros((2, 100, 100), dtype=np.uint8), NumberOfFrames=2)
    path = write(ds, tmp_path / "mf.dcm")
    assert render_thumbnail(path, max_pixels=19_999).kind is RenderKind.TOO_LARGE
    ds.NumberOfFrames = 1_000_000  # declared only; the data holds two
    assert render_thumbnail(write(ds, tmp_path / "many.dcm")).kind is RenderKind.TOO_LARGE


# ----------------------------------------------------------------------------- other kinds
def non_image(sop_class: UID, modality: str, **attrs: Any) -> Dataset:
    ds = base_dataset(sop_class, modality)
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(
    ("sop_class", "modality", "attrs", "kind"),
    [
        (BasicTextSRStorage, "SR", {}, RenderKind.REPORT),
        (UID("1.2.840.10008.5.1.4.1.1.88.59"), "KO", {}, RenderKind.REPORT),
        (
            EncapsulatedPDFStorage,
            "DOC",
            {
                "MIMETypeOfEncapsulatedDocument": "application/pdf",
                "EncapsulatedDocument": b"%PDF-1.4\n%%EOF\n",
            },
            RenderKind.DOCUMENT,
        ),
        (TwelveLeadECGWaveformStorage, "ECG", {}, RenderKind.WAVEFORM),
        (GrayscaleSoftcopyPresentationStateStorage, "PR", {}, RenderKind.PRESENTATION),
        (RTPlanStorage, "RTPLAN", {}, RenderKind.RADIOTHERAPY),
        (RTStructureSetStorage, "RTSTRUCT", {}, RenderKind.RADIOTHERAPY),
        (RTDoseStorage, "RTDOSE", {}, RenderKind.RADIOTHERAPY),  # dose without a grid
        (CTImageStorage, "CT", {}, RenderKind.OTHER),  # an image object that lost its pixels
    ],
)
def test_non_image_kinds(
    tmp_path: Path, sop_class: UID, modality: str, attrs: dict[str, Any], kind: RenderKind
) -> None:
    thumb = render_thumbnail(write(non_image(sop_class, modality, **attrs), tmp_path / "x.dcm"))
    assert thumb == placeholder_tile(kind)
    assert thumb.kind is kind


def test_rt_dose_with_pixel_data_is_an_image(tmp_path: Path) -> None:
    ds = image_dataset(halves(0, 500, shape=(8, 8)), NumberOfFrames=1)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = RTDoseStorage
    ds.Modality = "RTDOSE"
    assert render_thumbnail(write(ds, tmp_path / "dose.dcm")).kind is RenderKind.IMAGE


def test_placeholders_are_small_dark_pngs_without_file_text(tmp_path: Path) -> None:
    for kind in RenderKind:
        tile = placeholder_tile(kind, size=128)
        assert (tile.kind, tile.media_type, tile.width, tile.height) == (kind, "image/png", 128, 128)
        assert len(tile.data) < 8000
        with Image.open(io.BytesIO(tile.data)) as image:
            assert image.format == "PNG"
            assert image.size == (128, 128)
            assert np.asarray(image.convert("L"))[:4, :4].max() < 60  # dark corner
    # The SR carries a patient name; its tile is the fixed one, byte for byte.
    report = render_thumbnail(write(non_image(BasicTextSRStorage, "SR"), tmp_path / "sr.dcm"), size=128)
    assert report.data == placeholder_tile(RenderKind.REPORT, size=128).data
    assert len({placeholder_tile(kind).data for kind in RenderKind}) == len(RenderKind)


# ----------------------------------------------------------------------------- hostile input
def assert_valid_placeholder(thumb: render.Thumbnail, *kinds: RenderKind) -> None:
    assert thumb.kind in kinds
    with Image.open(io.BytesIO(thumb.data)) as image:
        image.verify()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_truncated_pixel_data_is_unreadable(tmp_path: Path) -> None:
    path = write(image_dataset(np.ones((64, 64), dtype=np.uint16)), tmp_path / "t.dcm")
    path.write_bytes(path.read_bytes()[:-1000])
    assert_valid_placeholder(render_thumbnail(path), RenderKind.UNREADABLE)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_truncated_rle_is_unreadable(tmp_path: Path) -> None:
    ds = image_dataset(np.arange(4096, dtype=np.uint16).reshape(64, 64))
    ds.compress(RLELossless, generate_instance_uid=False)
    path = write(ds, tmp_path / "t.dcm")
    path.write_bytes(path.read_bytes()[:-300])
    assert_valid_placeholder(render_thumbnail(path), RenderKind.UNREADABLE)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_unknown_transfer_syntax_is_unreadable(tmp_path: Path) -> None:
    ds = image_dataset(np.ones((8, 8), dtype=np.uint8))
    path = write(ds, tmp_path / "u.dcm")
    known = str(ExplicitVRLittleEndian).encode() + b"\0"
    data = path.read_bytes().replace(known, b"1.2.3.4.5.6.7.8.9.10", 1)  # same length, unknown syntax
    assert data != path.read_bytes()
    path.write_bytes(data)
    assert_valid_placeholder(render_thumbnail(path), RenderKind.UNREADABLE)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("seed", range(12))
def test_garbage_bytes_never_raise(seed: int) -> None:
    rng = random.Random(seed)
    body = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 7, 200, 5000])))
    for data in (body, b"\0" * 128 + b"DICM" + body):
        assert_valid_placeholder(render_thumbnail(io.BytesIO(data)), RenderKind.UNREADABLE, RenderKind.OTHER)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("depth", [200, 5000])
def test_deeply_nested_sequence_does_not_raise(tmp_path: Path, depth: int) -> None:
    ds = image_dataset(np.ones((8, 8), dtype=np.uint8))
    del ds.PixelData
    path = write(ds, tmp_path / "n.dcm", implicit_vr=False)
    # (0040,A730) SQ, undefined lengths all the way down, then the pixel data element after it.
    opening = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + struct.pack(
        "<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF
    )
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    pixels = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 64) + b"\1" * 64
    path.write_bytes(path.read_bytes() + opening * depth + closing * depth + pixels)
    assert_valid_placeholder(render_thumbnail(path), RenderKind.IMAGE, RenderKind.UNREADABLE)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "mutate",
    [
        lambda ds: setattr(ds, "Rows", 0),
        lambda ds: setattr(ds, "BitsAllocated", 7),
        lambda ds: setattr(ds, "SamplesPerPixel", 4),
        lambda ds: setattr(ds, "PhotometricInterpretation", "PALETTE COLOR"),  # with no palette
        lambda ds: setattr(ds, "WindowWidth", -5),
        lambda ds: setattr(ds, "NumberOfFrames", 0),
    ],
)
def test_inconsistent_headers_do_not_raise(tmp_path: Path, mutate: Callable[[Dataset], None]) -> None:
    ds = image_dataset(np.ones((8, 8), dtype=np.uint8))
    mutate(ds)
    path = tmp_path / "bad.dcm"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    assert_valid_placeholder(render_thumbnail(path), RenderKind.IMAGE, RenderKind.UNREADABLE)


def test_missing_path_raises(tmp_path: Path) -> None:
    # A storage fault is not a property of the file: it must not be cached as "unreadable".
    with pytest.raises(FileNotFoundError):
        render_thumbnail(tmp_path / "absent.dcm")


# ----------------------------------------------------------------------------- corpus
# Files the manifest lists with image dimensions and without a MALFORMED note that still do not
# render as IMAGE with pydicom 3.0.2 and the installed pylibjpeg plugins, and what they give instead.
CORPUS_EXCEPTIONS = {
    # The manifest notes "no PixelData": Rows/Columns are declared, the element is absent.
    "pydicom/src/pydicom/data/charset_files/chrJapMulti.dcm": RenderKind.OTHER,
    "pydicom/src/pydicom/data/charset_files/chrJapMultiExplicitIR6.dcm": RenderKind.OTHER,
    "pydicom/src/pydicom/data/charset_files/chrKoreanMulti.dcm": RenderKind.OTHER,
    # 12-bit JPEG Extended whose scan header libjpeg rejects (error -1038, "scan start must be zero
    # and scan stop must be 63"); Pillow cannot do 12-bit. Only GDCM decodes it.
    "pydicom/src/pydicom/data/test_files/JPEG-lossy.dcm": RenderKind.UNREADABLE,
    # Transfer syntax 1.2.840.10008.1.2.8.1 (Deflated Image Frame Compression) is unknown to pydicom.
    "pydicom-data/data_store/data/liver_deflate.dcm": RenderKind.UNREADABLE,
    "pydicom-data/data_store/data/liver_nonbyte_aligned_deflate.dcm": RenderKind.UNREADABLE,
    # RLE with Bits Allocated 1 (SEG): neither pydicom's nor pylibjpeg-rle's decoder supports it.
    "pydicom-data/data_store/data/liver_rle.dcm": RenderKind.UNREADABLE,
    "pydicom-data/data_store/data/liver_nonbyte_aligned_rle.dcm": RenderKind.UNREADABLE,
    # EDGE files kept as known-bad originals next to their *_fixed versions (which do render).
    "pylibjpeg-data/ljdata/ds/JPEG2000Lossless/966.dcm": RenderKind.UNREADABLE,
    "pylibjpeg-data/ljdata/ds/JPEGExtended/RG2_JPLY.dcm": RenderKind.UNREADABLE,
}


CORPUS_FILES = corpus_files()
needs_corpus = pytest.mark.skipif(not CORPUS_FILES, reason=f"no DICOM corpus at {CORPUS_DIR}")


@needs_corpus
@pytest.mark.corpus
def test_corpus_exceptions_are_current() -> None:
    assert set(CORPUS_EXCEPTIONS) <= {entry.relative for entry in CORPUS_FILES}


@needs_corpus
@pytest.mark.corpus
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("entry", CORPUS_FILES, ids=[entry.relative for entry in CORPUS_FILES])
def test_corpus_file(entry: CorpusFile) -> None:
    thumb = render_thumbnail(entry.path, size=128)
    with Image.open(io.BytesIO(thumb.data)) as image:
        image.load()
        assert (image.width, image.height) == (thumb.width, thumb.height)
        assert max(image.size) == 128
    if entry.relative in CORPUS_EXCEPTIONS:
        assert thumb.kind is CORPUS_EXCEPTIONS[entry.relative]
    elif entry.dimensions and not entry.notes.startswith("MALFORMED"):
        assert thumb.kind is RenderKind.IMAGE
