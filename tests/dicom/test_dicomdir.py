from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet

from sharing.dicom.dicomdir import DicomdirBuilder, HeaderIncomplete, file_id_component
from sharing.dicom.errors import UnreadableDicom
from sharing.dicom.reports import encapsulated_pdf, structured_report_text
from sharing.dicom.synthetic import (
    SyntheticPatient,
    ct_series,
    pdf_report,
    sr_report,
    us_multiframe,
    write_part10,
    write_study,
)
from tests.support.binaries import require_binary


@pytest.fixture
def study_files(tmp_path: Path, patient: SyntheticPatient) -> list[Path]:
    ct = ct_series(patient, slices=3, size=32)
    uid = str(ct[0].StudyInstanceUID)
    others = [
        sr_report(patient, study_uid=uid, text="No acute findings."),
        pdf_report(patient, study_uid=uid),
        *us_multiframe(patient, frames=3, rows=32, cols=48, study_uid=uid),
    ]
    return write_study([*ct, *others], tmp_path / "source")


def build_file_set(files: list[Path], root: Path, *, prefix_bytes: int | None = None) -> list[list[str]]:
    """Copy ``files`` into ``root`` under Lightbox-style IDs and write a DICOMDIR for them."""
    builder = DicomdirBuilder()
    file_ids = []
    for number, path in enumerate(files, 1):
        file_id = ["DICOM", "P0000001", "S0000001", file_id_component("E", 1), file_id_component("I", number)]
        data = path.read_bytes()
        if prefix_bytes is None:
            builder.add(io.BytesIO(data), file_id=file_id, whole=True)
        else:
            try:
                builder.add(io.BytesIO(data[:prefix_bytes]), file_id=file_id, whole=False)
            except HeaderIncomplete:
                builder.add(io.BytesIO(data), file_id=file_id, whole=True)
        target = root.joinpath(*file_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        file_ids.append(file_id)
    (root / "DICOMDIR").write_bytes(b"".join(builder.chunks()))
    return file_ids


def test_the_dicomdir_reads_back_with_every_instance_and_its_file_id(tmp_path, study_files):
    root = tmp_path / "disc"
    file_ids = build_file_set(study_files, root)

    file_set = FileSet(dcmread(root / "DICOMDIR"))

    assert len(file_set) == len(study_files)
    by_uid = {str(dcmread(path, stop_before_pixels=True).SOPInstanceUID): path for path in study_files}
    for instance in file_set:
        assert list(instance.ReferencedFileID) in file_ids
        assert Path(instance.path).read_bytes() == by_uid[instance.SOPInstanceUID].read_bytes()
    types = sorted(instance.node.record_type for instance in file_set)
    assert types == ["ENCAP DOC", "IMAGE", "IMAGE", "IMAGE", "IMAGE", "SR DOCUMENT"]
    assert [node.record_type for node in file_set._tree.children] == ["PATIENT"]


def test_headers_read_from_a_prefix_give_the_same_dicomdir(tmp_path, study_files):
    whole, prefix = tmp_path / "whole", tmp_path / "prefix"
    build_file_set(study_files, whole)
    build_file_set(study_files, prefix, prefix_bytes=4096)

    def records(root: Path) -> list[Dataset]:
        ds = dcmread(root / "DICOMDIR")
        return [record for record in ds.DirectoryRecordSequence]

    assert records(whole) == records(prefix)


def test_a_prefix_that_ends_inside_the_header_asks_for_the_whole_file(study_files):
    data = study_files[0].read_bytes()
    builder = DicomdirBuilder()

    with pytest.raises(HeaderIncomplete):
        builder.add(io.BytesIO(data[:300]), file_id=["I0000001"], whole=False)
    assert builder.count == 0


def test_bytes_that_are_not_dicom_are_refused(study_files):
    with pytest.raises(UnreadableDicom):
        DicomdirBuilder().add(io.BytesIO(b"not dicom at all" * 20), file_id=["I0000001"], whole=True)


@pytest.mark.parametrize("file_id", [["dicom"], ["TOOLONGNAME"], ["A-B"], [""], ["A"] * 9])
def test_file_ids_must_be_iso_9660_safe(study_files, file_id):
    with pytest.raises(ValueError):
        DicomdirBuilder().add(io.BytesIO(study_files[0].read_bytes()), file_id=file_id, whole=True)


def test_patients_studies_and_series_each_get_one_record(tmp_path, patient):
    other = SyntheticPatient(patient_id="MRN-2002", name="ROE^RICHARD")
    first = ct_series(patient, slices=2, size=16)
    files = write_study(
        [*first, *ct_series(patient, slices=2, size=16), *ct_series(other, slices=1, size=16)],
        tmp_path / "src",
    )
    root = tmp_path / "disc"
    build_file_set(files, root)

    file_set = FileSet(dcmread(root / "DICOMDIR"))

    patients = file_set._tree.children
    assert [len(p.children) for p in patients] == [2, 1]  # two studies for the first patient
    assert len(file_set) == 5


def test_dcmdump_parses_the_dicomdir_and_the_whole_disc(tmp_path, study_files):
    dcmdump = require_binary("dcmdump")
    root = tmp_path / "disc"
    build_file_set(study_files, root)

    single = subprocess.run([dcmdump, str(root / "DICOMDIR")], capture_output=True, text=True)
    scan = subprocess.run([dcmdump, "+sd", "+r", str(root)], capture_output=True, text=True)

    assert single.returncode == 0, single.stderr
    assert "E:" not in single.stderr
    assert "W:" not in single.stderr
    assert "DirectoryRecordSequence" in single.stdout
    assert scan.returncode == 0, scan.stderr


def test_a_structured_report_reads_as_text_with_its_concept_names(tmp_path, patient):
    ds = sr_report(patient, study_uid="1.2.3", text="No acute findings.", impression="Normal chest.")
    measured = Dataset()
    measured.NumericValue = "12.5"
    unit = Dataset()
    unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = "mm", "UCUM", "mm"
    measured.MeasurementUnitsCodeSequence = [unit]
    num = Dataset()
    num.RelationshipType, num.ValueType, num.MeasuredValueSequence = "CONTAINS", "NUM", [measured]
    name = Dataset()
    name.CodeValue, name.CodingSchemeDesignator, name.CodeMeaning = "410668003", "SCT", "Length"
    num.ConceptNameCodeSequence = [name]
    code = Dataset()
    code.RelationshipType, code.ValueType = "CONTAINS", "CODE"
    finding = Dataset()
    finding.CodeValue, finding.CodingSchemeDesignator, finding.CodeMeaning = "N", "99X", "Nodule"
    code.ConceptNameCodeSequence, code.ConceptCodeSequence = [name], [finding]
    ds.ContentSequence = [*ds.ContentSequence, num, code]
    path = write_part10(ds, tmp_path / "sr.dcm")

    text = structured_report_text(path)

    assert text.startswith("Diagnostic Imaging Report\r\n")
    assert "Findings: No acute findings." in text
    assert "Impression: Normal chest." in text
    assert "Length: 12.5 mm" in text
    assert "Length: Nodule" in text
    assert "DOE" not in text  # the report's content, not the header's patient data


def test_the_pdf_comes_out_without_its_padding(tmp_path, patient):
    path = write_part10(pdf_report(patient, study_uid="1.2.3"), tmp_path / "doc.dcm")

    pdf = encapsulated_pdf(path)

    assert pdf is not None
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert not pdf.endswith(b"\x00")


def test_a_non_pdf_document_gives_no_pdf(tmp_path, patient):
    ds = pdf_report(patient, study_uid="1.2.3")
    ds.MIMETypeOfEncapsulatedDocument = "text/xml"
    path = write_part10(ds, tmp_path / "doc.dcm")

    assert encapsulated_pdf(path) is None
