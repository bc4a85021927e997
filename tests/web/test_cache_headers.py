"""What a browser may keep: pages about a patient nothing; images and metadata only privately,
asked for again each time and answered 304 while their ETag still matches."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from sharing.models import Study
from tests.support.clients import Client
from tests.support.factories import make_study

pytestmark = pytest.mark.django_db(transaction=True)

REVALIDATE = "private, no-cache"


def not_stored(response) -> bool:
    directives = {d.strip() for d in response.get("Cache-Control", "").split(",")}
    return "no-store" in directives


@pytest.fixture
def study(tmp_path, patient, jane) -> Study:
    return make_study(tmp_path, patient, "x", pdf=False)


@pytest.fixture
def janes_browser(jane) -> Client:
    client = Client()
    client.force_login(jane)
    return client


@pytest.fixture
def staff_browser(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def patient_pages(study: Study) -> list[str]:
    uid = study.study_instance_uid
    return [
        "/",
        f"/studies/{uid}/",
        f"/studies/{uid}/view",
        "/shares/",
        "/shares/new",
        "/access/",
        "/requests/",
    ]


STAFF_PAGES = ["/staff/requests/", "/staff/unmatched/", "/staff/audit/", "/staff/pacs/retrievals/"]


def test_every_page_a_patient_sees_is_not_stored(janes_browser, study):
    answers = {url: janes_browser.get(url) for url in patient_pages(study)}

    assert {url: r.status_code for url, r in answers.items()} == dict.fromkeys(answers, HTTPStatus.OK)
    assert [url for url, response in answers.items() if not not_stored(response)] == []


def test_every_staff_page_is_not_stored(staff_browser, study):
    answers = {url: staff_browser.get(url) for url in STAFF_PAGES}

    assert {url: r.status_code for url, r in answers.items()} == dict.fromkeys(answers, HTTPStatus.OK)
    assert [url for url, response in answers.items() if not not_stored(response)] == []


def image_urls(study: Study) -> dict[str, str]:
    series = study.series.get(modality="CT")
    instance = series.instances.order_by("instance_number")[0]
    uid, se, sop = study.study_instance_uid, series.series_instance_uid, instance.sop_instance_uid
    return {
        "thumbnail": f"/studies/{uid}/series/{se}/thumbnail",
        "study thumbnail": f"/studies/{uid}/thumbnail",
        "series metadata": f"/dicomweb/studies/{uid}/series/{se}/metadata",
        "instance": f"/dicomweb/studies/{uid}/series/{se}/instances/{sop}",
        "frames": f"/dicomweb/studies/{uid}/series/{se}/instances/{sop}/frames/1",
        "rendered": f"/dicomweb/studies/{uid}/series/{se}/instances/{sop}/rendered",
    }


ACCEPT = {
    "instance": 'multipart/related; type="application/dicom"',
    "frames": 'multipart/related; type="application/octet-stream"',
    "rendered": "image/jpeg",
}


@pytest.mark.parametrize(
    "name", ["thumbnail", "study thumbnail", "series metadata", "instance", "frames", "rendered"]
)
def test_images_and_metadata_are_revalidated_by_their_etag(janes_browser, study, name):
    url = image_urls(study)[name]
    accept = ACCEPT.get(name, "application/dicom+json, */*")

    first = janes_browser.get(url, HTTP_ACCEPT=accept)
    again = janes_browser.get(url, HTTP_ACCEPT=accept, HTTP_IF_NONE_MATCH=first["ETag"])

    assert first.status_code == HTTPStatus.OK
    assert first["Cache-Control"] == REVALIDATE
    assert again.status_code == HTTPStatus.NOT_MODIFIED
    assert again["Cache-Control"] == REVALIDATE
    assert again["ETag"] == first["ETag"]
