"""A change of access takes effect in every web process at once: checked against gunicorn with
several workers on PostgreSQL and Redis (and the embedded demo's single process), with the change
made in the test's own process, as an administrator's or another process's would be.

Each check sends its requests on fresh connections, which the kernel spreads over the workers.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Iterator
from http import HTTPStatus

import pytest
import requests
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from sharing.models import Patient, Share, Study, User
from sharing.services.shares import share_create, share_revoke
from tests.support.clients import Client
from tests.support.factories import PASSWORD, make_study, patient_user
from tests.support.live import LiveWeb, live_web, require_postgres_and_redis

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REQUESTS = 24
FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"
WRONG_PASSWORD = "The email address and/or password you specified are not correct."


@pytest.fixture
def redis_url(settings) -> Iterator[str]:
    """This process shares the servers' cache and sessions, as every Lightbox process does."""
    url = require_postgres_and_redis()
    settings.CACHES = {"default": {"BACKEND": "portal.redis_cache.RedisCache", "LOCATION": url}}
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    cache.clear()
    yield url
    cache.clear()


@pytest.fixture(params=["embedded", "several workers"])
def web(request, settings) -> Iterator[LiveWeb]:
    """The embedded demo's server (no REDIS_URL: its default of one process) and four workers on Redis."""
    if request.param == "embedded":
        require_postgres_and_redis()  # the server reads the test's database
        with live_web(workers=None, redis_url=None) as server:
            yield server
    else:
        url = request.getfixturevalue("redis_url")
        with live_web(workers=4, redis_url=url) as server:
            assert len(server.worker_pids()) == 4
            yield server


@pytest.fixture
def several(redis_url) -> Iterator[LiveWeb]:
    with live_web(workers=4, redis_url=redis_url) as server:
        yield server


def session_cookie(user: User) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


def statuses(web: LiveWeb, path: str, cookies: dict[str, str], **headers: str) -> list[int]:
    return [web.get(path, cookies=cookies, headers=headers).status_code for _ in range(REQUESTS)]


def test_a_deactivated_account_is_refused_by_every_web_process_at_once(web):
    jane = patient_user("jane@example.com", "MRN-1001")
    cookies = session_cookie(jane)
    assert statuses(web, "/access/", cookies) == [HTTPStatus.OK] * REQUESTS  # every worker knows her

    jane.is_active = False
    jane.save()

    assert HTTPStatus.OK not in statuses(web, "/access/", cookies)


def test_a_new_password_ends_the_old_session_on_every_web_process(web):
    jane = patient_user("jane@example.com", "MRN-1001")
    cookies = session_cookie(jane)
    assert statuses(web, "/access/", cookies) == [HTTPStatus.OK] * REQUESTS

    jane.set_password("another-long-passphrase-7")
    jane.save()

    assert HTTPStatus.OK not in statuses(web, "/access/", cookies)


def test_failed_passwords_are_counted_once_for_all_web_processes(web):
    jane = patient_user("jane@example.com", "MRN-1001")
    checked = 0
    for attempt in range(30):
        checked += WRONG_PASSWORD in sign_in(web, jane.email, f"wrong-password-{attempt}").text

    # allauth's limit is five failures for one account in five minutes, wherever they land.
    assert checked <= 5
    assert sign_in(web, jane.email, PASSWORD).status_code != HTTPStatus.FOUND  # not signed in


def sign_in(web: LiveWeb, email: str, password: str) -> requests.Response:
    """The sign-in page's answer to these credentials, from a fresh browser."""
    with requests.Session() as browser:
        page = browser.get(web.url + "/accounts/login/", timeout=30)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None
        response = browser.post(
            web.url + "/accounts/login/",
            data={"login": email, "password": password, "csrfmiddlewaretoken": token.group(1)},
            allow_redirects=False,
            timeout=30,
        )
    return response


def frames_path(study: Study) -> str:
    series = study.series.get(modality="CT")
    instance = series.instances.order_by("instance_number")[0]
    return (
        f"/dicomweb/studies/{study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}/frames/1"
    )


def test_unlinking_a_patient_record_stops_its_frames_on_every_web_process_within_a_second(
    several, tmp_path, patient
):
    jane = patient_user("jane@example.com", "MRN-1001")
    study = make_study(tmp_path, patient, "ct")
    cookies = session_cookie(jane)
    path = frames_path(study)
    assert statuses(several, path, cookies, Accept=FRAMES) == [HTTPStatus.OK] * REQUESTS

    record = Patient.objects.get(user=jane)
    record.user = None
    record.save()
    time.sleep(1)

    assert statuses(several, path, cookies, Accept=FRAMES) == [HTTPStatus.NOT_FOUND] * REQUESTS


def test_a_study_given_to_another_patient_leaves_the_first_one_s_frames_within_a_second(
    several, tmp_path, patient
):
    jane = patient_user("jane@example.com", "MRN-1001")
    other = Patient.objects.create(patient_id="MRN-3003", issuer="GENERAL")
    study = make_study(tmp_path, patient, "ct")
    cookies = session_cookie(jane)
    path = frames_path(study)
    assert statuses(several, path, cookies, Accept=FRAMES) == [HTTPStatus.OK] * REQUESTS

    study.patient = other
    study.save()
    time.sleep(1)

    assert statuses(several, path, cookies, Accept=FRAMES) == [HTTPStatus.NOT_FOUND] * REQUESTS


def test_a_revoked_share_answers_410_on_every_web_process_at_once(several, tmp_path, patient):
    jane = patient_user("jane@example.com", "MRN-1001")
    study = make_study(tmp_path, patient, "ct")
    created = share_create(
        owner=jane,
        studies=[study],
        expires_at=timezone.now() + datetime.timedelta(days=1),
        protection=Share.Protection.CODE,
        allow_download=False,
    )
    holder = Client()
    assert holder.post(f"/s/{created.token}", {"answer": created.code}).status_code == HTTPStatus.FOUND
    cookies = {settings.SESSION_COOKIE_NAME: holder.cookies[settings.SESSION_COOKIE_NAME].value}
    path = f"/s{frames_path(study)}"
    assert statuses(several, path, cookies, Accept=FRAMES) == [HTTPStatus.OK] * REQUESTS

    share_revoke(share=created.share, actor=jane)

    assert statuses(several, path, cookies, Accept=FRAMES) == [HTTPStatus.GONE] * REQUESTS
