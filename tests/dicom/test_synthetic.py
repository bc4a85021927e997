"""Tests for sharing.dicom.synthetic: the generated studies must be valid, consistent DICOM."""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_rescale
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)
from pydicom.valuerep import validate_value

from sharing.dicom import synthetic as syn

pytestmark = pytest.mark.filterwarnings("error")  # pydicom warns about invalid values: make that fatal

PATIENT = syn.SyntheticPatient("SYN-0001", issuer="LIGHTBOX-DEMO", name="TEST^ALEX", birth_date="19750412")
NO_ISSUER = syn.SyntheticPatient("SYN-0002")

HEADER = [
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyDescription",
    "SeriesDescription",
    "SeriesNumber",
    "InstanceNumber",
    "Modality",
    "BodyPartExamined",
    "ReferringPhysicianName",
    "StudyID",
    "Manufacturer",
    "InstitutionName",
    "SpecificCharacterSet",
]
PIXEL_MODULE = [
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
]
STUDY_LEVEL = [
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "StudyDescription",
    "PatientID",
    "PatientName",
]

GENERATORS: dict[str, Callable[[syn.SyntheticPatient], list[Dataset]]] = {
    "ct": lambda p: syn.ct_series(p, slices=4, size=64),
    "mr": lambda p: syn.mr_series(p, slices=3, size=64),
    "cr": lambda p: syn.cr_image(p, rows=128, cols=100),
    "us": lambda p: syn.us_multiframe(p, frames=4, rows=60, cols=80),
    "sr": lambda p: [syn.sr_report(p, study_uid=syn.new_uid(), text="Lungs clear.")],
    "pdf": lambda p: [syn.pdf_report(p, study_uid=syn.new_uid())],
}


@pytest.fixture(autouse=True)
def object_store() -> None:
    """Shadow tests/conftest.py's autouse object store: it needs pytest-django, and this module runs
    without Django (``-p no:django``) because the generator must not depend on it."""


@pytest.fixture(scope="module")
def demo() -> list[list[Dataset]]:
    return syn.demo_studies(PATIENT)


def walk(ds: Dataset) -> Iterator[tuple[str, str, object]]:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from walk(item)
        else:
            yield elem.keyword, elem.VR, elem.value


def assert_valid_dicom(ds: Dataset) -> None:
    for keyword, vr, value in walk(ds):
        values = value if isinstance(value, list | pydicom.multival.MultiValue) else [value]
        for v in values:
            validate_value(vr, str(v) if vr in ("DS", "IS") else v, pydicom.config.RAISE)
            if vr == "UI":
                assert UID(str(v)).is_valid, (keyword, v)
    assert re.fullmatch(r"\d{8}", ds.StudyDate)
    assert re.fullmatch(r"\d{6}", ds.StudyTime)


@pytest.mark.parametrize("kind", GENERATORS)
def test_round_trip_through_part10(kind: str, tmp_path: Path) -> None:
    for index, original in enumerate(GENERATORS[kind](PATIENT)):
        path = syn.write_part10(original, tmp_path / f"{kind}{index}.dcm")
        raw = path.read_bytes()
        assert raw[:128] == b"\0" * 128
        assert raw[128:132] == b"DICM"
        ds = pydicom.dcmread(path)
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == original.SOPClassUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == original.SOPInstanceUID
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        for keyword in HEADER:
            assert keyword in ds, keyword
        assert ds.Manufacturer == "Lightbox Synthetic"
        assert ds.InstitutionName == "Lightbox Demo Hospital"
        assert ds.IssuerOfPatientID == "LIGHTBOX-DEMO"
        assert_valid_dicom(ds)
        if kind in ("sr", "pdf"):
            assert "PixelData" not in ds
            continue
        for keyword in PIXEL_MODULE:
            assert keyword in ds, keyword
        if kind != "us":
            assert len(ds.PixelSpacing) == 2
        np.testing.assert_array_equal(ds.pixel_array, original.pixel_array)


def test_issuer_only_when_given() -> None:
    for make in GENERATORS.values():
        for ds in make(NO_ISSUER):
            assert "IssuerOfPatientID" not in ds
            assert ds.PatientID == "SYN-0002"


def test_demo_uids_are_consistent(demo: list[list[Dataset]]) -> None:
    study_uids = [study[0].StudyInstanceUID for study in demo]
    assert len(demo) == 5
    assert len(set(study_uids)) == 5
    sop_uids = [ds.SOPInstanceUID for study in demo for ds in study]
    assert len(sop_uids) == len(set(sop_uids))
    for study in demo:
        for keyword in STUDY_LEVEL:
            assert len({str(ds.get(keyword)) for ds in study}) == 1, keyword
        for ds in study:
            assert len(ds.StudyInstanceUID) <= 64
            assert len(ds.SOPInstanceUID) <= 64
            assert ds.IssuerOfPatientID == "LIGHTBOX-DEMO"
        series_numbers = {ds.SeriesInstanceUID: ds.SeriesNumber for ds in study}
        assert len(set(series_numbers.values())) == len(series_numbers)  # distinct series numbers
    ct_study, mr_study = demo[0], demo[1]
    assert {ds.Modality for ds in ct_study} == {"CT", "SR"}
    assert sum(ds.Modality == "CT" for ds in ct_study) == 40
    assert ct_study[0].Rows == 512
    assert len({ds.SeriesInstanceUID for ds in mr_study}) == 2
    assert len({ds.FrameOfReferenceUID for ds in mr_study}) == 1
    assert len({ds.get("FrameOfReferenceUID") for ds in ct_study if ds.Modality == "CT"}) == 1
    assert [study[0].Modality for study in demo[2:]] == ["CR", "US", "DOC"]


def test_demo_headers_are_valid(demo: list[list[Dataset]]) -> None:
    for study in demo:
        for ds in study:
            assert_valid_dicom(ds)


def test_demo_written_size_under_40mb(demo: list[list[Dataset]], tmp_path: Path) -> None:
    total = 0
    for number, study in enumerate(demo):
        paths = syn.write_study(study, tmp_path / f"study{number}")
        assert [p.name for p in paths] == [f"{i:05d}.dcm" for i in range(1, len(study) + 1)]
        total += sum(p.stat().st_size for p in paths)
    assert total < 40 * 1024 * 1024


def test_ct_stack_sorts_and_changes(demo: list[list[Dataset]]) -> None:
    ct = [ds for ds in demo[0] if ds.Modality == "CT"]
    stack = sorted(ct, key=lambda ds: float(ds.ImagePositionPatient[2]))
    z = [float(ds.ImagePositionPatient[2]) for ds in stack]
    assert len(set(z)) == len(z)
    assert np.allclose(np.diff(z), float(stack[0].SliceThickness))
    assert all(float(ds.SliceLocation) == float(ds.ImagePositionPatient[2]) for ds in stack)
    assert [float(v) for v in stack[0].ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    pixels = [ds.pixel_array for ds in stack]
    for a, b in itertools.pairwise(pixels):
        assert np.any(a != b)
    lung_area = [int((apply_rescale(p, ds) < -500).sum()) for p, ds in zip(pixels, stack, strict=True)]
    assert max(lung_area) - min(lung_area) > 0.05 * 512 * 512  # anatomy visibly changes along the stack


def test_ct_hounsfield_units_are_plausible(demo: list[list[Dataset]]) -> None:
    ds = demo[0][20]
    assert (ds.RescaleIntercept, ds.RescaleSlope) == (-1024, 1)
    assert (ds.WindowCenter, ds.WindowWidth) == (40, 400)
    assert ds.BitsStored == 12
    assert ds.PixelRepresentation == 0
    hu = apply_rescale(ds.pixel_array, ds)
    assert hu.min() >= -1024
    assert hu.max() <= 3071
    assert np.median(hu[:20, :20]) < -950  # air in the corner
    assert (hu < -500).sum() > 10_000  # lungs
    assert (hu > 300).sum() > 500  # spine, ribs, sternum
    assert ((hu > 0) & (hu < 80)).sum() > 20_000  # soft tissue


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, ImplicitVRLittleEndian])
def test_ct_transfer_syntaxes_round_trip_pixel_exact(syntax: str, tmp_path: Path) -> None:
    plain = syn.ct_series(PATIENT, slices=3, size=128)
    encoded = syn.ct_series(PATIENT, slices=3, size=128, transfer_syntax=syntax)
    for index, (a, b) in enumerate(zip(plain, encoded, strict=True)):
        ds = pydicom.dcmread(syn.write_part10(b, tmp_path / f"{index}.dcm"))
        assert ds.file_meta.TransferSyntaxUID == syntax
        np.testing.assert_array_equal(ds.pixel_array, a.pixel_array)


def test_ct_reports_a_missing_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoEncoder:
        is_available = False
        missing_dependencies = ["pylibjpeg-openjpeg"]

    monkeypatch.setattr(syn, "get_encoder", lambda uid: NoEncoder())
    with pytest.raises(ValueError, match="no encoder for JPEG 2000"):
        syn.ct_series(PATIENT, slices=1, size=32, transfer_syntax=JPEG2000Lossless)


def test_ct_rejects_unsupported_transfer_syntax() -> None:
    with pytest.raises(ValueError, match="unsupported transfer syntax"):
        syn.ct_series(PATIENT, slices=1, size=32, transfer_syntax=JPEGBaseline8Bit)


def test_mr_series_numbers_and_weightings() -> None:
    study_uid = syn.new_uid()
    t2 = syn.mr_series(PATIENT, slices=4, size=64, study_uid=study_uid)
    t1 = syn.mr_series(PATIENT, slices=4, size=64, study_uid=study_uid, series_number=2, weighting="T1")
    assert {ds.SeriesNumber for ds in t2} == {1}
    assert {ds.SeriesNumber for ds in t1} == {2}
    assert t1[0].SeriesInstanceUID != t2[0].SeriesInstanceUID
    assert not np.array_equal(t1[2].pixel_array, t2[2].pixel_array)
    assert float(t2[0].ImagePositionPatient[2]) < float(t2[1].ImagePositionPatient[2])


def test_cr_is_monochrome1_chest() -> None:
    (ds,) = syn.cr_image(PATIENT)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert ds.Modality == "CR"
    assert (ds.Rows, ds.Columns) == (1024, 860)
    assert ds.ViewPosition == "PA"
    arr = ds.pixel_array.astype(float)
    background, spine = arr[-40:, :40].mean(), arr[600:700, 420:440].mean()
    assert background > spine + 1000  # MONOCHROME1: unattenuated background is stored high (shown black)


def test_us_is_rgb_multiframe_cine() -> None:
    (ds,) = syn.us_multiframe(PATIENT, frames=12)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.3.1"
    assert ds.PhotometricInterpretation == "RGB"
    assert ds.SamplesPerPixel == 3
    assert ds.PlanarConfiguration == 0
    assert ds.NumberOfFrames == 12
    assert float(ds.FrameTime) > 0
    assert ds.FrameIncrementPointer == 0x00181063
    arr = ds.pixel_array
    assert arr.shape == (12, 240, 320, 3)
    assert all(np.any(arr[i] != arr[i + 1]) for i in range(11))
    red, green, blue = (arr[..., c].astype(int) for c in range(3))
    assert ((red > green + 50) & (red > blue + 50)).any()  # Doppler flow towards the probe
    assert ((blue > red + 30) & (blue > green + 30)).any()  # ... and away from it


def test_sr_carries_the_report_text(tmp_path: Path) -> None:
    study_uid = syn.new_uid()
    sr = syn.sr_report(
        PATIENT, study_uid=study_uid, text="Small nodule, right upper lobe.", impression="Follow up."
    )
    ds = pydicom.dcmread(syn.write_part10(sr, tmp_path / "sr.dcm"))
    assert ds.SOPClassUID == BasicTextSRStorage
    assert ds.Modality == "SR"
    assert ds.StudyInstanceUID == study_uid
    assert ds.CompletionFlag == "COMPLETE"
    assert ds.VerificationFlag == "VERIFIED"
    assert ds.ValueType == "CONTAINER"
    assert len(ds.VerifyingObserverSequence) == 1
    items = {item.ConceptNameCodeSequence[0].CodeMeaning: item for item in ds.ContentSequence}
    assert items["Findings"].ValueType == "TEXT"
    assert items["Findings"].TextValue == "Small nodule, right upper lobe."
    assert items["Impression"].TextValue == "Follow up."


def check_pdf(document: bytes) -> None:
    assert document.startswith(b"%PDF-1.")
    assert document.rstrip(b"\0\n").endswith(b"%%EOF")
    startxref = int(re.findall(rb"startxref\n(\d+)\n", document)[-1])
    assert document[startxref:].startswith(b"xref\n0 6\n")
    entries = re.findall(rb"(\d{10}) 00000 n \n", document[startxref:])
    assert len(entries) == 5
    for number, offset in enumerate(entries, 1):
        assert document[int(offset) :].startswith(b"%d 0 obj\n" % number)
    match = re.search(rb"/Length (\d+) >>\nstream\n", document)
    assert match is not None
    length = int(match.group(1))
    stream = document.split(b"stream\n", 1)[1]
    assert stream[length:].startswith(b"\nendstream")


@pytest.mark.parametrize("title", ["Radiology report", "Radiology report!", "Report (outside) \\ Ü"])
def test_pdf_is_valid_and_even(title: str, tmp_path: Path) -> None:
    pdf = syn.pdf_report(PATIENT, study_uid=syn.new_uid(), title=title)
    ds = pydicom.dcmread(syn.write_part10(pdf, tmp_path / "doc.dcm"))
    assert ds.SOPClassUID == EncapsulatedPDFStorage
    assert ds.Modality == "DOC"
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    document = ds.EncapsulatedDocument
    assert len(document) % 2 == 0
    assert document[ds.EncapsulatedDocumentLength :] in (b"", b"\0")  # at most one NUL of padding
    check_pdf(document[: ds.EncapsulatedDocumentLength])
    assert ds.DocumentTitle == title


def test_non_ascii_text_switches_to_utf8(tmp_path: Path) -> None:
    patient = syn.SyntheticPatient("SYN-Ü1", name="MÜLLER^ZOË")
    ds = pydicom.dcmread(syn.write_part10(syn.cr_image(patient, rows=32, cols=32)[0], tmp_path / "x.dcm"))
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.PatientName == "MÜLLER^ZOË"
    assert syn.cr_image(PATIENT, rows=32, cols=32)[0].SpecificCharacterSet == "ISO_IR 100"


@pytest.mark.parametrize("kind", ["ct", "mr", "cr", "us"])
def test_pixels_are_deterministic_per_patient(kind: str) -> None:
    first, second = GENERATORS[kind](PATIENT), GENERATORS[kind](PATIENT)
    for a, b in zip(first, second, strict=True):
        assert a.PixelData == b.PixelData
        assert a.SOPInstanceUID != b.SOPInstanceUID
    other = GENERATORS[kind](NO_ISSUER)
    assert any(a.PixelData != b.PixelData for a, b in zip(first, other, strict=True))


def test_write_part10_mirrors_even_deliberately_broken_identifiers(tmp_path: Path) -> None:
    ds = syn.ct_series(PATIENT, slices=1, size=16)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom may warn about the bad UID (Lightbox turns that off)
        ds.SOPInstanceUID = "1.2.3/../../etc"  # other suites feed such files to the receiver
        del ds.StudyInstanceUID
        back = pydicom.dcmread(syn.write_part10(ds, tmp_path / "bad.dcm"))
        assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID == "1.2.3/../../etc"
    assert "StudyInstanceUID" not in back


def test_write_study_names_never_come_from_dicom_text(tmp_path: Path) -> None:
    hostile = syn.SyntheticPatient("../../etc/passwd", name="EVIL^../..")
    datasets = syn.ct_series(hostile, slices=2, size=32, description="../../../tmp/x")
    paths = syn.write_study(datasets, tmp_path / "out")
    assert [p.name for p in paths] == ["00001.dcm", "00002.dcm"]
    assert all(p.parent == tmp_path / "out" for p in paths)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"birth_date": "1980-01-01"},
        {"birth_date": "19801301"},
        {"sex": "X"},
        {"name": "A" * 65},
        {"issuer": "a\\b"},
    ],
)
def test_patient_rejects_invalid_values(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        syn.SyntheticPatient("SYN-1", **kwargs)


def test_generators_reject_malformed_dates() -> None:
    with pytest.raises(ValueError, match="YYYYMMDD"):
        syn.ct_series(PATIENT, slices=1, size=32, study_date="2026-01-15")
