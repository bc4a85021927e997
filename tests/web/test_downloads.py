from __future__ import annotations

import io
import zipfile
from http import HTTPStatus

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from sharing.dicom.synthetic import SyntheticPatient
from sharing.models import AuditEvent, Study
from tests.support.factories import make_study

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def janes_study(tmp_path, patient, jane) -> Study:
    return make_study(tmp_path, patient, "jane", pdf=False)


@pytest.fixture
def johns_study(tmp_path, john) -> Study:
    other = SyntheticPatient(patient_id="MRN-2002", issuer="GENERAL", name="ROE^JOHN")
    return make_study(tmp_path, other, "john", pdf=False)


def body(response: StreamingHttpResponse) -> bytes:
    return b"".join(response)  # what the server sends, chunk by chunk


def download(client, url: str) -> zipfile.ZipFile:
    response = client.get(url)
    assert response.status_code == HTTPStatus.OK
    return zipfile.ZipFile(io.BytesIO(body(response)))


def test_the_owner_downloads_their_study_as_a_streamed_zip(client, jane, janes_study):
    client.force_login(jane)

    response = client.get(reverse("study-download", args=[janes_study.study_instance_uid]))

    assert response.status_code == HTTPStatus.OK
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="lightbox-study-20260115.zip"'
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    names = zipfile.ZipFile(io.BytesIO(body(response))).namelist()
    assert "DICOMDIR" in names
    assert len([n for n in names if n.startswith("DICOM/")]) == 4


def test_the_pictures_only_download_has_no_dicom(client, jane, janes_study):
    client.force_login(jane)

    zf = download(client, reverse("study-download-jpeg", args=[janes_study.study_instance_uid]))

    names = zf.namelist()
    assert not any(n.startswith("DICOM") for n in names)
    assert len([n for n in names if n.endswith(".JPG")]) == 3
    assert "REPORT/REPORT01.TXT" in names


def test_another_patients_study_is_not_found(client, jane, johns_study):
    client.force_login(jane)

    for name in ("study-download", "study-download-jpeg"):
        response = client.get(reverse(name, args=[johns_study.study_instance_uid]))
        assert response.status_code == HTTPStatus.NOT_FOUND
        assert b"ROE" not in response.content
        assert b"MRN-2002" not in response.content
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD).exists()


def test_an_unknown_study_is_not_found(client, jane):
    client.force_login(jane)

    response = client.get(reverse("study-download", args=["1.2.3.4"]))

    assert response.status_code == HTTPStatus.NOT_FOUND


def test_anonymous_visitors_are_sent_to_sign_in(client, janes_study):
    url = reverse("study-download", args=[janes_study.study_instance_uid])

    response = client.get(url)

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD).exists()


def test_records_staff_may_download_any_study(client, staff, johns_study):
    client.force_login(staff)

    zf = download(client, reverse("study-download", args=[johns_study.study_instance_uid]))

    assert "DICOMDIR" in zf.namelist()
    event = AuditEvent.objects.get(action=AuditEvent.Action.DOWNLOAD)
    assert event.actor_user == staff


def test_each_study_downloaded_is_audited(client, jane, janes_study):
    client.force_login(jane)

    download(client, reverse("study-download-jpeg", args=[janes_study.study_instance_uid]))

    event = AuditEvent.objects.get(action=AuditEvent.Action.DOWNLOAD)
    assert event.actor_user == jane
    assert event.study_instance_uid == janes_study.study_instance_uid
    assert event.detail == {"kind": "jpeg", "instances": 4}


def test_several_studies_download_in_one_zip(client, tmp_path, patient, jane, janes_study):
    second = make_study(tmp_path, patient, "second", study_date="20260301", pdf=False)
    client.force_login(jane)
    query = f"?study={janes_study.study_instance_uid}&study={second.study_instance_uid}"

    zf = download(client, reverse("studies-download") + query)
    light = download(client, reverse("studies-download") + query + "&kind=jpeg")

    studies = {n.split("/")[2] for n in zf.namelist() if n.startswith("DICOM/")}
    assert studies == {"S0000001", "S0000002"}
    assert not any(n.startswith("DICOM") for n in light.namelist())
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD).count() == 4


def test_one_study_that_is_not_yours_spoils_the_whole_selection(client, jane, janes_study, johns_study):
    client.force_login(jane)
    query = f"?study={janes_study.study_instance_uid}&study={johns_study.study_instance_uid}"

    response = client.get(reverse("studies-download") + query)

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD).exists()


@pytest.mark.parametrize("query", ["", "?study=abc", "?study=1.2&kind=dicomdir", "?study=1.2.&kind=jpeg"])
def test_a_malformed_selection_is_refused(client, jane, query):
    client.force_login(jane)

    response = client.get(reverse("studies-download") + query)

    assert response.status_code == HTTPStatus.BAD_REQUEST


def test_the_home_page_offers_both_downloads(client, jane, janes_study):
    client.force_login(jane)

    response = client.get(reverse("home"))

    uid = janes_study.study_instance_uid
    assert reverse("study-download", args=[uid]).encode() in response.content
    assert reverse("study-download-jpeg", args=[uid]).encode() in response.content
    assert b"Download pictures only (JPEG)" in response.content
