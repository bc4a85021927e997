"""Frame layout: where each frame lies in a stored file, and frames that can only be decoded."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_frames
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    RLELossless,
)

from sharing.dicom.frames import FrameError, FrameLayout, decode_frame, frame_layout
from sharing.dicom.synthetic import ct_series, us_multiframe
from sharing.dicomweb.negotiation import frame_choice
from tests.support.corpus import CORPUS_DIR, corpus_files
from tests.support.frames import (
    PATIENT,
    big_endian_ct,
    deflated_ct,
    encapsulate,
    grey_frames,
    jpeg_multiframe,
    padded,
    split,
    write,
)

ANY_SYNTAX = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def layout_of(path: Path) -> FrameLayout:
    with path.open("rb") as handle:
        return frame_layout(handle)


def stored(path: Path, layout: FrameLayout, index: int) -> bytes:
    with path.open("rb") as handle:
        data = b""
        for start, end in layout.frames[index]:
            handle.seek(start)
            data += handle.read(end - start)
        return data


# --------------------------------------------------------------------------- encapsulated frames


def test_jpeg_frames_without_offset_tables_are_found_by_their_markers(tmp_path):
    ds, encoded = jpeg_multiframe(frames=3, fragments_per_frame=3)
    path = write(ds, tmp_path / "jpeg.dcm")

    layout = layout_of(path)

    assert layout.number_of_frames == 3
    assert layout.media_type == "image/jpeg"
    assert [len(frame) for frame in layout.frames] == [3, 3, 3]
    assert [stored(path, layout, i) for i in range(3)] == [padded(frame) for frame in encoded]
    assert frame_choice(ANY_SYNTAX, layout) == "stored"


def test_frames_of_uneven_fragment_counts_are_found_too(tmp_path):
    ds, encoded = jpeg_multiframe(frames=2)
    first, second = split(encoded[0], 1), split(encoded[1], 4)
    ds.PixelData = encapsulate([first, second])[0]
    path = write(ds, tmp_path / "uneven.dcm")

    layout = layout_of(path)

    assert [len(frame) for frame in layout.frames] == [1, 4]
    assert stored(path, layout, 1) == padded(encoded[1])


def test_the_extended_offset_table_places_fragments_when_there_is_no_basic_one(tmp_path):
    ds, encoded = jpeg_multiframe(frames=2, fragments_per_frame=2, extended=True)
    path = write(ds, tmp_path / "eot.dcm")

    layout = layout_of(path)

    assert [stored(path, layout, i) for i in range(2)] == [padded(frame) for frame in encoded]


def test_a_basic_offset_table_still_places_fragments(tmp_path):
    ds, encoded = jpeg_multiframe(frames=3, fragments_per_frame=2, basic_offsets=True)
    path = write(ds, tmp_path / "bot.dcm")

    layout = layout_of(path)

    assert [stored(path, layout, i) for i in range(3)] == [padded(frame) for frame in encoded]


def test_the_stored_frames_match_what_pydicom_finds(tmp_path):
    ds, _ = jpeg_multiframe(frames=4, fragments_per_frame=3)
    path = write(ds, tmp_path / "jpeg.dcm")

    layout = layout_of(path)

    expected = list(generate_frames(ds.PixelData, number_of_frames=4))
    assert [stored(path, layout, i) for i in range(4)] == expected


def test_fragments_that_cannot_be_told_apart_leave_frames_to_decoding(tmp_path):
    # RLE keeps each frame in one fragment; three fragments for two frames cannot be split.
    ds = ct_series(PATIENT, slices=1, size=16)[0]
    ds.NumberOfFrames = 2
    ds.PixelData = encapsulate([[b"\x01\x00" * 8, b"\x02\x00" * 8, b"\x03\x00" * 8]])[0]
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLELossless
    path = write(ds, tmp_path / "rle.dcm")

    layout = layout_of(path)

    assert layout.number_of_frames == 2
    assert not layout.locatable
    assert layout.media_type is None
    assert frame_choice(ANY_SYNTAX, layout) == "decoded"
    assert frame_choice("*/*", layout) == "decoded"
    assert frame_choice('multipart/related; type="application/octet-stream"', layout) == "decoded"
    assert (
        frame_choice(
            f'multipart/related; type="application/octet-stream"; transfer-syntax={RLELossless}', layout
        )
        is None
    )


def test_jpeg_fragments_whose_markers_disagree_with_the_frame_count_are_decoded_instead(tmp_path):
    ds, _ = jpeg_multiframe(frames=3, fragments_per_frame=2)
    ds.NumberOfFrames = 2  # the header says two, the markers say three
    path = write(ds, tmp_path / "jpeg.dcm")

    layout = layout_of(path)

    assert layout.number_of_frames == 2
    assert not layout.locatable


def test_a_frame_decoded_from_jpeg_fragments_is_its_pixels(tmp_path):
    ds, _ = jpeg_multiframe(frames=3, fragments_per_frame=3)
    path = write(ds, tmp_path / "jpeg.dcm")

    with path.open("rb") as handle:
        data = decode_frame(handle, index=1)

    decoded = np.frombuffer(data, dtype=np.uint8).reshape(32, 48)
    assert np.abs(decoded.astype(int) - grey_frames(3)[1]).mean() < 3  # lossy, but the same picture


# --------------------------------------------------------------------------- deflated and big endian


@pytest.mark.parametrize("build", [big_endian_ct, deflated_ct], ids=["big endian", "deflated"])
def test_deflated_and_big_endian_frames_are_decoded_to_little_endian(tmp_path, build):
    ds = build()
    path = write(ds, tmp_path / "ct.dcm")
    expected = pydicom.dcmread(path).pixel_array

    layout = layout_of(path)
    with path.open("rb") as handle:
        data = decode_frame(handle, index=0)

    assert layout.number_of_frames == 1
    assert not layout.locatable
    assert frame_choice(ANY_SYNTAX, layout) == "decoded"
    assert frame_choice("*/*", layout) == "decoded"
    assert (
        frame_choice(
            f'multipart/related; type="application/octet-stream"; transfer-syntax={EXPLICIT_LE}', layout
        )
        == "decoded"
    )
    assert (
        frame_choice(
            f'multipart/related; type="application/octet-stream"; transfer-syntax={ExplicitVRBigEndian}',
            layout,
        )
        is None
    )
    assert data == expected.astype(expected.dtype.newbyteorder("<")).tobytes()
    assert data == ct_series(PATIENT, slices=1, size=16)[0].pixel_array.astype("<u2").tobytes()


def test_native_little_endian_frames_are_still_sent_as_stored(tmp_path):
    path = write(ct_series(PATIENT, slices=1, size=16)[0], tmp_path / "ct.dcm")

    layout = layout_of(path)

    assert layout.locatable
    assert frame_choice(ANY_SYNTAX, layout) == "stored"
    assert frame_choice("*/*", layout) == "stored"


def test_planar_colour_is_decoded_planar_as_the_header_says(tmp_path):
    ds = us_multiframe(PATIENT, frames=2, rows=8, cols=10)[0]
    interleaved = ds.pixel_array
    ds.PlanarConfiguration = 1
    ds.PixelData = np.moveaxis(interleaved, -1, 1).tobytes()  # frames, samples, rows, columns
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = write(ds, tmp_path / "us.dcm")

    with path.open("rb") as handle:
        data = decode_frame(handle, index=1)

    assert data == np.moveaxis(interleaved[1], -1, 0).tobytes()


# --------------------------------------------------------------------------- the corpus


def corpus_paths() -> list[str]:
    return [entry.relative for entry in corpus_files()]


@pytest.mark.skipif(not corpus_paths(), reason="no DICOM corpus here")
def test_every_corpus_file_has_frames_or_a_frame_error():
    """Frames located are the frames pydicom finds; those left to decoding decode or fail cleanly."""
    wrong = []
    for relative in corpus_paths():
        path = CORPUS_DIR / relative
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                layout = layout_of(path)
            except FrameError:
                continue
            if not layout.locatable:
                try:
                    with path.open("rb") as handle:
                        decode_frame(handle, index=layout.number_of_frames - 1)
                except FrameError:
                    pass
                continue
            if not layout.encapsulated:
                continue
            try:
                ds = pydicom.dcmread(path, force=True)
                expected = list(generate_frames(ds.PixelData, number_of_frames=layout.number_of_frames))
            except Exception:  # pydicom itself cannot split these: nothing to compare
                continue
            found = [stored(path, layout, i) for i in range(layout.number_of_frames)]
            if found != expected[: len(found)]:
                wrong.append(relative)
    assert wrong == []


@pytest.mark.skipif(not corpus_paths(), reason="no DICOM corpus here")
@pytest.mark.parametrize(
    "relative",
    [
        "pydicom/src/pydicom/data/test_files/image_dfl.dcm",
        "pydicom/src/pydicom/data/test_files/MR_small_bigendian.dcm",
        "pydicom/src/pydicom/data/test_files/rtdose_expb.dcm",
        "pydicom-data/data_store/data/SC_rgb_expb_32bit_2frame.dcm",
    ],
)
def test_corpus_deflated_and_big_endian_frames_decode_to_pydicoms_pixels(relative):
    path = CORPUS_DIR / relative
    ds = pydicom.dcmread(path)
    layout = layout_of(path)
    last = layout.number_of_frames - 1
    with path.open("rb") as handle:
        data = decode_frame(handle, index=last)

    pixels = ds.pixel_array if layout.number_of_frames == 1 else ds.pixel_array[last]
    if int(ds.get("PlanarConfiguration") or 0) == 1:
        pixels = np.moveaxis(pixels, -1, 0)
    assert data == np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()
