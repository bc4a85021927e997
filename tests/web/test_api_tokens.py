"""Personal API tokens: the staff pages, and what a token may do on DICOMweb.

The last tests run a real gunicorn with several workers against PostgreSQL, as deployed, and use
`dicomweb-client` over HTTP.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path

import pydicom
import pytest
import redis
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from dicomweb_client.api import DICOMwebClient
from django.apps import apps
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from requests import HTTPError
from requests import Session as HttpSession

from sharing.auth.tokens import FAILURE_LIMIT
from sharing.dicom.synthetic import ct_series, write_study
from sharing.models import ApiToken, AuditEvent, Instance, Study, User
from sharing.services.tokens import api_token_create, api_token_revoke
from tests.support.clients import Client
from tests.support.factories import PASSWORD, make_study, records_staff
from tests.support.live import LiveWeb, live_web, require_postgres_and_redis

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
SECRET = re.compile(r"lbx_[A-Za-z0-9_-]{43}")
DICOM_JSON = "application/dicom+json"


def make_token(owner: User, *scopes: ApiToken.Scope, days: int = 90) -> str:
    return api_token_create(
        owner=owner,
        name="nightly import",
        scopes=list(scopes),
        expires_at=timezone.now() + datetime.timedelta(days=days),
    ).secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def stow_body(paths: list[Path]) -> tuple[bytes, str]:
    boundary = "api-token-test"
    chunks = [
        b"--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n" % (boundary.encode(), p.read_bytes())
        for p in paths
    ]
    body = b"".join(chunks) + b"--%s--\r\n" % boundary.encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def stow(client: Client, paths: list[Path], secret: str):
    body, content_type = stow_body(paths)
    return client.post("/dicomweb/studies", data=body, content_type=content_type, headers=bearer(secret))


@pytest.fixture
def other_staff() -> User:
    return records_staff("other-records@example.com")


@pytest.fixture
def study(tmp_path, patient, jane) -> Study:
    return make_study(tmp_path, patient, "x", pdf=False)


@pytest.fixture
def new_files(tmp_path, patient) -> list[Path]:
    return write_study(ct_series(patient, slices=2, size=32, study_date="20260301"), tmp_path / "new")


# --- The pages -----------------------------------------------------------------------------------


def test_a_staff_member_creates_a_token_and_sees_its_secret_once(staff):
    client = signed_in(staff)

    created = client.post(
        "/staff/api-tokens/new", {"name": "PACS gateway", "scopes": ["store"], "expiry": "90d"}
    )
    listed = client.get("/staff/api-tokens/")

    assert created.status_code == HTTPStatus.OK
    assert created["Cache-Control"] == "private, no-store"
    [secret] = set(SECRET.findall(created.content.decode()))
    token = ApiToken.objects.get()
    assert token.owner == staff
    assert token.name == "PACS gateway"
    assert token.scopes == ["store"]
    assert secret.startswith(token.prefix)
    assert "PACS gateway" in listed.content.decode()
    assert token.prefix in listed.content.decode()
    assert secret not in listed.content.decode()
    assert not SECRET.search(listed.content.decode())


def test_the_secret_is_nowhere_in_the_database_only_its_sha256(staff):
    secret = make_token(staff, ApiToken.Scope.STORE, ApiToken.Scope.READ)

    token = ApiToken.objects.get()
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    for model in apps.get_models():
        for row in model._default_manager.values_list():
            assert not any(secret[len(token.prefix) :] in str(value) for value in row), model.__name__


def test_a_new_token_lasts_90_days_unless_another_expiry_is_chosen(staff):
    client = signed_in(staff)
    in_a_month = timezone.localdate() + datetime.timedelta(days=30)

    client.post("/staff/api-tokens/new", {"name": "default", "scopes": ["read"], "expiry": "90d"})
    client.post("/staff/api-tokens/new", {"name": "a year", "scopes": ["read"], "expiry": "365d"})
    client.post(
        "/staff/api-tokens/new",
        {"name": "a date", "scopes": ["read"], "expiry": "date", "expiry_date": in_a_month.isoformat()},
    )

    lifetimes = {
        t.name: round((t.expires_at - t.created_at) / datetime.timedelta(days=1))
        for t in ApiToken.objects.all()
    }
    assert lifetimes["default"] == 90
    assert lifetimes["a year"] == 365
    assert timezone.localtime(ApiToken.objects.get(name="a date").expires_at).date() == in_a_month


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"scopes": ["read"], "expiry": "90d"}, "name", "Name the token"),
        ({"name": "x", "expiry": "90d"}, "scopes", "Choose at least one scope."),
        ({"name": "x", "scopes": ["admin"], "expiry": "90d"}, "scopes", "not one of the available choices"),
        (
            {"name": "x", "scopes": ["read"], "expiry": "date", "expiry_date": "2000-01-01"},
            "expiry_date",
            "after today",
        ),
        (
            {"name": "x", "scopes": ["read"], "expiry": "date", "expiry_date": "2999-01-01"},
            "expiry_date",
            "at most a year",
        ),
        ({"name": "x", "scopes": ["read"], "expiry": "date"}, "expiry_date", "last day"),
    ],
)
def test_the_form_explains_each_mistake_and_makes_no_token(staff, data, field, message):
    response = signed_in(staff).post("/staff/api-tokens/new", data)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert message in " ".join(response.context["form"].errors[field])
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not ApiToken.objects.exists()


def test_revoking_asks_first_then_takes_effect_at_once_and_is_audited(staff, study):
    secret = make_token(staff, ApiToken.Scope.READ)
    token = ApiToken.objects.get()
    client = signed_in(staff)
    assert Client().get("/dicomweb/studies", headers=bearer(secret)).status_code == HTTPStatus.OK

    asked = client.get(f"/staff/api-tokens/{token.pk}/revoke")
    still = Client().get("/dicomweb/studies", headers=bearer(secret))
    revoked = client.post(f"/staff/api-tokens/{token.pk}/revoke")
    refused = Client().get("/dicomweb/studies", headers=bearer(secret))

    assert asked.status_code == HTTPStatus.OK
    assert b"Revoke the token" in asked.content
    assert still.status_code == HTTPStatus.OK
    assert revoked.status_code == HTTPStatus.FOUND
    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert refused.json() == {"error": "invalid_token", "detail": refused.json()["detail"]}
    assert "revoked" in refused.json()["detail"]
    assert 'error="invalid_token"' in refused["WWW-Authenticate"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.API_TOKEN_REVOKE)
    assert (event.actor_user, event.detail["api_token"]) == (staff, token.pk)
    assert "Revoked" in client.get("/staff/api-tokens/").content.decode()


def test_another_staff_member_can_neither_see_nor_revoke_a_token(staff, other_staff, study):
    secret = make_token(staff, ApiToken.Scope.READ)
    token = ApiToken.objects.get()
    other = signed_in(other_staff)

    listed = other.get("/staff/api-tokens/")
    asked = other.get(f"/staff/api-tokens/{token.pk}/revoke")
    revoked = other.post(f"/staff/api-tokens/{token.pk}/revoke")

    assert listed.status_code == HTTPStatus.OK
    assert token.prefix not in listed.content.decode()
    assert "nightly import" not in listed.content.decode()
    assert asked.status_code == revoked.status_code == HTTPStatus.NOT_FOUND
    assert ApiToken.objects.get().revoked_at is None
    assert Client().get("/dicomweb/studies", headers=bearer(secret)).status_code == HTTPStatus.OK


def test_a_patient_cannot_reach_the_token_pages_nor_hold_a_token(jane):
    client = signed_in(jane)

    pages = [client.get("/staff/api-tokens/"), client.get("/staff/api-tokens/new")]
    posted = client.post("/staff/api-tokens/new", {"name": "mine", "scopes": ["read"], "expiry": "90d"})

    assert [p.status_code for p in pages] == [HTTPStatus.FORBIDDEN, HTTPStatus.FORBIDDEN]
    assert posted.status_code == HTTPStatus.FORBIDDEN
    with pytest.raises(ValidationError):
        make_token(jane, ApiToken.Scope.READ)
    assert not ApiToken.objects.exists()


def test_an_anonymous_visitor_is_sent_to_sign_in(db):
    response = Client().get("/staff/api-tokens/")

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/accounts/login/")


def test_a_token_opens_no_page_outside_dicomweb(staff):
    secret = make_token(staff, ApiToken.Scope.READ, ApiToken.Scope.STORE)

    for url in ("/staff/api-tokens/", "/staff/requests/", "/"):
        response = Client().get(url, headers=bearer(secret))
        assert response.status_code == HTTPStatus.FOUND, url
        assert response["Location"].startswith("/accounts/login/")


def test_the_list_shows_last_use_and_its_address(staff, study):
    secret = make_token(staff, ApiToken.Scope.READ)
    client = signed_in(staff)
    assert "Never" in client.get("/staff/api-tokens/").content.decode()

    Client().get("/dicomweb/studies", REMOTE_ADDR="10.1.2.3", headers=bearer(secret))

    token = ApiToken.objects.get()
    assert token.last_used_at is not None
    assert token.last_used_from == "10.1.2.3"
    page = client.get("/staff/api-tokens/").content.decode()
    assert "from 10.1.2.3" in page
    assert timezone.localtime(token.last_used_at).strftime("%H:%M") in page


@pytest.mark.django_db  # in one transaction, so that the test client keeps the connection it counts on
def test_the_list_costs_the_same_queries_whatever_its_length(staff):
    client = signed_in(staff)
    make_token(staff, ApiToken.Scope.READ)
    client.get("/staff/api-tokens/")
    with CaptureQueriesContext(connection) as few:
        client.get("/staff/api-tokens/")
    for _ in range(5):
        make_token(staff, ApiToken.Scope.STORE)
    ApiToken.objects.filter(pk=ApiToken.objects.earliest("created_at").pk).update(revoked_at=timezone.now())
    with CaptureQueriesContext(connection) as many:
        response = client.get("/staff/api-tokens/")

    assert response.content.decode().count("nightly import") == 6
    assert len(few) > 0
    assert len(many) == len(few)


def test_last_use_is_written_at_most_once_a_minute(staff, study):
    secret = make_token(staff, ApiToken.Scope.READ)
    Client().get("/dicomweb/studies", headers=bearer(secret))
    first = ApiToken.objects.get().last_used_at
    assert first is not None

    Client().get("/dicomweb/studies", headers=bearer(secret))
    within_the_minute = ApiToken.objects.get().last_used_at
    ApiToken.objects.update(last_used_at=first - datetime.timedelta(minutes=1))
    Client().get("/dicomweb/studies", headers=bearer(secret))
    a_minute_on = ApiToken.objects.get().last_used_at

    assert within_the_minute == first
    assert a_minute_on is not None
    assert a_minute_on > first


# --- What a token may do ---------------------------------------------------------------------------


def test_a_store_token_can_store_but_not_read(staff, study, new_files):
    secret = make_token(staff, ApiToken.Scope.STORE)
    client = Client()

    stored = stow(client, new_files, secret)
    searched = client.get("/dicomweb/studies", HTTP_ACCEPT=DICOM_JSON, headers=bearer(secret))
    metadata = client.get(f"/dicomweb/studies/{study.study_instance_uid}/metadata", headers=bearer(secret))

    assert stored.status_code == HTTPStatus.OK
    assert Instance.objects.filter(uploaded_by=staff).count() == 2
    for refused in (searched, metadata):
        assert refused.status_code == HTTPStatus.FORBIDDEN
        assert refused.json()["error"] == "insufficient_scope"
        assert refused["WWW-Authenticate"].endswith('error="insufficient_scope", scope="read"')
        assert b"DOE" not in refused.content


def test_a_read_token_can_search_and_retrieve_but_not_store(staff, study, new_files):
    secret = make_token(staff, ApiToken.Scope.READ)
    client = Client()
    uid = study.study_instance_uid

    searched = client.get("/dicomweb/studies", HTTP_ACCEPT=DICOM_JSON, headers=bearer(secret))
    metadata = client.get(f"/dicomweb/studies/{uid}/metadata", headers=bearer(secret))
    stored = stow(client, new_files, secret)

    assert searched.status_code == HTTPStatus.OK
    assert [s["0020000D"]["Value"][0] for s in searched.json()] == [uid]
    assert metadata.status_code == HTTPStatus.OK
    assert len(metadata.json()) == study.number_of_instances
    assert stored.status_code == HTTPStatus.FORBIDDEN
    assert stored["WWW-Authenticate"].endswith('error="insufficient_scope", scope="store"')
    assert Instance.objects.count() == study.number_of_instances


def test_an_expired_token_is_refused_with_401(staff, study):
    secret = make_token(staff, ApiToken.Scope.READ)
    ApiToken.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))

    response = Client().get("/dicomweb/studies", headers=bearer(secret))

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["error"] == "invalid_token"
    assert "expired" in response.json()["detail"]
    assert b"DOE" not in response.content


@pytest.mark.parametrize("change", [{"is_active": False}, {"role": User.Role.PATIENT}])
def test_a_token_stops_working_when_its_owner_may_no_longer_use_it(staff, study, change):
    secret = make_token(staff, ApiToken.Scope.READ)
    User.objects.filter(pk=staff.pk).update(**change)

    response = Client().get("/dicomweb/studies", headers=bearer(secret))

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert "owner" in response.json()["detail"]


def test_basic_credentials_are_refused_on_reads_too(staff, study):
    credentials = base64.b64encode(f"{staff.email}:{PASSWORD}".encode()).decode()

    response = Client().get("/dicomweb/studies", HTTP_AUTHORIZATION=f"Basic {credentials}")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert "API token" in response.json()["detail"]
    assert response["WWW-Authenticate"] == 'Bearer realm="Lightbox DICOMweb"'


def test_every_use_is_audited_without_the_secret(staff, study, new_files):
    secret = make_token(staff, ApiToken.Scope.READ)
    token = ApiToken.objects.get()
    client = Client()
    uid = study.study_instance_uid

    client.get("/dicomweb/studies", HTTP_ACCEPT=DICOM_JSON, headers=bearer(secret))
    client.get("/dicomweb/studies", HTTP_ACCEPT=DICOM_JSON, headers=bearer(secret))
    client.get(f"/dicomweb/studies/{uid}/metadata", headers=bearer(secret))
    stow(client, new_files, secret)
    api_token_revoke(token=token, actor=staff)
    client.get("/dicomweb/studies", headers=bearer(secret))

    uses = AuditEvent.objects.filter(action=AuditEvent.Action.API_TOKEN_USE).order_by("pk")
    assert [(e.detail["method"], e.detail["path"], e.detail["status"]) for e in uses] == [
        ("GET", "/dicomweb/studies", 200),
        ("GET", "/dicomweb/studies", 200),
        ("GET", f"/dicomweb/studies/{uid}/metadata", 200),
        ("POST", "/dicomweb/studies", 403),
        ("GET", "/dicomweb/studies", 401),
    ]
    assert {(e.actor_user_id, e.detail["api_token"]) for e in uses} == {(staff.pk, token.pk)}
    assert [e.outcome for e in uses][-2:] == [AuditEvent.Outcome.MINOR_FAILURE] * 2
    assert [e.detail.get("refused") for e in uses][-2:] == ["scope", "revoked"]
    assert uses[2].study_instance_uid == uid
    assert not [e for e in AuditEvent.objects.all() if secret[len(token.prefix) :] in str(e.detail)]


def test_a_token_request_leaves_no_session_and_no_cookie(staff, study):
    secret = make_token(staff, ApiToken.Scope.READ)

    response = Client().get("/dicomweb/studies", headers=bearer(secret))

    assert response.status_code == HTTPStatus.OK
    assert "Set-Cookie" not in response
    assert not Session.objects.exists()


# --- The admin -------------------------------------------------------------------------------------


def test_an_administrator_sees_every_token_and_revokes_one_in_the_admin(staff, study):
    secret = make_token(staff, ApiToken.Scope.READ)
    token = ApiToken.objects.get()
    admin = User.objects.create_superuser("root@example.com", PASSWORD)
    TOTP.activate(admin, generate_totp_secret())
    client = signed_in(admin)

    listed = client.get("/admin/sharing/apitoken/")
    detail = client.get(f"/admin/sharing/apitoken/{token.pk}/change/")
    client.post("/admin/sharing/apitoken/", {"action": "revoke", "_selected_action": [token.pk], "index": 0})

    assert listed.status_code == HTTPStatus.OK
    assert token.prefix in listed.content.decode()
    assert detail.status_code == HTTPStatus.OK
    assert token.secret_hash in detail.content.decode()
    assert 'name="secret_hash"' not in detail.content.decode()  # read-only, not a field
    assert ApiToken.objects.get().revoked_at is not None
    assert AuditEvent.objects.get(action=AuditEvent.Action.API_TOKEN_REVOKE).actor_user == admin
    assert Client().get("/dicomweb/studies", headers=bearer(secret)).status_code == HTTPStatus.UNAUTHORIZED


def test_staff_who_are_not_superusers_see_no_tokens_in_the_admin(staff):
    make_token(staff, ApiToken.Scope.READ)
    User.objects.filter(pk=staff.pk).update(is_staff=True)

    response = signed_in(User.objects.get(pk=staff.pk)).get("/admin/sharing/apitoken/")

    assert response.status_code == HTTPStatus.FORBIDDEN


# --- Over real HTTP, on several gunicorn workers -----------------------------------------------------


@contextmanager
def running_web(tmp_path: Path) -> Iterator[LiveWeb]:
    """gunicorn as deployed with three workers on this test's database and the Redis they share;
    its access log names the worker (pid) that answered each probe."""
    with live_web(workers=3, redis_url=require_postgres_and_redis(), log=tmp_path / "gunicorn.log") as web:
        yield web


@pytest.fixture
def web_server(transactional_db, tmp_path) -> Iterator[LiveWeb]:
    with running_web(tmp_path) as server:
        yield server


def _status(server: LiveWeb, path: str, headers: dict[str, str]) -> int:
    """One request on a connection of its own, so that the kernel may hand it to any worker."""
    connection_ = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection_.request("GET", path, headers={"Connection": "close", **headers})
        response = connection_.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        connection_.close()


def _answered(server: LiveWeb) -> dict[str, str]:
    """Which worker answered each probe id, from the access log."""
    assert server.log is not None
    pattern = re.compile(r"probe pid=<?(\d+)>? id=(\S+) status=")
    return {m.group(2): m.group(1) for m in pattern.finditer(server.log.read_text())}


def _probe_every_worker(server: LiveWeb, secret: str, tag: str) -> dict[str, int]:
    """Requests on fresh connections until each worker has answered one: status by worker pid,
    the first answer of each worker only."""
    statuses: dict[str, int] = {}
    pids: dict[str, int] = {}
    for n in range(200):
        probe = f"{tag}-{n}"
        statuses[probe] = _status(
            server, "/dicomweb/studies", {"Authorization": f"Bearer {secret}", "X-Probe": probe}
        )
        time.sleep(0.01)  # the access log line follows the response
        for seen, pid in _answered(server).items():
            if seen.startswith(f"{tag}-") and seen in statuses:
                pids.setdefault(pid, statuses[seen])
        if len(pids) == server.workers:
            return pids
    pytest.fail(f"only workers {sorted(pids)} answered: {_answered(server)}")


@pytest.mark.integration
def test_over_http_a_revoked_token_is_refused_by_the_very_next_request_on_every_worker(
    web_server, staff, study
):
    secret = make_token(staff, ApiToken.Scope.READ)
    before = _probe_every_worker(web_server, secret, "before")

    api_token_revoke(token=ApiToken.objects.get(), actor=staff)
    after = _probe_every_worker(web_server, secret, "after")

    assert set(before.values()) == {HTTPStatus.OK}
    assert set(after.values()) == {HTTPStatus.UNAUTHORIZED}
    assert before.keys() == after.keys()


def status_of(error: HTTPError) -> int:
    assert error.response is not None
    return error.response.status_code


@pytest.mark.integration
def test_over_http_scopes_expiry_and_basic_are_enforced(web_server, staff, study, new_files):
    store, read = make_token(staff, ApiToken.Scope.STORE), make_token(staff, ApiToken.Scope.READ)
    expired = make_token(staff, ApiToken.Scope.READ)
    ApiToken.objects.filter(prefix=expired[:12]).update(expires_at=timezone.now())
    password = base64.b64encode(f"{staff.email}:{PASSWORD}".encode()).decode()
    uid = study.study_instance_uid

    def client(secret: str) -> DICOMwebClient:
        session = HttpSession()
        session.headers.update({"Connection": "close", "Authorization": f"Bearer {secret}"})
        return DICOMwebClient(url=f"{web_server.url}/dicomweb", session=session)

    assert client(read).search_for_studies()[0]["0020000D"]["Value"] == [uid]
    assert len(client(read).retrieve_study_metadata(uid)) == study.number_of_instances
    with pytest.raises(HTTPError) as store_reading:
        client(store).search_for_studies()
    with pytest.raises(HTTPError) as read_storing:
        client(read).store_instances([pydicom.dcmread(new_files[0])])
    with pytest.raises(HTTPError) as expired_reading:
        client(expired).search_for_studies()

    assert status_of(store_reading.value) == HTTPStatus.FORBIDDEN
    assert status_of(read_storing.value) == HTTPStatus.FORBIDDEN
    assert status_of(expired_reading.value) == HTTPStatus.UNAUTHORIZED
    assert _status(web_server, "/dicomweb/studies", {"Authorization": f"Basic {password}"}) == 401
    assert Instance.objects.count() == study.number_of_instances


@pytest.mark.integration
def test_over_http_dicomweb_client_stores_and_searches_with_a_token(web_server, staff, new_files):
    secret = make_token(staff, ApiToken.Scope.STORE, ApiToken.Scope.READ)
    session = HttpSession()
    session.headers["Connection"] = "close"
    dicomweb = DICOMwebClient(
        url=f"{web_server.url}/dicomweb", session=session, headers={"Authorization": f"Bearer {secret}"}
    )
    datasets = [pydicom.dcmread(path) for path in new_files]
    uid = str(datasets[0].StudyInstanceUID)

    stored = dicomweb.store_instances(datasets)
    found = dicomweb.search_for_studies(search_filters={"StudyInstanceUID": uid})
    instance = dicomweb.retrieve_instance(uid, datasets[0].SeriesInstanceUID, datasets[0].SOPInstanceUID)

    assert len(stored.ReferencedSOPSequence) == 2
    assert [s["0020000D"]["Value"][0] for s in found] == [uid]
    assert (instance.pixel_array == datasets[0].pixel_array).all()
    assert Instance.objects.filter(uploaded_by=staff, study_instance_uid=uid).count() == 2
    uses = AuditEvent.objects.filter(action=AuditEvent.Action.API_TOKEN_USE)
    assert [(e.detail["method"], e.detail["status"]) for e in uses.order_by("pk")] == [
        ("POST", 200),
        ("GET", 200),
        ("GET", 200),
    ]
    assert ApiToken.objects.get().last_used_from == "127.0.0.1"


def forget_failures(redis_url: str) -> None:
    """Only the counters this test makes: the database may hold others' keys."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("*lightbox:api-token-fail:*"):
        client.delete(key)


@pytest.mark.integration
def test_over_http_failed_tokens_are_counted_by_all_workers_together_through_redis(
    transactional_db, tmp_path, staff
):
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("needs REDIS_URL, the cache the web processes share")
    forget_failures(redis_url)
    secret = make_token(staff, ApiToken.Scope.READ)
    unknown = {"Authorization": "Bearer lbx_" + "A" * 43}
    try:
        # As deployed: the cache is Redis (tests.support.live_settings, with REDIS_URL).
        with running_web(tmp_path) as web:
            failures = [
                _status(web, "/dicomweb/studies", {**unknown, "X-Probe": f"bad-{n}"})
                for n in range(FAILURE_LIMIT)
            ]
            time.sleep(0.2)  # the access log line follows the response
            workers = {pid for probe, pid in _answered(web).items() if probe.startswith("bad-")}
            then = _status(web, "/dicomweb/studies", {"Authorization": f"Bearer {secret}"})
    finally:
        forget_failures(redis_url)

    assert failures == [HTTPStatus.UNAUTHORIZED] * FAILURE_LIMIT
    assert len(workers) > 1
    assert then == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.integration
def test_over_http_the_dicomweb_client_command_stores_and_searches_like_storescu(
    web_server, staff, new_files
):
    secret = make_token(staff, ApiToken.Scope.STORE, ApiToken.Scope.READ)
    command = [str(Path(sys.executable).with_name("dicomweb_client")), "--url", f"{web_server.url}/dicomweb"]
    uid = str(pydicom.dcmread(new_files[0]).StudyInstanceUID)

    stored = subprocess.run(
        [*command, "--bearer-token", secret, "store", "instances", *map(str, new_files)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = subprocess.run(
        [*command, "--bearer-token", secret, "search", "studies", "--filter", f"StudyInstanceUID={uid}"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert stored.returncode == 0, stored.stderr
    assert Instance.objects.filter(uploaded_by=staff, study_instance_uid=uid).count() == len(new_files)
    assert found.returncode == 0, found.stderr
    assert uid in found.stdout


def test_staff_find_the_token_pages_in_the_menu_and_patients_do_not(staff, jane):
    assert b'href="/staff/api-tokens/"' in signed_in(staff).get("/").content
    assert b"/staff/api-tokens/" not in signed_in(jane).get("/").content


def test_a_token_needs_no_csrf_token_where_a_session_does(staff, study):
    secret = make_token(staff, ApiToken.Scope.STORE)
    url = f"/dicomweb/studies/{study.study_instance_uid}/metadata"
    session = Client(enforce_csrf_checks=True)
    session.force_login(staff)

    with_token = Client(enforce_csrf_checks=True).post(url, headers=bearer(secret))
    with_cookie = session.post(url)

    assert with_token.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert with_cookie.status_code == HTTPStatus.FORBIDDEN


def test_a_token_stops_working_when_its_owner_loses_two_factor_authentication(staff, study):
    secret = make_token(staff, ApiToken.Scope.READ)
    Authenticator.objects.filter(user=staff).delete()

    response = Client().get("/dicomweb/studies", headers=bearer(secret))

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert "two-factor" in response.json()["detail"]
    assert b"DOE" not in response.content
    with pytest.raises(ValidationError, match="two-factor"):
        make_token(staff, ApiToken.Scope.READ)
