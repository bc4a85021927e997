from __future__ import annotations

import contextlib
import io
import zipfile
from pathlib import Path

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom.fileset import FileSet

from sharing.dicom.part10 import Part10Kind, part10_kind
from sharing.dicom.synthetic import ct_series, write_study
from sharing.models import AuditEvent, Instance, User
from sharing.services import stow, uploads
from sharing.services.audit import Client
from sharing.services.multipart import (
    MultipartError,
    UnsupportedMediaType,
    multipart_boundary,
    multipart_parts,
)
from sharing.services.receiving import ReceiveOutcome, ReceiveResult
from sharing.services.stow import stow_response
from sharing.services.uploads import FileStatus, upload_receive

BOUNDARY = b"lightbox-boundary-42"


def body_of(parts: list[bytes], *, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    chunks = [preamble]
    for index, part in enumerate(parts):
        chunks.append((b"\r\n" if index or preamble else b"") + b"--" + BOUNDARY + b"\r\n")
        chunks.append(b"Content-Type: application/dicom\r\n\r\n" + part)
    chunks.append(b"\r\n--" + BOUNDARY + b"--" + epilogue)
    return b"".join(chunks)


def parse(body: bytes, directory: Path, *, chunk_size: int = 64 * 1024, max_part_bytes: int = 10**9):
    stream = io.BytesIO(body)
    found = []
    for part in multipart_parts(
        read=stream.read,
        boundary=BOUNDARY,
        directory=directory,
        max_part_bytes=max_part_bytes,
        chunk_size=chunk_size,
    ):
        found.append((part.content_type, part.path.read_bytes(), part.size))
    return found


# --- multipart/related --------------------------------------------------------------------------

TRICKY_PARTS = [
    b"first",
    b"\r\n--lightbox-boundary-4\r\n--lightbox-boundary-43-not-quite\r\n\r\n",  # almost a boundary
    b"",
    bytes(range(256)) * 40,
]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 25, 4096, 1 << 20])
def test_it_splits_parts_whatever_the_read_size(tmp_path, chunk_size):
    body = body_of(TRICKY_PARTS, preamble=b"ignored preamble", epilogue=b"\r\nignored epilogue")

    found = parse(body, tmp_path, chunk_size=chunk_size)

    assert [content for _, content, _ in found] == TRICKY_PARTS
    assert [size for _, _, size in found] == [len(p) for p in TRICKY_PARTS]
    assert {content_type for content_type, _, _ in found} == {"application/dicom"}


def test_it_reads_a_body_that_opens_with_its_boundary(tmp_path):
    assert [content for _, content, _ in parse(body_of([b"only"]), tmp_path)] == [b"only"]


def test_it_accepts_a_close_delimiter_without_a_final_line_break(tmp_path):
    body = b"--" + BOUNDARY + b"\r\n\r\nbare part\r\n--" + BOUNDARY + b"--"
    assert parse(body, tmp_path) == [("", b"bare part", 9)]


def test_it_deletes_each_part_file_once_the_next_is_asked_for(tmp_path):
    stream = io.BytesIO(body_of([b"a", b"b", b"c"]))
    parts = multipart_parts(read=stream.read, boundary=BOUNDARY, directory=tmp_path, max_part_bytes=100)
    with contextlib.closing(parts):
        first = next(parts)
        assert first.path.exists()
        second = next(parts)
        assert not first.path.exists()
    assert not second.path.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "body",
    [
        b"no boundary here at all",
        b"--" + BOUNDARY + b"\r\nContent-Type: application/dicom\r\n\r\ntruncated data",
        b"--" + BOUNDARY + b"\r\nContent-Type: application/dicom",
        b"--" + BOUNDARY + b"junk\r\n\r\ndata\r\n--" + BOUNDARY + b"--",
        b"",
    ],
    ids=["no-boundary", "no-closing-boundary", "ends-in-headers", "junk-after-boundary", "empty"],
)
def test_it_refuses_malformed_bodies_and_leaves_no_file(tmp_path, body):
    with pytest.raises(MultipartError):
        parse(body, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_it_refuses_a_part_over_the_size_limit(tmp_path):
    with pytest.raises(MultipartError, match="larger than the upload limit"):
        parse(body_of([b"x" * 1000]), tmp_path, max_part_bytes=999)
    assert list(tmp_path.iterdir()) == []


def test_it_reads_the_boundary_from_the_content_type():
    assert multipart_boundary('multipart/related; type="application/dicom"; boundary=abc') == b"abc"
    assert multipart_boundary('Multipart/Related; boundary="a b:c"') == b"a b:c"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/dicom",
        "multipart/form-data; boundary=abc",
        'multipart/related; type="application/dicom+json"; boundary=abc',
        "",
    ],
)
def test_it_refuses_content_types_other_than_multipart_related_dicom(content_type):
    with pytest.raises(UnsupportedMediaType):
        multipart_boundary(content_type)


def test_it_refuses_a_content_type_without_a_boundary():
    with pytest.raises(MultipartError):
        multipart_boundary('multipart/related; type="application/dicom"')


def test_the_stow_response_lists_failures_with_empty_uids_when_the_part_was_not_dicom():
    response = stow_response(
        items=[stow.StowItem(ReceiveResult(ReceiveOutcome.UNREADABLE, "junk"))],
        studies_url="http://x/studies",
    )

    assert response.status == 409
    assert response.dataset == {
        "00081198": {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": {"vr": "UI"},
                    "00081155": {"vr": "UI"},
                    "00081197": {"vr": "US", "Value": [0xC000]},
                }
            ],
        }
    }


# --- Files and zips -----------------------------------------------------------------------------


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_user("records@hospital.test", "a long password 1", role=User.Role.RECORDS)


def upload(path: Path, name: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name or path.name, path.read_bytes())


def zip_of(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def statuses(report) -> dict[str, tuple[FileStatus, str]]:
    return {f.name: (f.status, f.reason) for f in report.files}


def test_it_tells_dicom_files_dicomdirs_and_other_files_apart(tmp_path, patient):
    cd = tmp_path / "cd"
    file_set = FileSet()
    for ds in ct_series(patient, slices=2, size=32):
        file_set.add(ds)
    file_set.write(cd)
    (tmp_path / "readme.txt").write_text("hello")

    assert part10_kind(cd / "DICOMDIR") is Part10Kind.DIRECTORY
    assert part10_kind(next(cd.rglob("IM000000"))) is Part10Kind.INSTANCE
    assert part10_kind(tmp_path / "readme.txt") is Part10Kind.NOT_DICOM


def test_it_stores_uploaded_files_and_skips_what_is_not_dicom(tmp_path, staff, ct_files, object_store):
    (tmp_path / "notes.txt").write_text("not an image")

    report = upload_receive(
        files=[upload(p) for p in ct_files] + [upload(tmp_path / "notes.txt")], user=staff
    )

    assert report.counts() == {"stored": 5, "already_stored": 0, "skipped": 1, "refused": 0}
    assert statuses(report)["notes.txt"] == (FileStatus.SKIPPED, "not a DICOM file")
    assert Instance.objects.count() == 5
    assert set(Instance.objects.values_list("source", "uploaded_by")) == {("upload", staff.pk)}


def test_it_reports_files_already_stored_as_such(staff, ct_files, object_store):
    upload_receive(files=[upload(ct_files[0])], user=staff)

    report = upload_receive(files=[upload(ct_files[0])], user=staff)

    assert report.counts()["already_stored"] == 1
    assert Instance.objects.count() == 1


def test_it_reads_a_zipped_cd_with_its_dicomdir_and_readme(tmp_path, staff, patient, object_store):
    cd = tmp_path / "cd"
    file_set = FileSet()
    for ds in ct_series(patient, slices=3, size=32):
        file_set.add(ds)
    file_set.write(cd)
    entries = {str(p.relative_to(cd)): p.read_bytes() for p in cd.rglob("*") if p.is_file()}
    entries["README.TXT"] = b"Images of Jane Doe"
    entries["__MACOSX/._DICOMDIR"] = b"resource fork"
    archive = zip_of(tmp_path / "cd.zip", entries)

    report = upload_receive(files=[upload(archive)], user=staff)

    found = statuses(report)
    assert found["cd.zip: DICOMDIR"][0] is FileStatus.SKIPPED
    assert "index file" in found["cd.zip: DICOMDIR"][1]
    assert found["cd.zip: README.TXT"] == (FileStatus.SKIPPED, "not a DICOM file")
    assert not any("__MACOSX" in name for name in found)
    assert report.counts()["stored"] == 3
    assert Instance.objects.count() == 3


def test_it_never_writes_a_file_by_its_name_in_the_archive(tmp_path, staff, ct_files, object_store, settings):
    archive = zip_of(
        tmp_path / "evil.zip",
        {
            "../evil.dcm": ct_files[0].read_bytes(),
            "/etc/evil2.dcm": ct_files[1].read_bytes(),
            "C:\\evil3.dcm": ct_files[2].read_bytes(),
            "fine/ok.dcm": ct_files[3].read_bytes(),
        },
    )

    report = upload_receive(files=[upload(archive)], user=staff)

    found = statuses(report)
    for name in ("evil.zip: ../evil.dcm", "evil.zip: /etc/evil2.dcm", "evil.zip: C:\\evil3.dcm"):
        assert found[name][0] is FileStatus.REFUSED
        assert "unsafe file name" in found[name][1]
    assert found["evil.zip: fine/ok.dcm"][0] is FileStatus.STORED
    assert Instance.objects.count() == 1
    assert not list(tmp_path.parent.rglob("evil*.dcm"))
    assert list(Path(settings.LIGHTBOX_TEMP_DIR).iterdir()) == []


def test_it_refuses_a_zip_bomb_with_a_clear_message(tmp_path, staff, object_store):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("zeros.dcm", "w") as entry:
        for _ in range(50):
            entry.write(bytes(1024 * 1024))
    assert path.stat().st_size < 1024 * 1024

    report = upload_receive(files=[upload(path)], user=staff)

    [file] = report.files
    assert file.status is FileStatus.REFUSED
    assert "zip bomb" in file.reason
    assert "zeros.dcm" in file.reason


def test_it_refuses_an_entry_whose_header_understates_its_size(tmp_path, staff, object_store):
    # Declared sizes say 10 bytes (so the ratio check before reading passes); it inflates to 3 MB.
    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", bytes(3 * 1024 * 1024))
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).infolist()[0]
    for offset in (info.header_offset + 22, data.rfind(b"PK\x01\x02") + 24):  # uncompressed size fields
        data[offset : offset + 4] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(data))

    report = upload_receive(files=[SimpleUploadedFile("liar.zip", bytes(data))], user=staff)

    [file] = report.files
    assert file.status is FileStatus.REFUSED
    assert "damaged" in file.reason
    assert not Instance.objects.exists()


def test_it_stops_reading_archives_past_the_upload_limit(tmp_path, staff, ct_files, object_store, settings):
    settings.LIGHTBOX_UPLOAD_MAX_BYTES = ct_files[0].stat().st_size + 10
    archive = zip_of(tmp_path / "big.zip", {p.name: p.read_bytes() for p in ct_files[:3]})

    report = upload_receive(files=[upload(archive)], user=staff)

    assert report.counts()["stored"] == 1
    assert report.files[-1].status is FileStatus.REFUSED
    assert "upload limit" in report.files[-1].reason


def test_it_refuses_archives_with_too_many_entries(tmp_path, staff, object_store, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_ARCHIVE_ENTRIES", 3)
    archive = zip_of(tmp_path / "many.zip", {f"{i}.txt": b"x" for i in range(4)})

    report = upload_receive(files=[upload(archive)], user=staff)

    [file] = report.files
    assert file.status is FileStatus.REFUSED
    assert "more than 3 files" in file.reason


def test_it_skips_archives_inside_archives(tmp_path, staff, ct_files, object_store):
    inner = zip_of(tmp_path / "inner.zip", {"a.dcm": ct_files[0].read_bytes()})
    outer = zip_of(
        tmp_path / "outer.zip", {"inner.zip": inner.read_bytes(), "renamed.bin": inner.read_bytes()}
    )

    report = upload_receive(files=[upload(outer)], user=staff)

    assert {f.status for f in report.files} == {FileStatus.SKIPPED}
    assert all("archive inside the archive" in f.reason for f in report.files)
    assert not Instance.objects.exists()


def test_it_refuses_a_damaged_zip(staff, object_store):
    report = upload_receive(
        files=[SimpleUploadedFile("broken.zip", b"PK\x03\x04" + b"\x00" * 100)], user=staff
    )

    assert report.files[0].status is FileStatus.REFUSED
    assert "damaged" in report.files[0].reason


def test_it_refuses_invalid_dicom_with_the_reason(tmp_path, staff, ct_files, object_store):
    ds = pydicom.dcmread(ct_files[0])
    del ds.SeriesInstanceUID
    [bad] = write_study([ds], tmp_path / "bad")

    report = upload_receive(files=[upload(bad)], user=staff)

    assert report.files[0].status is FileStatus.REFUSED
    assert "SeriesInstanceUID" in report.files[0].reason


def test_it_writes_one_audit_event_per_study(tmp_path, staff, patient, object_store):
    first = write_study(ct_series(patient, slices=2, size=32), tmp_path / "one")
    second = write_study(ct_series(patient, slices=1, size=32), tmp_path / "two")

    upload_receive(files=[upload(p) for p in first + second], user=staff, client=Client(address="10.1.2.3"))

    events = AuditEvent.objects.filter(action=AuditEvent.Action.INGEST)
    assert events.count() == 2
    assert {e.detail["instances"] for e in events} == {1, 2}
    assert {(e.actor_kind, e.actor_user_id, e.remote_addr) for e in events} == {
        ("user", staff.pk, "10.1.2.3")
    }
    assert {e.detail["source"] for e in events} == {"upload"}


def test_it_leaves_no_temporary_file_behind(tmp_path, staff, ct_files, object_store, settings):
    archive = zip_of(tmp_path / "a.zip", {p.name: p.read_bytes() for p in ct_files})

    upload_receive(files=[upload(archive), upload(ct_files[0], "again.dcm")], user=staff)

    assert list(Path(settings.LIGHTBOX_TEMP_DIR).iterdir()) == []
