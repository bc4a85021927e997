"""Entirely synthetic DICOM studies for the demo seed, the test suite and benchmarks.

Nothing here is derived from real patient data.  Pixel content is drawn from simple
analytic "phantoms" (ellipses, bands, speckle) with a RNG seeded from the patient, so
the same patient always yields the same pixels; only the UIDs differ between calls.
"""

from __future__ import annotations

import math
import os
import textwrap
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.encoders.base import get_encoder
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    BasicTextSRStorage,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    EncapsulatedCDAStorage,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    RLELossless,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

MANUFACTURER = "Lightbox Synthetic"
INSTITUTION = "Lightbox Demo Hospital"
CT_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, JPEG2000Lossless)
F32 = npt.NDArray[np.float32]


def _check_date(value: str) -> str:
    if len(value) != 8 or not value.isdigit():
        raise ValueError(f"not a DICOM DA value (YYYYMMDD): {value!r}")
    datetime.strptime(value, "%Y%m%d")  # ValueError for impossible dates such as 20260230
    return value


@dataclass(frozen=True)
class SyntheticPatient:
    patient_id: str
    issuer: str = ""  # IssuerOfPatientID (0010,0021); the element is omitted when empty
    name: str = "DOE^JANE"
    birth_date: str = "19800101"
    sex: str = "F"

    def __post_init__(self) -> None:
        for label, value in (("patient_id", self.patient_id), ("issuer", self.issuer), ("name", self.name)):
            if len(value) > 64 or "\\" in value or any(ord(c) < 32 for c in value):
                raise ValueError(f"{label} is not a valid single DICOM value (<= 64 chars): {value!r}")
        if not self.patient_id.strip():
            raise ValueError("patient_id must not be empty")
        _check_date(self.birth_date)
        if self.sex not in ("M", "F", "O", ""):
            raise ValueError(f"sex must be M, F, O or empty, not {self.sex!r}")


def new_uid() -> str:
    return str(generate_uid(prefix=None))


@dataclass(frozen=True)
class _Series:
    """Study- and series-level values shared by every instance of one series."""

    sop_class: UID
    modality: str
    body_part: str
    study_uid: str
    study_date: str
    study_description: str
    description: str
    number: int = 1
    uid: str = field(default_factory=new_uid)


def _rng(patient: SyntheticPatient, salt: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{patient.patient_id}|{patient.issuer}|{salt}".encode()))


def _header(
    patient: SyntheticPatient, series: _Series, instance: int = 1, texts: Sequence[str] = ()
) -> Dataset:
    """Patient/study/series/equipment/SOP-common modules plus Part-10 file meta."""
    h = zlib.crc32(series.study_uid.encode())  # study-level values derive from the UID: same across a study
    text = (patient.patient_id, patient.issuer, patient.name, series.study_description, series.description)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100" if all(t.isascii() for t in (*text, *texts)) else "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = series.sop_class, new_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = series.study_uid, series.uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.InstanceCreationDate = _check_date(series.study_date)
    ds.StudyTime = f"{8 + h % 10:02d}{h // 10 % 60:02d}{h // 600 % 60:02d}"
    ds.SeriesTime = ds.ContentTime = ds.InstanceCreationTime = ds.StudyTime
    ds.AccessionNumber, ds.StudyID = f"LB{h % 10**8:08d}", f"{h % 10**6:06d}"
    ds.StudyDescription, ds.SeriesDescription = series.study_description, series.description
    ds.SeriesNumber, ds.InstanceNumber = series.number, instance
    ds.Modality, ds.BodyPartExamined = series.modality, series.body_part
    ds.ReferringPhysicianName = "REFERRER^DEMO"
    ds.Manufacturer, ds.ManufacturerModelName, ds.InstitutionName = MANUFACTURER, "synthetic.py", INSTITUTION
    ds.PatientName, ds.PatientID = patient.name, patient.patient_id
    if patient.issuer:
        ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate, ds.PatientSex = patient.birth_date, patient.sex
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = series.sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta.ImplementationVersionName = "LIGHTBOX_SYN"
    return ds


def _slice_geometry(
    ds: Dataset, series: _Series, spacing: float, size: int, z: float, thickness: float
) -> None:
    """Axial head-first-supine plane: the stack sorts on ImagePositionPatient[2] / SliceLocation."""
    corner = round(-spacing * (size - 1) / 2, 4)
    # Derived from study + modality, so every series of one study shares it (generate_uid ignores
    # entropy_srcs when prefix is None, hence uuid5).
    ds.FrameOfReferenceUID = f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, series.study_uid + series.modality).int}"
    ds.PositionReferenceIndicator, ds.PatientPosition, ds.AcquisitionNumber = "", "HFS", 1
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [corner, corner, z], [1, 0, 0, 0, 1, 0]
    ds.SliceThickness, ds.SliceLocation, ds.PixelSpacing = thickness, z, [spacing, spacing]


def _coords(n: int, scale: float) -> F32:
    """Pixel centres mapped so that `scale` pixels span [-1, 1]."""
    return ((np.arange(n, dtype=np.float32) - (n - 1) / 2) / (scale / 2)).astype(np.float32)


def _paint(img: F32, xs: F32, ys: F32, cx: float, cy: float, a: float, b: float, value: float) -> None:
    """Fill an axis-aligned ellipse with `value`, touching only its bounding box."""
    c0, c1 = np.searchsorted(xs, [cx - a, cx + a])
    r0, r1 = np.searchsorted(ys, [cy - b, cy + b])
    if c1 > c0 and r1 > r0 and a > 0 and b > 0:
        inside = ((xs[None, c0:c1] - cx) / a) ** 2 + ((ys[r0:r1, None] - cy) / b) ** 2 <= 1.0
        img[r0:r1, c0:c1][inside] = value


def _blur(img: F32, k: int) -> F32:
    """Separable (2k+1) box blur, edges replicated."""
    for axis in (0, 1):
        pad = [(k, k) if ax == axis else (0, 0) for ax in (0, 1)]
        window = sliding_window_view(np.pad(img, pad, mode="edge"), 2 * k + 1, axis=axis)
        img = window.mean(axis=-1, dtype=np.float32)
    return img


def _ct_slice(xs: F32, t: float, rng: np.random.Generator, jitter: float) -> F32:
    """One axial chest slice in HU; t runs 0 (lung apices) .. 1 (upper abdomen)."""
    hu = np.full((xs.size, xs.size), -1000.0, dtype=np.float32)
    bw, bh = 0.80 * jitter + 0.05 * math.sin(math.pi * t), 0.56 * jitter + 0.03 * t
    _paint(hu, xs, xs, 0.0, 0.84, 0.85, 0.035, 150.0)  # table
    _paint(hu, xs, xs, 0.0, 0.05, bw, bh, -100.0)  # subcutaneous fat
    _paint(hu, xs, xs, 0.0, 0.05, bw - 0.05, bh - 0.05, 40.0)  # muscle / soft tissue
    lung = math.sin(math.pi * min(t * 1.12, 1.0)) ** 0.6
    for side in (-1.0, 1.0):
        la, lb = 0.08 + 0.20 * lung, 0.12 + 0.30 * lung
        _paint(hu, xs, xs, side * 0.33, 0.02, la, lb, -830.0)
        for k in range(7):  # pulmonary vessels drifting through the stack
            angle = 2.4 * k + 4.0 * t * side
            vx, vy = side * 0.33 + 0.6 * la * math.cos(angle), 0.02 + 0.7 * lb * math.sin(angle)
            _paint(hu, xs, xs, vx, vy, 0.012, 0.012, 30.0)
    if 0.3 < t < 0.9:  # heart, towards the patient's left (image right)
        s = math.sin(math.pi * (t - 0.3) / 0.6)
        _paint(hu, xs, xs, 0.10, -0.12, 0.24 * s, 0.20 * s, 40.0)
    if t > 0.68:  # liver dome rising under the right lung
        g = (t - 0.68) / 0.32
        _paint(hu, xs, xs, -0.30, 0.02, 0.18 + 0.22 * g, 0.18 + 0.25 * g, 60.0)
    _paint(hu, xs, xs, 0.08, 0.24, 0.055, 0.055, 45.0)  # descending aorta
    if 0.15 < t < 0.35:  # aortic arch, anterior
        _paint(hu, xs, xs, -0.02, -0.05, 0.06, 0.06, 45.0)
    if t < 0.8:  # sternum
        _paint(hu, xs, xs, 0.0, 0.05 - bh + 0.06, 0.07, 0.025, 650.0)
    _paint(hu, xs, xs, 0.0, 0.39, 0.10, 0.085, 750.0)  # vertebral body: cortex ...
    _paint(hu, xs, xs, 0.0, 0.39, 0.08, 0.065, 300.0)  # ... and cancellous bone
    _paint(hu, xs, xs, 0.0, 0.55, 0.10, 0.06, 700.0)  # posterior elements
    _paint(hu, xs, xs, 0.0, 0.52, 0.035, 0.035, 15.0)  # spinal canal
    for k, angle in enumerate(np.linspace(0.25, math.pi - 0.25, 6)):  # ribs come and go along the stack
        for side in (-1.0, 1.0):
            if math.sin(2 * math.pi * (5.0 * t + 0.17 * k) + (side > 0)) > 0.2:
                rx, ry = side * (bw - 0.08) * math.cos(angle), 0.05 + (bh - 0.07) * math.sin(angle - 0.35)
                _paint(hu, xs, xs, rx, ry, 0.035, 0.022, 720.0)
    hu += rng.standard_normal(hu.shape, dtype=np.float32) * 12.0
    return hu


def ct_series(
    patient: SyntheticPatient,
    *,
    slices: int = 40,
    size: int = 512,
    study_uid: str | None = None,
    study_date: str = "20260115",
    description: str = "CT CHEST W/O CONTRAST",
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> list[Dataset]:
    """Axial chest CT covering ~300 mm; unsigned 12-bit stored values, HU = stored - 1024."""
    if transfer_syntax not in CT_SYNTAXES:
        raise ValueError(f"unsupported transfer syntax {transfer_syntax}; use one of {CT_SYNTAXES}")
    encoder = get_encoder(transfer_syntax) if UID(transfer_syntax).is_compressed else None
    if encoder is not None and not encoder.is_available:
        raise ValueError(f"no encoder for {UID(transfer_syntax).name}: {encoder.missing_dependencies}")
    if slices < 1 or size < 16:
        raise ValueError("need at least one slice of at least 16x16 pixels")
    rng, thickness, spacing = _rng(patient, "ct"), round(300.0 / slices, 3), round(360.0 / size, 4)
    jitter = float(rng.uniform(0.92, 1.04))
    name = f"AXIAL {thickness:g}MM STANDARD"
    series = _Series(CTImageStorage, "CT", "CHEST", study_uid or new_uid(), study_date, description, name)
    xs, out = _coords(size, size), []
    for i in range(slices):
        ds = _header(patient, series, i + 1)
        _slice_geometry(ds, series, spacing, size, round(-i * thickness, 3), thickness)
        ds.ImageType, ds.KVP, ds.ConvolutionKernel = ["ORIGINAL", "PRIMARY", "AXIAL"], 120, "STANDARD"
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth, ds.WindowCenterWidthExplanation = 40, 400, "SOFT TISSUE"
        stored = np.clip(_ct_slice(xs, i / max(slices - 1, 1), rng, jitter) + 1024.5, 0, 4095)
        ds.set_pixel_data(stored.astype(np.uint16), "MONOCHROME2", 12, generate_instance_uid=False)
        if transfer_syntax == ImplicitVRLittleEndian:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        elif encoder is not None:
            ds.compress(transfer_syntax, generate_instance_uid=False)
        out.append(ds)
    return out


# Signal per tissue for each weighting: fat, skull, CSF, grey matter, white matter.
_MR_TISSUE = {"T1": (900.0, 40.0, 180.0, 480.0, 680.0), "T2": (650.0, 40.0, 1500.0, 820.0, 560.0)}


def _mr_slice(x: F32, theta: F32, t: float, weighting: str, rng: np.random.Generator) -> F32:
    """One axial head slice; t runs 0 (orbits, posterior fossa) .. 1 (vertex)."""
    fat, bone, csf, gm, wm = _MR_TISSUE[weighting]
    img = np.zeros((x.size, x.size), dtype=np.float32)
    s = math.sqrt(max(0.05, 1.0 - ((t - 0.4) / 0.75) ** 2))
    a, b = 0.70 * s, 0.86 * s
    for inset, value in ((0.0, fat), (0.035, bone), (0.07, csf), (0.085, gm)):  # scalp .. cortex
        _paint(img, x, x, 0.0, 0.0, a - inset, b - inset, value)
    r = np.sqrt((x[None, :] / a) ** 2 + (x[:, None] / b) ** 2)
    img[r < 0.72 + 0.07 * np.sin(11 * theta + 9 * t) + 0.03 * np.sin(23 * theta - 5 * t)] = wm  # gyri
    if t < 0.35:  # globes anteriorly, cerebellum and fourth ventricle posteriorly
        for side in (-1.0, 1.0):
            _paint(img, x, x, side * 0.28 * s, -0.70 * b, 0.13, 0.11, csf)
        _paint(img, x, x, 0.0, 0.45 * b, 0.45 * a, 0.35 * b, gm)
        _paint(img, x, x, 0.0, 0.35 * b, 0.07, 0.07, csf)
    if 0.35 < t < 0.8:  # lateral ventricles either side of the midline
        v = math.sin(math.pi * (t - 0.35) / 0.45)
        for side in (-1.0, 1.0):
            _paint(img, x, x, side * 0.07, -0.05, 0.06 * v, 0.28 * v, csf)
    img = _blur(img, 1) * (1.0 + 0.15 * x[None, :] - 0.10 * x[:, None])  # coil bias field
    noise = rng.standard_normal((2, *img.shape), dtype=np.float32) * 18.0
    magnitude: F32 = np.sqrt((img + noise[0]) ** 2 + noise[1] ** 2)  # Rician noise
    return magnitude


def mr_series(
    patient: SyntheticPatient,
    *,
    slices: int = 20,
    size: int = 256,
    study_uid: str | None = None,
    study_date: str = "20260210",
    description: str = "MR BRAIN",
    series_number: int = 1,
    weighting: Literal["T1", "T2"] = "T2",
) -> list[Dataset]:
    """Axial head MR, unsigned 12-bit; call twice with one study_uid for a multi-series study."""
    if weighting not in _MR_TISSUE:
        raise ValueError(f"weighting must be T1 or T2, not {weighting!r}")
    study_uid, name = study_uid or new_uid(), f"AX {weighting} SE"
    series = _Series(MRImageStorage, "MR", "HEAD", study_uid, study_date, description, name, series_number)
    rng, thickness, spacing = _rng(patient, f"mr-{weighting}"), 5.0, round(230.0 / size, 4)
    x = _coords(size, size)
    theta = np.arctan2(x[:, None], x[None, :]).astype(np.float32)
    out = []
    for i in range(slices):
        ds = _header(patient, series, i + 1)
        _slice_geometry(ds, series, spacing, size, round(-60.0 + i * thickness, 3), thickness)
        ds.ImageType, ds.SpacingBetweenSlices = ["ORIGINAL", "PRIMARY", "M", "ND"], thickness
        ds.ScanningSequence, ds.SequenceVariant, ds.MRAcquisitionType = "SE", "NONE", "2D"
        ds.RepetitionTime, ds.EchoTime = (500, 15) if weighting == "T1" else (4000, 100)
        ds.MagneticFieldStrength, ds.ImagedNucleus = 1.5, "1H"
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.WindowCenter, ds.WindowWidth = (450, 900) if weighting == "T1" else (700, 1400)
        img = np.clip(_mr_slice(x, theta, i / max(slices - 1, 1), weighting, rng), 0, 4095)
        ds.set_pixel_data(img.astype(np.uint16), "MONOCHROME2", 12, generate_instance_uid=False)
        out.append(ds)
    return out


def cr_image(
    patient: SyntheticPatient,
    *,
    study_uid: str | None = None,
    study_date: str = "20250903",
    rows: int = 1024,
    cols: int = 860,
) -> list[Dataset]:
    """PA chest radiograph, MONOCHROME1 (high stored values display dark)."""
    rng = _rng(patient, "cr")
    x, y = _coords(cols, rows), _coords(rows, rows)  # same scale on both axes
    ax, col = np.abs(x)[None, :], y[:, None]
    bright = np.zeros((rows, cols), dtype=np.float32)  # displayed brightness, 0 = black
    _paint(bright, x, y, 0.0, 0.30, 0.80, 1.0, 0.50)  # torso soft tissue
    _paint(bright, x, y, 0.0, -0.55, 0.88, 0.20, 0.50)  # shoulders
    _paint(bright, x, y, 0.0, -0.85, 0.17, 0.35, 0.50)  # neck
    lung = np.zeros_like(bright)
    for side, dome in ((-1.0, 0.42), (1.0, 0.50)):  # the right hemidiaphragm sits higher
        _paint(lung, x, y, side * 0.36, dome - 0.50, 0.27, 0.52, 1.0)
        lung[(col > dome - 0.18 * np.cos((x[None, :] - side * 0.36) * 3.5)) & (lung > 0)] = 0.0
    texture = rng.random((rows // 16 + 1, cols // 16 + 1), dtype=np.float32)  # vascular markings
    texture = _blur(np.repeat(np.repeat(texture, 16, 0), 16, 1)[:rows, :cols], 10)
    bright -= _blur(lung, 6) * (0.30 + 0.10 * texture)
    _paint(bright, x, y, 0.10, 0.18, 0.30, 0.26, 0.55)  # heart shadow, to the patient's left
    bright += 0.18 * ((ax < 0.075) & (bright > 0.05))  # spine / mediastinum
    ribs = np.modf((col - 0.30 * ax**2 + 1.0) * 7.0)[0] < 0.22
    bright += 0.10 * (ribs & (ax > 0.08) & (ax < 0.72) & (col > -0.6) & (col < 0.55))
    clavicle = np.abs(col - (-0.58 + 0.22 * ax)) < 0.03
    bright += 0.20 * (clavicle & (ax > 0.06) & (ax < 0.55))
    bright = _blur(bright, 3) + rng.standard_normal(bright.shape, dtype=np.float32) * 0.01
    stored = np.clip((1.0 - bright) * 4095.0, 0, 4095).astype(np.uint16)
    study_uid = study_uid or new_uid()
    series = _Series(
        ComputedRadiographyImageStorage, "CR", "CHEST", study_uid, study_date, "XR CHEST PA", "PA"
    )
    ds = _header(patient, series)
    ds.ImageType, ds.ViewPosition, ds.PatientOrientation, ds.KVP = (
        ["ORIGINAL", "PRIMARY"],
        "PA",
        ["L", "F"],
        120,
    )
    ds.PixelSpacing = ds.ImagerPixelSpacing = [0.42, 0.42]
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    ds.WindowCenter, ds.WindowWidth = 2300, 3600
    ds.set_pixel_data(stored, "MONOCHROME1", 12, generate_instance_uid=False)
    return [ds]


def us_multiframe(
    patient: SyntheticPatient,
    *,
    frames: int = 24,
    rows: int = 240,
    cols: int = 320,
    study_uid: str | None = None,
    study_date: str = "20260301",
) -> list[Dataset]:
    """Colour-Doppler carotid cine loop: one RGB multi-frame instance at 25 frames per second."""
    rng = _rng(patient, "us")
    rr, cc = np.mgrid[0:rows, 0:cols].astype(np.float32)
    rho, theta = np.hypot(rr + 8.0, cc - cols / 2), np.arctan2(cc - cols / 2, rr + 8.0)
    fan = (np.abs(theta) < 0.62) & (rho > 20) & (rho < rows * 0.97)
    speckle = [_blur(rng.rayleigh(0.6, (rows * 2, 120)).astype(np.float32), 1) for _ in range(2)]
    a_idx = np.clip((theta + 0.62) / 1.24 * 119, 0, 119).astype(np.intp)
    dist = np.hypot((rr - rows * 0.55) / (rows * 0.11), (cc - cols / 2 - 12) / (rows * 0.13))  # vessel
    echo = 0.55 + 0.35 * (rho < 30) + 0.35 * (np.abs(rho - rows * 0.3) < 3) - 0.15 * rho / rows
    pixels = np.zeros((frames, rows, cols, 3), dtype=np.uint8)
    for f in range(frames):
        phase = 2 * math.pi * f / frames
        wall = 1.0 + 0.07 * max(math.sin(phase), 0.0)  # systolic distension
        lumen = dist < wall
        r_idx = (rho + 3.0 * math.sin(phase)).astype(np.intp) % (rows * 2)  # tissue motion
        mix = 0.5 + 0.5 * math.cos(phase)  # slow speckle decorrelation
        tissue = mix * speckle[0][r_idx, a_idx] + (1 - mix) * speckle[1][r_idx, a_idx]
        e = np.where(lumen, 0.04, np.where(dist < wall + 0.18, 0.95, echo))
        pixels[f] = (np.clip(e * tissue * 230.0, 0, 255) * fan).astype(np.uint8)[..., None]
        v = 0.9 * max(math.sin(phase), 0.0) + 0.1 - 0.25 * max(-math.sin(phase), 0.0)  # systolic peak
        flow = np.clip(v * (1.0 - dist**2), -1.0, 1.0)
        for sel in (lumen & (flow > 0.08), lumen & (flow < -0.08)):  # red towards, blue away
            fl = flow[sel]
            red, blue = np.maximum(80 + 175 * fl, 20), np.maximum(80 - 175 * fl, 20)
            pixels[f][sel] = np.stack([red, 200 * np.abs(fl) ** 3, blue], -1)
    top, height, left = rows // 12, rows // 3, cols - cols // 20  # colour scale bar on the right
    ramp = np.linspace(1.0, -1.0, height, dtype=np.float32)[:, None]
    bar = [80 + 175 * np.clip(ramp, 0, 1), 0 * ramp, 80 + 175 * np.clip(-ramp, 0, 1)]
    pixels[:, top : top + height, left : left + max(cols // 50, 2)] = np.stack(bar, -1).astype(np.uint8)
    study_uid, name = study_uid or new_uid(), "US CAROTID DOPPLER"
    series = _Series(
        UltrasoundMultiFrameImageStorage, "US", "NECK", study_uid, study_date, name, "R CCA CINE"
    )
    ds = _header(patient, series)
    ds.ImageType, ds.LossyImageCompression = ["ORIGINAL", "PRIMARY"], "00"
    ds.FrameTime, ds.CineRate, ds.RecommendedDisplayFrameRate = 40, 25, 25
    ds.FrameIncrementPointer = 0x00181063  # -> FrameTime
    ds.set_pixel_data(pixels, "RGB", 8, generate_instance_uid=False)
    return [ds]


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def sr_report(
    patient: SyntheticPatient,
    *,
    study_uid: str,
    text: str,
    study_date: str = "20260115",
    description: str = "CT CHEST W/O CONTRAST",
    impression: str = "",
) -> Dataset:
    """Basic Text SR: a CONTAINER root holding a Findings TEXT item (and an Impression if given)."""
    series = _Series(
        BasicTextSRStorage, "SR", "CHEST", study_uid, study_date, description, "RADIOLOGY REPORT", 900
    )
    ds = _header(patient, series, texts=(text, impression))
    ds.ReferencedPerformedProcedureStepSequence, ds.PerformedProcedureCodeSequence = [], []
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "VERIFIED"
    observer = Dataset()
    observer.VerifyingObserverName, observer.VerifyingOrganization = "RADIOLOGIST^DEMO", INSTITUTION
    observer.VerifyingObserverIdentificationCodeSequence = []
    observer.VerificationDateTime = f"{study_date}{ds.StudyTime}"
    ds.VerifyingObserverSequence = [observer]
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = [_code("18748-4", "LN", "Diagnostic Imaging Report")]
    ds.ContentSequence = []
    for code, meaning, value in (("121070", "Findings", text), ("121073", "Impression", impression)):
        if value:
            item = Dataset()
            item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", value
            item.ConceptNameCodeSequence = [_code(code, "DCM", meaning)]
            ds.ContentSequence.append(item)
    return ds


def _pdf(lines: Sequence[str]) -> bytes:
    """A minimal one-page PDF 1.4 (Helvetica, WinAnsi) with a correct cross-reference table."""

    def show(s: str) -> bytes:
        escaped = s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return b"(" + escaped.encode("cp1252", "replace") + b") Tj"

    ops = [b"BT", b"/F1 16 Tf", b"72 740 Td", show(lines[0]), b"/F1 10 Tf"]
    for line in lines[1:]:
        ops += [b"0 -15 Td", show(line)]
    content = b"\n".join([*ops, b"ET"])
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    out, offsets = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def pdf_report(
    patient: SyntheticPatient,
    *,
    study_uid: str,
    title: str = "Radiology report",
    study_date: str = "20251120",
    description: str = "OUTSIDE REPORT",
) -> Dataset:
    """Encapsulated PDF instance (modality DOC) holding a hand-built one-page report."""
    series = _Series(EncapsulatedPDFStorage, "DOC", "CHEST", study_uid, study_date, description, "PDF", 950)
    ds = _header(patient, series, texts=(title,))
    body = (
        "SYNTHETIC DOCUMENT generated by Lightbox Synthetic: not a real patient, not for clinical use. "
        "Findings: the lungs are clear. No pleural effusion. Heart size is normal. "
        "Impression: no acute cardiopulmonary abnormality."
    )
    head = [title, f"Patient: {patient.name} ({patient.patient_id})", f"Study date: {study_date}", ""]
    pdf = _pdf([*head, *textwrap.wrap(body, 90)])
    ds.ConversionType, ds.BurnedInAnnotation, ds.DocumentTitle = "WSD", "YES", title[:64]
    ds.AcquisitionDateTime = f"{study_date}{ds.StudyTime}"
    ds.ConceptNameCodeSequence = [_code("18748-4", "LN", "Diagnostic Imaging Report")]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf)
    ds.EncapsulatedDocument = pdf + b"\x00" * (len(pdf) % 2)  # PS3.3 A.45.1.4.1: odd length gets one NUL
    return ds


def _cda(title: str, patient: SyntheticPatient, sections: Sequence[tuple[str, str]]) -> bytes:
    """A minimal HL7 CDA R2 document: header essentials and a structured body of text sections."""
    body = "".join(
        "<component><section>"
        f"<title>{escape(heading)}</title>"
        "<text>" + "".join(f"<paragraph>{escape(p)}</paragraph>" for p in text.split("\n\n")) + "</text>"
        "</section></component>"
        for heading, text in sections
    )
    family, _, given = patient.name.partition("^")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ClinicalDocument xmlns="urn:hl7-org:v3">'
        '<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>'
        f'<id root="{new_uid()}"/>'
        '<code code="18748-4" codeSystem="2.16.840.1.113883.6.1" displayName="Diagnostic Imaging Report"/>'
        f"<title>{escape(title)}</title>"
        "<recordTarget><patientRole>"
        f'<id extension="{escape(patient.patient_id, {chr(34): "&quot;"})}" root="2.999"/>'
        f"<patient><name><given>{escape(given)}</given><family>{escape(family)}</family></name></patient>"
        "</patientRole></recordTarget>"
        f"<component><structuredBody>{body}</structuredBody></component>"
        "</ClinicalDocument>\n"
    ).encode()


def cda_report(
    patient: SyntheticPatient,
    *,
    study_uid: str,
    text: str,
    title: str = "Radiology report",
    impression: str = "",
    study_date: str = "20260115",
    description: str = "CT CHEST W/O CONTRAST",
) -> Dataset:
    """Encapsulated CDA instance (modality DOC): a CDA document with Findings (paragraphs split
    on blank lines) and, if given, Impression sections."""
    series = _Series(EncapsulatedCDAStorage, "DOC", "CHEST", study_uid, study_date, description, "CDA", 960)
    ds = _header(patient, series, texts=(title, text, impression))
    sections = [("Findings", text)] + ([("Impression", impression)] if impression else [])
    document = _cda(title, patient, sections)
    ds.ConversionType, ds.BurnedInAnnotation, ds.DocumentTitle = "WSD", "NO", title[:64]
    ds.AcquisitionDateTime = f"{study_date}{ds.StudyTime}"
    ds.ConceptNameCodeSequence = [_code("18748-4", "LN", "Diagnostic Imaging Report")]
    ds.MIMETypeOfEncapsulatedDocument = "text/XML"
    ds.EncapsulatedDocumentLength = len(document)
    ds.EncapsulatedDocument = document + b" " * (len(document) % 2)
    return ds


def demo_studies(patient: SyntheticPatient) -> list[list[Dataset]]:
    """Five studies, ~34 MB uncompressed: CT + SR, MR (T2 and T1), CR, US colour cine, PDF only."""
    ct = ct_series(patient)
    ct_uid, mr_uid = str(ct[0].StudyInstanceUID), new_uid()
    findings = "Synthetic study. Lungs are clear without focal consolidation. No pleural effusion."
    sr = sr_report(
        patient, study_uid=ct_uid, text=findings, impression="No acute cardiopulmonary abnormality."
    )
    mr = mr_series(patient, study_uid=mr_uid)
    mr += mr_series(patient, study_uid=mr_uid, series_number=2, weighting="T1")
    return [
        [*ct, sr],
        mr,
        cr_image(patient),
        us_multiframe(patient),
        [pdf_report(patient, study_uid=new_uid())],
    ]


def write_part10(ds: Dataset, path: str | os.PathLike[str]) -> Path:
    """Write `ds` as a DICOM Part-10 file (preamble, file meta consistent with the dataset)."""
    meta = ds.file_meta if hasattr(ds, "file_meta") else FileMetaDataset()
    for keyword in ("SOPClassUID", "SOPInstanceUID"):  # tests also write deliberately broken datasets
        if keyword in ds:
            setattr(meta, f"MediaStorage{keyword}", ds[keyword].value)
    meta.TransferSyntaxUID = meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)
    meta.ImplementationClassUID = meta.get("ImplementationClassUID", PYDICOM_IMPLEMENTATION_UID)
    ds.file_meta, target = meta, Path(path)
    ds.save_as(target, enforce_file_format=True)
    return target


def write_study(datasets: Iterable[Dataset], directory: str | os.PathLike[str]) -> list[Path]:
    """One file per dataset; names come from the index, never from DICOM text."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    return [write_part10(ds, root / f"{index:05d}.dcm") for index, ds in enumerate(datasets, 1)]
