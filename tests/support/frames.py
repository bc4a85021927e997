"""Instances whose pixel data tests lay out by hand: JPEG fragments without offset tables,
deflated and big endian files."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, JPEGBaseline8Bit

from sharing.dicom.synthetic import SyntheticPatient, ct_series, us_multiframe, write_part10

PATIENT = SyntheticPatient(patient_id="MRN-1001", issuer="GENERAL", name="DOE^JANE")


def _item(data: bytes) -> bytes:
    return b"\xfe\xff\x00\xe0" + struct.pack("<I", len(data)) + data


def encapsulate(
    frames: list[list[bytes]], *, basic_offsets: bool = False, extended: bool = False
) -> tuple[bytes, bytes, bytes]:
    """Encapsulated pixel data from each frame's fragments (each padded to even length), with or
    without a Basic Offset Table; also the Extended Offset Table and its lengths."""
    offsets, lengths, body = [], [], b""
    for fragments in frames:
        offsets.append(len(body))
        padded = [f + b"\x00" * (len(f) % 2) for f in fragments]
        body += b"".join(_item(f) for f in padded)
        lengths.append(sum(len(f) for f in padded))
    table = struct.pack(f"<{len(offsets)}I", *offsets) if basic_offsets else b""
    data = _item(table) + body + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    eot = struct.pack(f"<{len(offsets)}Q", *offsets) if extended else b""
    eot_lengths = struct.pack(f"<{len(lengths)}Q", *lengths) if extended else b""
    return data, eot, eot_lengths


def grey_frames(count: int, rows: int = 32, cols: int = 48) -> np.ndarray:
    ramp = np.add.outer(np.arange(rows) * 4, np.arange(cols) * 3).astype(np.uint8)
    return np.stack([np.roll(ramp, 5 * i, axis=1) for i in range(count)])


def jpeg_frames(pixels: np.ndarray) -> list[bytes]:
    encoded = []
    for frame in pixels:
        out = io.BytesIO()
        Image.fromarray(frame).save(out, format="JPEG", quality=95)
        encoded.append(out.getvalue())
    return encoded


def split(data: bytes, pieces: int) -> list[bytes]:
    """`data` in `pieces` fragments of even length (the last takes the rest)."""
    size = max(2, (len(data) // pieces) & ~1)
    parts = [data[i * size : (i + 1) * size] for i in range(pieces - 1)]
    return [*parts, data[(pieces - 1) * size :]]


def jpeg_multiframe(
    *, frames: int = 3, fragments_per_frame: int = 3, basic_offsets: bool = False, extended: bool = False
) -> tuple[Dataset, list[bytes]]:
    """A grey 8-bit JPEG Baseline multi-frame instance whose frames are split into fragments."""
    ds = us_multiframe(PATIENT, frames=frames, rows=32, cols=48)[0]
    pixels = grey_frames(frames)
    ds.set_pixel_data(pixels, "MONOCHROME2", 8, generate_instance_uid=False)
    encoded = jpeg_frames(pixels)
    data, eot, eot_lengths = encapsulate(
        [split(frame, fragments_per_frame) for frame in encoded],
        basic_offsets=basic_offsets,
        extended=extended,
    )
    ds.PixelData = data
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if extended:
        ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = eot, eot_lengths
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.LossyImageCompression = "01"
    return ds, encoded


def big_endian_ct() -> Dataset:
    ds = ct_series(PATIENT, slices=1, size=16)[0]
    native = ds.pixel_array
    ds.PixelData = native.astype(native.dtype.newbyteorder(">")).tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    return ds


def deflated_ct() -> Dataset:
    ds = ct_series(PATIENT, slices=1, size=16)[0]
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return ds


def write(ds: Dataset, path: Path) -> Path:
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax == ExplicitVRBigEndian:
        ds.save_as(path, enforce_file_format=True, little_endian=False, implicit_vr=False)
        return path
    return write_part10(ds, path)


def padded(data: bytes) -> bytes:
    return data + b"\x00" * (len(data) % 2)
