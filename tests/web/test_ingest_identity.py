"""Whose images these are, as each patient sees it: through the upload page, STOW-RS and C-STORE,
checked in both patients' libraries, QIDO searches and series metadata, and in the staff queue."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from pydicom.dataset import Dataset

from sharing.dicom.synthetic import SyntheticPatient, ct_series, write_study
from sharing.models import InstanceConflict, Study, User
from tests.support.clients import Client
from tests.support.factories import PASSWORD, ingest, patient_user
from tests.support.scp import storescu

pytestmark = pytest.mark.django_db(transaction=True)

JANE = SyntheticPatient(patient_id="MRN-1001", issuer="GENERAL", name="DOE^JANE", birth_date="19800101")
JOHN = SyntheticPatient(patient_id="MRN-2002", issuer="GENERAL", name="ROE^JOHN", birth_date="19700202")
MALLORY = SyntheticPatient(
    patient_id="MRN-6666", issuer="ELSEWHERE", name="ROE^MALLORY", birth_date="19900909"
)
BOUNDARY = "lightbox-identity-test"
Send = Callable[[list[Path]], None]


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def seen_by(user: User, study: list[Dataset]) -> str:
    """What ``user`` is shown of ``study``'s UIDs and of their own: the library page, a QIDO
    search of studies and of the study's series, and the series metadata."""
    client = client_for(user)
    study_uid, series_uid = str(study[0].StudyInstanceUID), str(study[0].SeriesInstanceUID)
    responses = [
        client.get("/"),
        client.get("/dicomweb/studies"),
        client.get(f"/dicomweb/studies/{study_uid}/series"),
        client.get(reverse("dicomweb-series-metadata", args=[study_uid, series_uid])),
    ]
    return "\n".join(r.content.decode() for r in responses if r.status_code == HTTPStatus.OK)


def staff_queue(staff: User) -> str:
    return client_for(staff).get(reverse("unmatched-studies")).content.decode()


def reusing_uids(of: list[Dataset], patient: SyntheticPatient, description: str) -> list[Dataset]:
    datasets = ct_series(
        patient, slices=2, size=32, study_uid=str(of[0].StudyInstanceUID), description=description
    )
    for ds in datasets:
        ds.SeriesInstanceUID = of[0].SeriesInstanceUID
    return datasets


def upload(user: User, paths: list[Path]) -> str:
    files = [SimpleUploadedFile(p.name, p.read_bytes()) for p in paths]
    response = client_for(user).post("/upload/", {"files": files})
    assert response.status_code == HTTPStatus.OK
    return response.content.decode()


def multipart(paths: list[Path]) -> bytes:
    chunks = []
    for path in paths:
        chunks += [
            b"--",
            BOUNDARY.encode(),
            b"\r\nContent-Type: application/dicom\r\n\r\n",
            path.read_bytes(),
            b"\r\n",
        ]
    return b"".join([*chunks, b"--", BOUNDARY.encode(), b"--\r\n"])


@pytest.fixture
def jane() -> User:
    return patient_user("jane@example.com", JANE.patient_id, issuer=JANE.issuer)


@pytest.fixture
def john() -> User:
    return patient_user("john@example.com", JOHN.patient_id, issuer=JOHN.issuer)


@pytest.fixture
def mallory() -> User:
    return User.objects.create_user("mallory@example.com", PASSWORD)


@pytest.fixture
def janes_ct(tmp_path, jane) -> list[Dataset]:
    datasets = ct_series(JANE, slices=3, size=32, description="JANES CHEST CT")
    ingest(write_study(datasets, tmp_path / "janes"))
    return datasets


@pytest.fixture(params=["stow", "c-store"])
def send(request, staff, tmp_path) -> Send:
    """The hospital sending files: STOW-RS by records staff, or C-STORE by a PACS with storescu."""
    if request.param == "stow":

        def stow(paths: list[Path]) -> None:
            response = client_for(staff).post(
                "/dicomweb/studies",
                data=multipart(paths),
                content_type=f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
            )
            assert response.status_code == HTTPStatus.OK, response.content

        return stow
    scp, env = request.getfixturevalue("scp"), request.getfixturevalue("dcmtk_env")

    def c_store(paths: list[Path]) -> None:
        result = storescu(scp, env, *paths)
        assert result.returncode == 0, result.stderr
        assert "Status: Success" in result.stderr or "(Success)" in result.stderr, result.stderr

    return c_store


# --- A patient's upload ----------------------------------------------------------------------------


def test_an_upload_with_another_patients_id_and_issuer_shows_in_neither_library(
    tmp_path, jane, janes_ct, mallory, staff
):
    files = write_study(ct_series(JANE, slices=2, size=32, description="MALLORYS UPLOAD"), tmp_path / "up")

    assert "2 stored" in upload(mallory, files)

    assert "JANES CHEST CT" in seen_by(jane, janes_ct)
    assert "MALLORYS UPLOAD" not in seen_by(jane, janes_ct)
    assert "You uploaded" not in seen_by(jane, janes_ct)
    malloryview = seen_by(mallory, janes_ct)
    assert "MALLORYS UPLOAD" not in malloryview  # "not shown to anyone", the uploader included
    assert "JANES CHEST CT" not in malloryview
    assert "MALLORYS UPLOAD" in staff_queue(staff)


def test_an_upload_reusing_another_patients_study_and_series_uids_stays_out_of_their_series(
    tmp_path, jane, janes_ct, mallory, staff
):
    files = write_study(reusing_uids(janes_ct, MALLORY, "MALLORYS UPLOAD"), tmp_path / "up")

    assert "2 stored" in upload(mallory, files)

    janeview = seen_by(jane, janes_ct)
    assert "DOE^JANE" in janeview
    assert "ROE^MALLORY" not in janeview
    assert "MALLORYS UPLOAD" not in janeview
    assert janeview.count('"00080018"') == 3  # the series metadata: Jane's three images, no more
    malloryview = seen_by(mallory, janes_ct)
    assert "DOE^JANE" not in malloryview
    assert "ROE^MALLORY" not in malloryview
    queue = staff_queue(staff)
    assert "MALLORYS UPLOAD" in queue
    assert "reuses the Study Instance UID of another study" in queue


def test_an_upload_reusing_another_patients_sop_instance_uids_is_stored_and_stays_apart(
    tmp_path, jane, janes_ct, mallory
):
    copies = [pydicom.dcmread(p) for p in sorted((tmp_path / "janes").iterdir())]
    for ds in copies:
        ds.PatientName, ds.StudyDescription = MALLORY.name, "MALLORYS UPLOAD"

    assert "3 stored" in upload(mallory, write_study(copies, tmp_path / "up"))

    assert not InstanceConflict.objects.exists()
    janeview = seen_by(jane, janes_ct)
    assert "ROE^MALLORY" not in janeview
    assert janeview.count('"00080018"') == 3
    assert "ROE^MALLORY" not in seen_by(mallory, janes_ct)


# --- The hospital's instances (STOW-RS and C-STORE) ------------------------------------------------


NO_ISSUER_JANE = SyntheticPatient(patient_id="MRN-3003", name="DOE^JANE", birth_date="19800101")
RICHARD = SyntheticPatient(patient_id="MRN-3003", name="ROE^RICHARD", birth_date="19551111")


def test_the_same_patient_id_without_issuer_but_another_name_waits_for_staff(tmp_path, send, staff, john):
    jane = patient_user("jane3@example.com", NO_ISSUER_JANE.patient_id, issuer="")
    janes = ct_series(NO_ISSUER_JANE, slices=2, size=32, description="JANES CHEST CT")
    ingest(write_study(janes, tmp_path / "janes"))
    richards = ct_series(RICHARD, slices=2, size=32, description="RICHARDS STUDY")

    send(write_study(richards, tmp_path / "richards"))

    for user, study in ((jane, janes), (jane, richards), (john, richards)):
        view = seen_by(user, study)
        assert "RICHARDS STUDY" not in view
        assert "ROE^RICHARD" not in view
    assert "JANES CHEST CT" in seen_by(jane, janes)
    queue = staff_queue(staff)
    assert "RICHARDS STUDY" in queue
    assert "MRN-3003 (no issuer) is linked to an account" in queue


def test_instances_whose_study_uid_is_another_patients_wait_for_staff(
    tmp_path, send, staff, jane, janes_ct, john
):
    johns = reusing_uids(janes_ct, JOHN, "JOHNS IMAGES")

    send(write_study(johns, tmp_path / "johns"))

    janeview = seen_by(jane, janes_ct)
    assert "ROE^JOHN" not in janeview
    assert janeview.count('"00080018"') == 3
    johnview = seen_by(john, johns)
    assert "JOHNS IMAGES" not in johnview
    assert "DOE^JANE" not in johnview
    queue = staff_queue(staff)
    assert "JOHNS IMAGES" in queue
    assert "already that of another patient&#x27;s study" in queue


def test_an_instance_without_patient_id_is_stored_and_waits_for_staff(
    tmp_path, send, staff, jane, janes_ct, john
):
    datasets = ct_series(JANE, slices=2, size=32, description="NO PATIENT ID")
    for ds in datasets:
        ds.PatientID = ""

    send(write_study(datasets, tmp_path / "noid"))

    assert Study.objects.get(description="NO PATIENT ID").number_of_instances == 2
    for user in (jane, john):
        assert "NO PATIENT ID" not in seen_by(user, datasets)
    queue = staff_queue(staff)
    assert "NO PATIENT ID" in queue
    assert "The images carry no Patient ID" in queue


# --- The same instance by two routes -----------------------------------------------------------------


@pytest.mark.integration
def test_an_instance_received_by_c_store_and_then_uploaded_is_already_stored(scp, dcmtk_env, tmp_path, staff):
    files = write_study(ct_series(JANE, slices=2, size=32), tmp_path / "ct")
    assert storescu(scp, dcmtk_env, *files).returncode == 0

    html = upload(staff, files)

    assert "0 stored, 2 already stored" in html
    assert not InstanceConflict.objects.exists()


def test_a_patients_access_history_shows_nothing_of_an_upload_that_reused_their_study_uid(
    tmp_path, jane, janes_ct, mallory
):
    upload(mallory, write_study(reusing_uids(janes_ct, MALLORY, "MALLORYS UPLOAD"), tmp_path / "up"))
    client = client_for(jane)
    assert client.get(reverse("study", args=[str(janes_ct[0].StudyInstanceUID)])).status_code == HTTPStatus.OK

    history = client.get(reverse("access-history")).content.decode()

    assert "JANES CHEST CT" in history  # her own view of her study is there, under its name
    assert "mallory@example.com" not in history
    assert "MALLORYS UPLOAD" not in history


def test_staff_are_told_when_the_patient_already_has_the_study_a_copy_reuses(
    tmp_path, jane, janes_ct, mallory, staff
):
    upload(mallory, write_study(reusing_uids(janes_ct, MALLORY, "MALLORYS UPLOAD"), tmp_path / "up"))
    copy = Study.objects.get(description="MALLORYS UPLOAD")
    janes_record = Study.objects.get(description="JANES CHEST CT").patient

    response = client_for(staff).post(
        reverse("reconcile-assign", args=[copy.pk]), {"patient": janes_record.pk}
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "already has a study with this Study Instance UID" in response.content.decode()
    assert "MALLORYS UPLOAD" not in seen_by(jane, janes_ct)
