"""A specialist who opens a share sees whose images these are, and who shared them until when:
on the shared study list, the study page and the viewer's overlay."""

from __future__ import annotations

import datetime
import re
from http import HTTPStatus

import pytest
from django.utils import timezone

from sharing.dicom.synthetic import SyntheticPatient
from sharing.models import ReleaseAuthorization, Share, Study, User
from sharing.services.shares import share_create
from tests.support.clients import Client
from tests.support.factories import make_study
from tests.support.releases import make_facility, sign

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def patient() -> SyntheticPatient:
    return SyntheticPatient(
        patient_id="MRN-1001", issuer="GENERAL", name="DOE^JANE^ANN", birth_date="19800102", sex="F"
    )


@pytest.fixture
def study(tmp_path, patient, jane) -> Study:
    return make_study(tmp_path, patient, "x", description="CT CHEST X")


def expiry() -> datetime.datetime:
    return timezone.now().replace(second=0, microsecond=0) + datetime.timedelta(days=30)


def until(expires_at: datetime.datetime) -> str:
    """How a page writes the expiry (the test settings' time zone is UTC)."""
    return f"until {expires_at.astimezone(datetime.UTC):%-d %B %Y, %H:%M}."


def opened_share(
    owner: User,
    study: Study,
    expires_at: datetime.datetime,
    *,
    authorization: ReleaseAuthorization | None = None,
) -> Client:
    created = share_create(
        owner=owner,
        studies=[study],
        expires_at=expires_at,
        protection=Share.Protection.CODE,
        allow_download=True,
        authorization=authorization,
    )
    client = Client()
    response = client.post(f"/s/{created.token}", {"answer": created.code})
    assert response.status_code == HTTPStatus.FOUND
    return client


def text(response) -> str:
    """The page's words, without markup or repeated whitespace."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def assert_names_the_patient(words: str) -> None:
    assert "DOE, Jane Ann" in words
    assert "2 Jan 1980" in words
    assert "Female" in words
    assert "MRN-1001" in words


@pytest.fixture
def expires_at() -> datetime.datetime:
    return expiry()


@pytest.fixture
def recipient(jane, study, expires_at) -> Client:
    return opened_share(jane, study, expires_at)


def test_the_shared_study_list_names_the_patient_and_who_shared_until_when(recipient, expires_at):
    words = text(recipient.get("/s/"))

    assert_names_the_patient(words)
    assert f"Shared by jane@example.com {until(expires_at)}" in words


def test_the_shared_study_page_names_the_patient_and_who_shared_until_when(recipient, study, expires_at):
    words = text(recipient.get(f"/s/studies/{study.study_instance_uid}/"))

    assert_names_the_patient(words)
    assert f"Shared by jane@example.com {until(expires_at)}" in words


def test_the_viewers_overlay_names_the_patient(recipient, study, expires_at):
    response = recipient.get(f"/s/studies/{study.study_instance_uid}/view")
    overlay = re.search(
        r'<div class="viewer-overlay".*?data-overlay-patient>(.*?)</span>\s*</span>',
        response.content.decode(),
        re.S,
    )

    assert overlay is not None
    assert_names_the_patient(" ".join(re.sub(r"<[^>]+>", " ", overlay.group(1)).split()))
    assert f"Shared by jane@example.com {until(expires_at)}" in text(response)


def test_the_owner_is_named_by_their_account_name_when_it_has_one(jane, study):
    jane.first_name, jane.last_name = "Jane", "Doe"
    jane.save()
    recipient = opened_share(jane, study, expiry())

    words = text(recipient.get("/s/"))

    assert "Shared by Jane Doe until" in words
    assert "jane@example.com" not in words


def test_the_patients_own_study_page_has_no_shared_by_line(client, jane, study):
    client.force_login(jane)

    words = text(client.get(f"/studies/{study.study_instance_uid}/"))

    assert "Shared by" not in words


def test_a_study_without_a_recorded_name_says_so(recipient, study):
    study.patient.name = ""
    study.patient.save()

    assert "Name not recorded" in text(recipient.get("/s/"))


def test_a_release_to_a_provider_names_the_facility_not_the_patients_account(jane, study, expires_at):
    authorization = sign(
        jane,
        make_facility(name="General Hospital"),
        recipient_kind=ReleaseAuthorization.Recipient.PROVIDER,
        provider_name="Dr Who",
        provider_email="dr@clinic.example",
    )
    recipient = opened_share(jane, study, expires_at, authorization=authorization)

    for url in ("/s/", f"/s/studies/{study.study_instance_uid}/"):
        words = text(recipient.get(url))
        assert f"Released by General Hospital at the patient's request, {until(expires_at)}" in words
        assert "jane@example.com" not in words
