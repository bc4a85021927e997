"""Every 404 and 410 under /s/ carries the share pages' headers: a recipient who mistypes a link,
or follows one that ended, leaks no referrer, keeps nothing cached and is not indexed."""

from __future__ import annotations

import datetime
from http import HTTPStatus

import pytest
import time_machine
from django.utils import timezone

from sharing.models import Share, Study
from sharing.services.shares import share_create
from tests.support.clients import Client
from tests.support.factories import make_study

pytestmark = pytest.mark.django_db(transaction=True)

SHARE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
UNKNOWN_UID = "1.2.826.0.1.3680043.8.498.99999"


@pytest.fixture
def study(tmp_path, patient, jane) -> Study:
    return make_study(tmp_path, patient, "x", pdf=False)


@pytest.fixture
def created(jane, study):
    return share_create(
        owner=jane,
        studies=[study],
        expires_at=timezone.now() + datetime.timedelta(hours=1),
        protection=Share.Protection.CODE,
        allow_download=True,
    )


@pytest.fixture
def recipient(created) -> Client:
    client = Client()
    assert client.post(f"/s/{created.token}", {"answer": created.code}).status_code == HTTPStatus.FOUND
    return client


def share_headers_of(response) -> dict[str, str | None]:
    return {header: response.get(header) for header in SHARE_HEADERS}


NOT_FOUND_WITHOUT_A_SESSION = [
    "/s/" + "A" * 32,  # a token of the right shape that nobody was given
    "/s/abc",  # too short to be a token
    "/s/" + "A" * 33,  # too long
    "/s/" + "A" * 31 + "!",  # a character no token has
    "/s/nothing/here",
]

NOT_FOUND_WITH_A_SESSION = [
    f"/s/studies/{UNKNOWN_UID}/",
    f"/s/studies/{UNKNOWN_UID}/view",
    f"/s/studies/{UNKNOWN_UID}/thumbnail",
    f"/s/studies/{UNKNOWN_UID}/download",
    f"/s/dicomweb/studies/{UNKNOWN_UID}/series",
    f"/s/dicomweb/studies/{UNKNOWN_UID}/metadata",
    "/s/studies/not-a-uid/",
    "/s/dicomweb/nothing",
]


@pytest.mark.parametrize("url", NOT_FOUND_WITHOUT_A_SESSION)
def test_a_link_that_opens_nothing_answers_404_with_the_share_headers(client, url):
    response = client.get(url)

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert share_headers_of(response) == SHARE_HEADERS


@pytest.mark.parametrize("url", NOT_FOUND_WITH_A_SESSION)
def test_an_unknown_sub_resource_of_an_opened_share_answers_404_with_the_share_headers(recipient, url):
    response = recipient.get(url)

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert share_headers_of(response) == SHARE_HEADERS


def test_an_ended_share_answers_410_with_the_share_headers_wherever_it_is_asked(created, recipient, study):
    uid = study.study_instance_uid
    urls = ["/s/", f"/s/studies/{uid}/", f"/s/studies/{uid}/view", f"/s/dicomweb/studies/{uid}/series"]

    with time_machine.travel(timezone.now() + datetime.timedelta(hours=2)):
        opened = [recipient.get(url) for url in urls]
        reopened = Client().get(f"/s/{created.token}")

    for response in [*opened, reopened]:
        assert response.status_code == HTTPStatus.GONE, response.request["PATH_INFO"]
        assert share_headers_of(response) == SHARE_HEADERS, response.request["PATH_INFO"]
