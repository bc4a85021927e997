from __future__ import annotations

import io
import zipfile
from http import HTTPStatus
from pathlib import Path

import pydicom
import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom.fileset import FileSet

from sharing.dicom.synthetic import SyntheticPatient, ct_series, write_study
from sharing.models import AuditEvent, Instance, Patient, Study, User
from tests.support.clients import Client

PASSWORD = "a long password for tests 3"


@pytest.fixture
def staff(db) -> User:
    user = User.objects.create_user("records@hospital.test", PASSWORD, role=User.Role.RECORDS)
    TOTP.activate(user, generate_totp_secret())  # staff pages need two-factor (sharing.middleware)
    return user


@pytest.fixture
def patient_user(db) -> User:
    return User.objects.create_user("jane@example.test", PASSWORD)


def client_for(user: User, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def as_upload(path: Path, name: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name or path.name, path.read_bytes())


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
    return buffer.getvalue()


def zip_upload(name: str, entries: dict[str, bytes]) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, zip_bytes(entries))


def cd_entries(directory: Path, patient: SyntheticPatient, slices: int = 3) -> dict[str, bytes]:
    """A disc as a PACS burns it: DICOMDIR at the root, images in PT/ST/SE folders, a readme."""
    file_set = FileSet()
    for ds in ct_series(patient, slices=slices, size=32):
        file_set.add(ds)
    file_set.write(directory)
    entries = {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}
    entries["readme.txt"] = b"Open the viewer on this disc to see your images."
    return entries


def test_an_anonymous_visitor_is_sent_to_sign_in(db, ct_files):
    page = Client().get("/upload/")
    posted = Client().post("/upload/", {"files": [as_upload(ct_files[0])]})

    assert page.status_code == HTTPStatus.FOUND
    assert page["Location"].startswith("/accounts/login/")
    assert posted.status_code == HTTPStatus.FOUND
    assert not Instance.objects.exists()


def test_signed_in_users_see_the_form_and_a_link_to_it(staff):
    response = client_for(staff).get("/upload/")

    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert 'href="/upload/"' in html
    assert 'enctype="multipart/form-data"' in html
    assert "webkitdirectory" in html
    assert 'src="/static/js/upload.js"' in html
    assert "<script>" not in html
    assert "style=" not in html


def test_the_page_tells_patients_their_uploads_are_checked_first(patient_user):
    response = client_for(patient_user).get("/upload/")

    assert "outside images" in response.content.decode()
    assert "records staff first check them" in response.content.decode()


def test_staff_upload_files_and_see_what_was_stored(staff, ct_files, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    files = [as_upload(p) for p in ct_files] + [as_upload(tmp_path / "notes.txt")]

    response = client_for(staff).post("/upload/", {"files": files})

    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert "5 stored, 0 already stored, 1 skipped, 0 refused." in html
    assert "CT CHEST W/O CONTRAST" in html
    assert "notes.txt — not a DICOM file" in html
    assert Instance.objects.filter(uploaded_by=staff, source="upload").count() == 5


@pytest.mark.parametrize("memory_limit", [0, 2 * 1024 * 1024], ids=["spooled-to-disk", "in-memory"])
def test_uploads_work_whether_django_kept_them_in_memory_or_on_disk(staff, ct_files, settings, memory_limit):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = memory_limit

    response = client_for(staff).post("/upload/", {"files": [as_upload(p) for p in ct_files[:2]]})

    assert "2 stored" in response.content.decode()
    assert Instance.objects.count() == 2


def test_the_same_files_again_are_reported_as_already_stored(staff, ct_files):
    client = client_for(staff)
    client.post("/upload/", {"files": [as_upload(ct_files[0])]})

    response = client.post("/upload/", {"files": [as_upload(ct_files[0])]})

    assert "0 stored, 1 already stored" in response.content.decode()


def test_scripts_get_the_same_report_as_json(staff, ct_files):
    response = client_for(staff).post(
        "/upload/", {"files": [as_upload(ct_files[0])]}, HTTP_ACCEPT="application/json"
    )

    assert response.status_code == HTTPStatus.OK
    report = response.json()
    assert report["counts"] == {"stored": 1, "already_stored": 0, "skipped": 0, "refused": 0}
    assert report["files"] == [
        {"name": ct_files[0].name, "status": "stored", "label": "Stored", "reason": ""}
    ]
    assert report["studies"][0]["images"] == 1


def test_a_zipped_cd_is_read_and_its_dicomdir_and_readme_skipped(staff, patient, tmp_path):
    upload = zip_upload("disc.zip", cd_entries(tmp_path / "cd", patient))

    response = client_for(staff).post("/upload/", {"files": [upload]})

    html = response.content.decode()
    assert "3 stored, 0 already stored, 2 skipped, 0 refused." in html
    assert "disc.zip: DICOMDIR — index file (DICOMDIR)" in html
    assert "disc.zip: readme.txt — not a DICOM file" in html
    assert Instance.objects.count() == 3


def test_a_dicomdir_uploaded_with_its_folder_is_skipped(staff, patient, tmp_path):
    entries = cd_entries(tmp_path / "cd", patient, slices=2)
    files = [SimpleUploadedFile(Path(name).name, data) for name, data in entries.items()]

    response = client_for(staff).post("/upload/", {"files": files})

    assert "2 stored, 0 already stored, 2 skipped, 0 refused." in response.content.decode()


def test_a_zip_entry_that_climbs_out_of_the_folder_is_refused_and_never_written(staff, ct_files, tmp_path):
    upload = zip_upload(
        "evil.zip", {"../evil.dcm": ct_files[0].read_bytes(), "ok.dcm": ct_files[1].read_bytes()}
    )

    response = client_for(staff).post("/upload/", {"files": [upload]})

    html = response.content.decode()
    assert "evil.zip: ../evil.dcm — unsafe file name in the archive" in html
    assert "1 stored, 0 already stored, 0 skipped, 1 refused." in html
    assert Instance.objects.get().sop_instance_uid == pydicom.dcmread(ct_files[1]).SOPInstanceUID
    assert not list(tmp_path.parent.rglob("evil.dcm"))
    assert not Path("evil.dcm").exists()
    assert not Path("../evil.dcm").exists()


def test_a_zip_bomb_is_refused_with_a_clear_message(staff):
    packed = zip_bytes({"zeros.dcm": bytes(50 * 1024 * 1024)})
    assert len(packed) < 1024 * 1024

    response = client_for(staff).post("/upload/", {"files": [SimpleUploadedFile("photos.zip", packed)]})

    html = response.content.decode()
    assert "0 stored, 0 already stored, 0 skipped, 1 refused." in html
    assert "looks like a zip bomb" in html
    assert not Instance.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_patients_upload_waits_for_staff_before_it_shows_in_their_library(patient_user, ct_files):
    client = client_for(patient_user)

    response = client.post("/upload/", {"files": [as_upload(p) for p in ct_files]})

    assert "Records staff will check these images" in response.content.decode()
    study = Study.objects.get()
    assert study.is_outside
    assert study.source == "upload"
    assert "CT CHEST" not in client.get("/").content.decode()

    Patient.objects.filter(pk=study.patient_id).update(user=patient_user)  # what reconciliation does

    assert "CT CHEST" in client.get("/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_staff_uploads_are_hospital_studies(staff, ct_files):
    client_for(staff).post("/upload/", {"files": [as_upload(p) for p in ct_files]})

    assert not Study.objects.get().is_outside


@pytest.mark.django_db(transaction=True)
def test_another_patient_sees_nothing_of_someone_elses_upload(patient_user, ct_files, patient):
    files = [as_upload(p, f"jane-scan-{i}.dcm") for i, p in enumerate(ct_files)]
    client_for(patient_user).post("/upload/", {"files": files})
    other = client_for(User.objects.create_user("someone@example.test", PASSWORD))

    for page in (other.get("/upload/"), other.get("/")):
        html = page.content.decode()
        assert "CT CHEST" not in html
        assert patient.patient_id not in html
        assert "jane-scan" not in html


def test_the_form_still_needs_its_csrf_token(staff, ct_files):
    client = client_for(staff, enforce_csrf_checks=True)

    response = client.post("/upload/", {"files": [as_upload(ct_files[0])]})

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not Instance.objects.exists()


def test_the_form_works_with_its_csrf_token(staff, ct_files):
    client = client_for(staff, enforce_csrf_checks=True)
    client.get("/upload/")

    response = client.post(
        "/upload/",
        {"files": [as_upload(ct_files[0])], "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
    )

    assert response.status_code == HTTPStatus.OK
    assert Instance.objects.count() == 1


def test_too_many_files_at_once_get_a_clear_message(staff, ct_files, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2

    response = client_for(staff).post("/upload/", {"files": [as_upload(p) for p in ct_files[:3]]})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "more than 2 files in one go" in response.content.decode()
    assert not Instance.objects.exists()


def test_a_request_over_the_upload_limit_is_refused_before_it_is_read(staff, ct_files, settings):
    settings.LIGHTBOX_UPLOAD_MAX_BYTES = 1000

    response = client_for(staff).post("/upload/", {"files": [as_upload(ct_files[0])]})

    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert "in one go" in response.content.decode()
    assert not Instance.objects.exists()


def test_posting_no_file_asks_for_one(staff):
    response = client_for(staff).post("/upload/", {})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "Choose at least one file" in response.content.decode()


def test_each_upload_is_audited_per_study_with_the_user_as_actor(staff, patient, tmp_path):
    first = write_study(ct_series(patient, slices=2, size=32), tmp_path / "one")
    second = write_study(ct_series(patient, slices=1, size=32), tmp_path / "two")

    client_for(staff).post("/upload/", {"files": [as_upload(p) for p in first + second]})

    events = AuditEvent.objects.filter(action=AuditEvent.Action.INGEST)
    assert sorted(e.detail["instances"] for e in events) == [1, 2]
    assert {(e.actor_kind, e.actor_user_id, e.detail["source"]) for e in events} == {
        ("user", staff.pk, "upload")
    }
