from __future__ import annotations

import io
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.fileset import FileSet

from sharing.dicom.synthetic import (
    SyntheticPatient,
    ct_series,
    pdf_report,
    sr_report,
    us_multiframe,
    write_study,
)
from sharing.models import AuditEvent, Instance, Patient, Study, User
from sharing.services.downloads import (
    DownloadKind,
    download_filename,
    download_record,
    study_archive_chunks,
)
from sharing.services.receiving import ReceiveOutcome, Sender, instance_receive
from sharing.storage import get_store
from tests.conftest import require_binary

pytestmark = pytest.mark.django_db(transaction=True)
SENDER = Sender(source=Study.Source.DIMSE, label="PACS@10.0.0.5")
FINDINGS = "Lungs are clear without focal consolidation."


def ingest(paths: list[Path]) -> None:
    results = [instance_receive(path=path, sender=SENDER) for path in paths]
    assert all(r.outcome is ReceiveOutcome.STORED for r in results)


@pytest.fixture
def jane() -> User:
    user = User.objects.create_user("jane@example.com", "pw-123456789")
    Patient.objects.create(patient_id="MRN-1001", issuer="GENERAL", user=user)
    return user


@pytest.fixture
def study(tmp_path, patient: SyntheticPatient, jane) -> Study:
    """CT (5 slices) + US cine + SR + encapsulated PDF, in one study of Jane's."""
    ct = ct_series(patient, slices=5, size=64)
    uid = str(ct[0].StudyInstanceUID)
    datasets = [
        *ct,
        *us_multiframe(patient, frames=3, rows=40, cols=60, study_uid=uid),
        sr_report(patient, study_uid=uid, text=FINDINGS, impression="No acute abnormality."),
        pdf_report(patient, study_uid=uid),
    ]
    ingest(write_study(datasets, tmp_path / "study"))
    return Study.objects.get(study_instance_uid=uid)


def archive(studies: list[Study], kind: DownloadKind = DownloadKind.PDI) -> zipfile.ZipFile:
    data = b"".join(study_archive_chunks(studies=studies, kind=kind))
    return zipfile.ZipFile(io.BytesIO(data))


def extracted(zf: zipfile.ZipFile, root: Path) -> Path:
    zf.extractall(root)
    return root


def test_a_study_downloads_as_a_pdi_disc(study):
    zf = archive([study])

    assert zf.testzip() is None
    names = set(zf.namelist())
    assert {"README.TXT", "DICOMDIR", "REPORT/REPORT01.TXT", "REPORT/REPORT01.PDF"} <= names
    dicom = sorted(n for n in names if n.startswith("DICOM/"))
    assert len(dicom) == Instance.objects.count() == 8
    assert all(len(n.split("/")) == 5 for n in dicom)
    assert "DICOM/P0000001/S0000001/E0000001/I0000001" in dicom


def test_every_dicom_file_is_byte_identical_to_the_stored_object(study, tmp_path):
    root = extracted(archive([study]), tmp_path / "disc")
    file_set = FileSet(dcmread(root / "DICOMDIR"))
    store = get_store()

    assert len(file_set) == Instance.objects.count()
    for entry in file_set:
        instance = Instance.objects.get(sop_instance_uid=entry.SOPInstanceUID)
        with store.open(instance.object_key) as handle:
            assert Path(entry.path).read_bytes() == handle.read()
        assert Path(entry.path).relative_to(root).parts == tuple(entry.ReferencedFileID)
        assert all(len(part) <= 8 and part == part.upper() for part in entry.ReferencedFileID)


def test_the_dicomdir_has_the_right_record_for_each_kind_of_object(study, tmp_path):
    root = extracted(archive([study]), tmp_path / "disc")

    file_set = FileSet(dcmread(root / "DICOMDIR"))

    kinds = sorted(entry.node.record_type for entry in file_set)
    assert kinds == ["ENCAP DOC", *["IMAGE"] * 6, "SR DOCUMENT"]


def test_dcmdump_reads_the_dicomdir_and_every_file(study, tmp_path):
    dcmdump = require_binary("dcmdump")
    root = extracted(archive([study]), tmp_path / "disc")

    single = subprocess.run([dcmdump, str(root / "DICOMDIR")], capture_output=True, text=True)
    scan = subprocess.run([dcmdump, "+sd", "+r", str(root / "DICOM")], capture_output=True, text=True)

    assert single.returncode == 0, single.stderr
    assert "E:" not in single.stderr
    assert scan.returncode == 0, scan.stderr


def test_each_image_series_has_one_jpeg_preview(study):
    zf = archive([study])

    previews = sorted(n for n in zf.namelist() if n.startswith("JPEG/"))

    assert len(previews) == 2  # CT and US; the SR and the PDF have no picture
    for name in previews:
        with Image.open(io.BytesIO(zf.read(name))) as image:
            assert image.format == "JPEG"
            image.verify()


def test_the_report_comes_as_text_and_as_pdf(study):
    zf = archive([study])

    text = zf.read("REPORT/REPORT01.TXT").decode("utf-8")
    pdf = zf.read("REPORT/REPORT01.PDF")

    assert f"Findings: {FINDINGS}" in text
    assert "Impression: No acute abnormality." in text
    assert pdf.startswith(b"%PDF")


def test_the_readme_explains_the_disc_without_patient_data(study):
    readme = archive([study]).read("README.TXT").decode("ascii")

    assert "DICOMDIR" in readme
    assert "DICOM viewer" in readme
    assert "personal health information" in readme
    assert "Generated by Lightbox" in readme
    for text in ("DOE", "JANE", "MRN-1001", "CHEST", study.study_instance_uid):
        assert text not in readme


def test_no_dicom_text_appears_in_any_name(study):
    names = " ".join(archive([study]).namelist() + archive([study], DownloadKind.JPEG).namelist())

    for text in ("DOE", "JANE", "MRN", "CHEST", "AXIAL", "REPORT ", study.study_instance_uid):
        assert text not in names
    assert download_filename(studies=[study]) == "lightbox-study-20260115.zip"


def test_the_pictures_only_download_has_a_jpeg_per_image_and_no_dicom(study):
    zf = archive([study], DownloadKind.JPEG)

    names = zf.namelist()
    assert not any(n.startswith("DICOM") for n in names)
    assert {"README.TXT", "REPORT/REPORT01.TXT", "REPORT/REPORT01.PDF"} <= set(names)
    pictures = [n for n in names if n.startswith("JPEG/")]
    assert len(pictures) == 6  # 5 CT slices and one cine (its middle frame)
    for name in names:
        data = zf.read(name)
        assert data[128:132] != b"DICM"
        if name in pictures:
            with Image.open(io.BytesIO(data)) as image:
                assert image.format == "JPEG"


def test_two_studies_go_in_one_zip(study, tmp_path, patient):
    second = ct_series(patient, slices=2, size=32, study_date="20260201")
    ingest(write_study(second, tmp_path / "second"))
    other = Study.objects.get(study_instance_uid=second[0].StudyInstanceUID)

    root = extracted(archive([study, other]), tmp_path / "disc")
    file_set = FileSet(dcmread(root / "DICOMDIR"))

    assert len(file_set) == 10
    assert sorted(p.name for p in (root / "DICOM" / "P0000001").iterdir()) == ["S0000001", "S0000002"]
    assert [len(p.children) for p in file_set._tree.children] == [2]  # one patient, two studies
    assert download_filename(studies=[study, other]).startswith("lightbox-studies-")


def test_each_study_downloaded_is_audited_once(study, jane):
    download_record(user=jane, studies=[study], kind=DownloadKind.PDI, remote_addr="10.1.2.3")

    event = AuditEvent.objects.get(action=AuditEvent.Action.DOWNLOAD)
    assert event.actor_user == jane
    assert event.study_instance_uid == study.study_instance_uid
    assert event.patient == study.patient
    assert event.detail == {"kind": "pdi", "instances": 8}
    assert event.remote_addr == "10.1.2.3"


def test_a_big_study_streams_in_constant_memory(tmp_path, patient, jane):
    # One ~60 MB colour cine plus a CT series: far more than the memory allowed for the download.
    cine = us_multiframe(patient, frames=66, rows=480, cols=640)
    uid = str(cine[0].StudyInstanceUID)
    ingest(write_study([*cine, *ct_series(patient, slices=3, size=256, study_uid=uid)], tmp_path / "big"))
    del cine
    study = Study.objects.get(study_instance_uid=uid)
    assert study.size_bytes > 60_000_000

    total = 0
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for chunk in study_archive_chunks(studies=[study], kind=DownloadKind.PDI):
            total += len(chunk)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()

    assert total > study.size_bytes
    assert peak < 10 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
