from __future__ import annotations

import base64
import datetime
import io
import json
from http import HTTPStatus

import pydicom
import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.core.cache import cache
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import timezone

from sharing.auth.tokens import FAILURE_LIMIT, ApiTokenMiddleware
from sharing.dicom.synthetic import SyntheticPatient, ct_series, write_study
from sharing.models import ApiToken, AuditEvent, Instance, Study, User
from sharing.services.tokens import api_token_create
from sharing.views.stow import store_instances
from tests.support.clients import Client
from tests.support.storage import stored_keys

BOUNDARY = "lightbox-stow-test"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
PASSWORD = "a long staff password 7"

SOP_CLASS = "00081150"
SOP_INSTANCE = "00081155"
FAILURE_REASON = "00081197"
RETRIEVE_URL = "00081190"
FAILED = "00081198"
REFERENCED = "00081199"


def multipart(*parts: bytes, part_type: str = "application/dicom") -> bytes:
    chunks = []
    for part in parts:
        chunks += [
            b"--",
            BOUNDARY.encode(),
            b"\r\nContent-Type: ",
            part_type.encode(),
            b"\r\n\r\n",
            part,
            b"\r\n",
        ]
    chunks += [b"--", BOUNDARY.encode(), b"--\r\n"]
    return b"".join(chunks)


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # the failed-token counters live there
    yield
    cache.clear()


@pytest.fixture
def staff(db) -> User:
    user = User.objects.create_user("records@hospital.test", PASSWORD, role=User.Role.RECORDS)
    TOTP.activate(user, generate_totp_secret())  # staff pages need two-factor (sharing.middleware)
    return user


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def store_token(staff) -> str:
    """The secret of a store-scoped API token of the staff member."""
    return api_token_create(
        owner=staff,
        name="PACS gateway",
        scopes=[ApiToken.Scope.STORE],
        expires_at=timezone.now() + datetime.timedelta(days=90),
    ).secret


@pytest.fixture
def study_files(tmp_path, patient: SyntheticPatient):
    return write_study(ct_series(patient, slices=3, size=32), tmp_path / "study")


def post(client: Client, body: bytes, url: str = "/dicomweb/studies", **extra):
    return client.post(url, data=body, content_type=extra.pop("content_type", CONTENT_TYPE), **extra)


def bearer(secret: str) -> str:
    return f"Bearer {secret}"


def uids(response, sequence: str) -> list[str]:
    return [item[SOP_INSTANCE].get("Value", [""])[0] for item in response.json()[sequence]["Value"]]


@pytest.mark.django_db(transaction=True)
def test_staff_store_a_study_and_its_instances_are_indexed(staff_client, study_files, patient):
    response = post(staff_client, multipart(*(p.read_bytes() for p in study_files)))

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "application/dicom+json"
    study_uid = pydicom.dcmread(study_files[0]).StudyInstanceUID
    dataset = response.json()
    assert dataset[RETRIEVE_URL]["Value"] == [f"http://testserver/dicomweb/studies/{study_uid}"]
    referenced = dataset[REFERENCED]["Value"]
    assert len(referenced) == 3
    assert {item[SOP_CLASS]["Value"][0] for item in referenced} == {"1.2.840.10008.5.1.4.1.1.2"}
    assert all(
        item[RETRIEVE_URL]["Value"][0].startswith(dataset[RETRIEVE_URL]["Value"][0] + "/series/")
        for item in referenced
    )
    assert FAILED not in dataset
    assert set(Instance.objects.values_list("state", "source")) == {(Instance.State.INDEXED, "stow")}
    study = Study.objects.get(study_instance_uid=study_uid)
    assert study.number_of_instances == 3
    assert study.patient.patient_id == patient.patient_id
    assert not study.is_outside


@pytest.mark.django_db(transaction=True)
def test_storing_the_same_instances_again_succeeds_and_stores_them_once(
    staff_client, study_files, object_store
):
    body = multipart(*(p.read_bytes() for p in study_files))
    post(staff_client, body)

    again = post(staff_client, body)

    assert again.status_code == HTTPStatus.OK
    assert len(again.json()[REFERENCED]["Value"]) == 3
    assert Instance.objects.count() == 3
    assert len([k for k in stored_keys(object_store) if k.startswith("instances/")]) == 3


@pytest.mark.django_db(transaction=True)
def test_a_bad_instance_among_good_ones_fails_alone_with_0xA900(staff_client, study_files, tmp_path):
    ds = pydicom.dcmread(study_files[0])
    del ds.SeriesInstanceUID
    [bad] = write_study([ds], tmp_path / "bad")

    response = post(staff_client, multipart(*(p.read_bytes() for p in [bad, *study_files[1:]])))

    assert response.status_code == HTTPStatus.ACCEPTED
    [failure] = response.json()[FAILED]["Value"]
    assert failure[SOP_INSTANCE]["Value"] == [ds.SOPInstanceUID]
    assert failure[FAILURE_REASON] == {"vr": "US", "Value": [0xA900]}
    assert len(response.json()[REFERENCED]["Value"]) == 2
    assert Instance.objects.count() == 2
    assert not Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()


def test_instances_of_another_study_than_the_url_names_fail(staff_client, study_files):
    other_study = "1.2.826.0.1.3680043.8.498.1"

    response = post(
        staff_client, multipart(study_files[0].read_bytes()), url=f"/dicomweb/studies/{other_study}"
    )

    assert response.status_code == HTTPStatus.CONFLICT
    [failure] = response.json()[FAILED]["Value"]
    assert failure[FAILURE_REASON]["Value"] == [0xA900]
    assert REFERENCED not in response.json()
    assert not Instance.objects.exists()


def test_instances_of_the_study_the_url_names_are_stored(staff_client, study_files):
    study_uid = pydicom.dcmread(study_files[0]).StudyInstanceUID

    response = post(
        staff_client, multipart(study_files[0].read_bytes()), url=f"/dicomweb/studies/{study_uid}"
    )

    assert response.status_code == HTTPStatus.OK
    assert Instance.objects.count() == 1


def test_a_part_that_is_not_dicom_fails_with_0xC000(staff_client, study_files):
    response = post(staff_client, multipart(study_files[0].read_bytes(), b"%PDF-1.4 not dicom at all"))

    assert response.status_code == HTTPStatus.ACCEPTED
    [failure] = response.json()[FAILED]["Value"]
    assert failure[FAILURE_REASON]["Value"] == [0xC000]
    assert uids(response, FAILED) == [""]
    assert Instance.objects.count() == 1


def test_a_part_of_another_media_type_fails(staff_client, study_files):
    response = post(
        staff_client, multipart(study_files[0].read_bytes(), part_type="application/octet-stream")
    )

    assert response.status_code == HTTPStatus.CONFLICT
    assert not Instance.objects.exists()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/dicom",
        f"multipart/form-data; boundary={BOUNDARY}",
        f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}',
    ],
)
def test_other_content_types_are_refused_with_415(staff_client, study_files, content_type):
    response = post(staff_client, multipart(study_files[0].read_bytes()), content_type=content_type)

    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert "error" in response.json()
    assert not Instance.objects.exists()


def test_an_unparseable_body_is_refused_with_400(staff_client):
    response = post(staff_client, b"this is not multipart at all")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"] == "malformed multipart body"


def test_a_body_cut_short_after_good_parts_keeps_them_and_reports_the_rest(staff_client, study_files):
    body = multipart(*(p.read_bytes() for p in study_files))
    cut = body[: body.rfind(BOUNDARY.encode()) - 100]

    response = post(staff_client, cut)

    assert response.status_code == HTTPStatus.ACCEPTED
    assert len(response.json()[REFERENCED]["Value"]) == 2
    assert response.json()[FAILED]["Value"][0][FAILURE_REASON]["Value"] == [0xC000]


def test_a_patient_is_refused_with_403(db, study_files):
    patient_user = User.objects.create_user("jane@example.test", PASSWORD)
    client = Client()
    client.force_login(patient_user)

    response = post(client, multipart(study_files[0].read_bytes()))

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert "records staff" in response.json()["detail"]
    assert not Instance.objects.exists()


def test_an_anonymous_client_is_asked_to_authenticate_and_learns_nothing(db, study_files, patient):
    response = post(Client(), multipart(study_files[0].read_bytes()))

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["WWW-Authenticate"].startswith("Bearer ")
    assert response.json()["error"] == "authentication required"
    assert "API token" in response.json()["detail"]
    assert patient.patient_id.encode() not in response.content
    assert b"DOE" not in response.content
    assert not Instance.objects.exists()


@pytest.mark.parametrize("role", [User.Role.RECORDS, User.Role.PATIENT])
def test_basic_credentials_are_refused_even_with_the_right_password(db, study_files, role):
    user = User.objects.create_user(f"{role}@hospital.test", PASSWORD, role=role)
    TOTP.activate(user, generate_totp_secret())
    credentials = base64.b64encode(f"{user.email}:{PASSWORD}".encode()).decode()

    response = post(
        Client(), multipart(study_files[0].read_bytes()), HTTP_AUTHORIZATION=f"Basic {credentials}"
    )

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["WWW-Authenticate"].startswith("Bearer ")
    assert "API token" in response.json()["detail"]
    assert not Instance.objects.exists()


def test_staff_with_a_store_token_need_no_csrf_token(staff, store_token, study_files):
    client = Client(enforce_csrf_checks=True)

    response = post(client, multipart(study_files[0].read_bytes()), HTTP_AUTHORIZATION=bearer(store_token))

    assert response.status_code == HTTPStatus.OK
    assert Instance.objects.get().uploaded_by == staff


def test_an_unknown_token_is_refused_with_401(staff, store_token, study_files):
    wrong = store_token[:-4] + ("AAAA" if not store_token.endswith("AAAA") else "BBBB")

    response = post(Client(), multipart(study_files[0].read_bytes()), HTTP_AUTHORIZATION=bearer(wrong))

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["WWW-Authenticate"].startswith('Bearer realm="Lightbox DICOMweb", error="invalid_token"')
    assert response.json()["error"] == "invalid_token"
    assert not Instance.objects.exists()


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer not-a-token", "Bearer lbx_short", "Token x"])
def test_malformed_credentials_are_refused_with_401(staff, study_files, authorization):
    response = post(Client(), multipart(study_files[0].read_bytes()), HTTP_AUTHORIZATION=authorization)

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert not Instance.objects.exists()


def test_repeated_unknown_tokens_from_one_address_are_throttled(staff, store_token, study_files):
    body = multipart(study_files[0].read_bytes())
    unknown = bearer("lbx_" + "A" * 43)
    for _ in range(FAILURE_LIMIT):
        assert post(Client(), body, HTTP_AUTHORIZATION=unknown).status_code == HTTPStatus.UNAUTHORIZED

    response = post(Client(), body, HTTP_AUTHORIZATION=bearer(store_token))
    elsewhere = post(Client(), body, HTTP_AUTHORIZATION=bearer(store_token), REMOTE_ADDR="10.9.8.7")

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response["Retry-After"].isdigit()
    assert elsewhere.status_code == HTTPStatus.OK
    assert Instance.objects.count() == 1


def test_a_signed_in_session_still_needs_its_csrf_token(staff, study_files):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    body = multipart(study_files[0].read_bytes())

    refused = post(client, body)
    client.get("/upload/")  # sets the CSRF cookie, as any page would
    accepted = post(client, body, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)

    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert refused.json()["error"] == "CSRF check failed"
    assert accepted.status_code == HTTPStatus.OK


def test_a_body_larger_than_djangos_memory_limit_is_streamed(staff_client, tmp_path, patient, settings):
    [big] = write_study(ct_series(patient, slices=1, size=1280), tmp_path / "big")
    body = multipart(big.read_bytes())
    assert len(body) > 3 * 1024 * 1024 > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = post(staff_client, body)

    assert response.status_code == HTTPStatus.OK
    assert Instance.objects.get().size_bytes == big.stat().st_size


def test_a_body_over_the_upload_limit_is_refused_before_reading(staff_client, study_files, settings):
    settings.LIGHTBOX_UPLOAD_MAX_BYTES = 1000

    response = post(staff_client, multipart(study_files[0].read_bytes()))

    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert not Instance.objects.exists()


def test_methods_other_than_get_and_post_are_not_allowed(staff_client):
    response = staff_client.put("/dicomweb/studies")

    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert "POST" in response["Allow"]


def test_each_request_writes_one_audit_event_per_study(staff_client, staff, tmp_path, patient):
    first = write_study(ct_series(patient, slices=2, size=32), tmp_path / "one")
    second = write_study(ct_series(patient, slices=1, size=32), tmp_path / "two")

    post(staff_client, multipart(*(p.read_bytes() for p in first + second), b"junk"))

    events = AuditEvent.objects.filter(action=AuditEvent.Action.INGEST)
    by_study = {e.study_instance_uid: e for e in events}
    assert set(by_study) == {
        pydicom.dcmread(first[0]).StudyInstanceUID,
        pydicom.dcmread(second[0]).StudyInstanceUID,
        "",  # the part that was not DICOM
    }
    assert {(e.actor_kind, e.actor_user_id) for e in events} == {("user", staff.pk)}
    assert by_study[pydicom.dcmread(first[0]).StudyInstanceUID].detail == {
        "source": "stow",
        "instances": 2,
        "stored": 2,
    }
    assert by_study[""].outcome == AuditEvent.Outcome.MINOR_FAILURE


def chunked_request(body: bytes, *, terminated: bool, authorization: str):
    """A request as a WSGI server hands over a chunked body: no Content-Length. It goes through
    the token middleware on its way to the view, as it would in the server."""
    request = RequestFactory().post("/dicomweb/studies", HTTP_AUTHORIZATION=authorization)
    request.META.pop("CONTENT_LENGTH", None)
    request.META.update(CONTENT_TYPE=CONTENT_TYPE, **{"wsgi.input": io.BytesIO(body)})
    if terminated:
        request.META["wsgi.input_terminated"] = True
    return request


def test_a_chunked_body_is_read_when_the_server_ends_it(store_token, study_files):
    request = chunked_request(
        multipart(study_files[0].read_bytes()), terminated=True, authorization=bearer(store_token)
    )

    response = ApiTokenMiddleware(store_instances)(request)

    assert response.status_code == HTTPStatus.OK
    assert Instance.objects.count() == 1


def test_a_body_without_a_length_is_refused_when_the_server_cannot_end_it(store_token, study_files):
    request = chunked_request(
        multipart(study_files[0].read_bytes()), terminated=False, authorization=bearer(store_token)
    )

    response = ApiTokenMiddleware(store_instances)(request)

    assert response.status_code == HTTPStatus.LENGTH_REQUIRED
    assert not Instance.objects.exists()


def test_a_chunked_body_over_the_upload_limit_is_cut_off(store_token, study_files, settings):
    settings.LIGHTBOX_UPLOAD_MAX_BYTES = 1000
    request = chunked_request(
        multipart(study_files[0].read_bytes()), terminated=True, authorization=bearer(store_token)
    )

    response = ApiTokenMiddleware(store_instances)(request)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert isinstance(response, HttpResponse)
    assert "upload limit" in json.loads(response.content)["detail"]
    assert not Instance.objects.exists()
