"""Share links over HTTP: the patient's pages, the recipient's landing and check, and every
sub-resource answering 410 once a share stops working."""

from __future__ import annotations

import datetime
import json
import logging
import re
import zipfile
from http import HTTPStatus
from io import BytesIO

import pytest
import time_machine
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from sharing.dicom.synthetic import SyntheticPatient
from sharing.models import AuditEvent, Share, Study
from sharing.services.shares import share_create, share_revoke
from tests.support.clients import Client
from tests.support.factories import PASSWORD, make_study

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def study_x(tmp_path, patient, jane) -> Study:
    return make_study(tmp_path, patient, "x", description="CT CHEST X")


@pytest.fixture
def study_y(tmp_path, patient, jane) -> Study:
    return make_study(tmp_path, patient, "y", description="CT HEAD Y", study_date="20250101")


def make_share(owner, studies, **overrides):
    options = {
        "owner": owner,
        "studies": studies,
        "expires_at": timezone.now() + datetime.timedelta(days=7),
        "protection": Share.Protection.CODE,
        "allow_download": True,
    }
    options.update(overrides)
    return share_create(**options)


def opened(created, client: Client | None = None) -> Client:
    """A recipient's browser that has opened the share with the right answer."""
    client = client or Client()
    answer = created.code or "1980-01-01"
    response = client.post(f"/s/{created.token}", {"answer": answer})
    assert response.status_code == HTTPStatus.FOUND, response.content
    assert response["Location"] == "/s/"
    return client


def content(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def sub_resources(study: Study) -> dict[str, str]:
    """Every kind of thing a recipient fetches, for one study."""
    series = study.series.get(modality="CT")
    instance = series.instances.order_by("instance_number")[0]
    uid, se, sop = study.study_instance_uid, series.series_instance_uid, instance.sop_instance_uid
    return {
        "home": "/s/",
        "study page": f"/s/studies/{uid}/",
        "thumbnail": f"/s/studies/{uid}/series/{se}/thumbnail",
        "study thumbnail": f"/s/studies/{uid}/thumbnail",
        "download": f"/s/studies/{uid}/download",
        "jpeg download": f"/s/studies/{uid}/download/jpeg",
        "qido studies": "/s/dicomweb/studies",
        "qido series": f"/s/dicomweb/studies/{uid}/series",
        "metadata": f"/s/dicomweb/studies/{uid}/series/{se}/metadata",
        "instance": f"/s/dicomweb/studies/{uid}/series/{se}/instances/{sop}",
        "frames": f"/s/dicomweb/studies/{uid}/series/{se}/instances/{sop}/frames/1",
        "rendered": f"/s/dicomweb/studies/{uid}/series/{se}/instances/{sop}/rendered",
    }


ACCEPT = {
    "instance": 'multipart/related; type="application/dicom"; transfer-syntax=*',
    "frames": "multipart/related; type=application/octet-stream; transfer-syntax=*",
    "rendered": "image/jpeg",
}


def get(client: Client, name: str, url: str):
    return client.get(url, HTTP_ACCEPT=ACCEPT.get(name, "application/dicom+json, text/html, */*"))


# --- The patient's side --------------------------------------------------------------------------


def test_a_patient_creates_a_coded_share_and_sees_the_link_once(client, jane, study_x):
    client.force_login(jane)

    form = client.get(reverse("share-create"), {"study": study_x.study_instance_uid})
    response = client.post(
        reverse("share-create"),
        {
            "studies": [study_x.pk],
            "expiry": "24h",
            "protection": "code",
            "allow_download": "on",
            "recipient_name": "Dr Smith",
            "notify_on_open": "on",
        },
    )

    assert form.status_code == HTTPStatus.OK
    assert re.search(rf'value="{study_x.pk}"[^>]*checked', form.content.decode())
    assert response.status_code == HTTPStatus.OK
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    token_match = re.search(r"/s/([A-Za-z0-9_-]{32})", page)
    code_match = re.search(r'id="share-code" type="text" value="([A-Z0-9-]+)"', page)
    assert token_match is not None
    assert code_match is not None
    token, code = token_match.group(1), code_match.group(1)
    share = Share.objects.get()
    assert share.recipient_name == "Dr Smith"
    assert abs(share.expires_at - share.created_at - datetime.timedelta(hours=24)) < datetime.timedelta(
        seconds=5
    )
    assert (
        'src="data:image/svg+xml;charset=utf-8,%3Csvg%20xmlns%3D%27http%3A%2F%2Fwww.w3.org%2F2000%2Fsvg%27'
        in page
    )  # the QR code
    # Not shown again anywhere.
    detail = client.get(reverse("share-detail", args=[share.pk])).content.decode()
    listing = client.get(reverse("share-list")).content.decode()
    assert token not in detail + listing
    assert code not in detail + listing


def test_the_create_form_reports_field_errors(client, jane, study_x):
    client.force_login(jane)

    response = client.post(
        reverse("share-create"), {"expiry": "date", "expiry_date": "2001-01-01", "protection": "code"}
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.context["form"].errors.keys() >= {"studies", "expiry_date"}
    assert not Share.objects.exists()


def test_a_patient_cannot_share_someone_elses_study(client, john, study_x):
    client.force_login(john)

    response = client.post(
        reverse("share-create"), {"studies": [study_x.pk], "expiry": "24h", "protection": "code"}
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert not Share.objects.exists()


def test_shares_of_another_patient_are_not_found(client, jane, john, study_x):
    created = make_share(jane, [study_x])
    client.force_login(john)

    assert client.get(reverse("share-detail", args=[created.share.pk])).status_code == HTTPStatus.NOT_FOUND
    assert client.post(reverse("share-revoke", args=[created.share.pk])).status_code == HTTPStatus.NOT_FOUND
    assert Share.objects.get().revoked_at is None


def test_my_shares_lists_active_and_ended_shares_and_revoke_works(client, jane, study_x):
    active = make_share(jane, [study_x], recipient_name="Dr Active")
    ended = make_share(jane, [study_x], recipient_name="Dr Ended")
    share_revoke(share=ended.share, actor=jane)
    client.force_login(jane)

    page = client.get(reverse("share-list")).content.decode()
    revoke = client.post(reverse("share-revoke", args=[active.share.pk]))

    assert page.index("Dr Active") < page.index("Expired, revoked or locked") < page.index("Dr Ended")
    assert revoke.status_code == HTTPStatus.FOUND
    assert Share.objects.get(pk=active.share.pk).revoked_at is not None


def test_the_share_page_shows_each_access_with_address_and_browser(client, jane, study_x):
    created = make_share(jane, [study_x])
    recipient = opened(created, Client(HTTP_USER_AGENT="SpecialistBrowser/1.0", REMOTE_ADDR="203.0.113.7"))
    recipient.get(f"/s/studies/{study_x.study_instance_uid}/")
    client.force_login(jane)

    page = client.get(reverse("share-detail", args=[created.share.pk])).content.decode()

    assert "Share opened" in page
    assert "Viewed" in page
    assert "203.0.113.7" in page
    assert "SpecialistBrowser/1.0" in page


def test_extending_a_share_moves_its_expiry(client, jane, study_x):
    created = make_share(jane, [study_x])
    client.force_login(jane)

    client.post(reverse("share-extend", args=[created.share.pk]), {"expiry": "30d"})

    share = Share.objects.get()
    assert share.expires_at - timezone.now() > datetime.timedelta(days=29)


def test_anonymous_visitors_are_sent_to_sign_in_for_the_patients_pages(client):
    for url in (reverse("share-list"), reverse("share-create")):
        response = client.get(url)
        assert response.status_code == HTTPStatus.FOUND
        assert "/accounts/login/" in response["Location"]


# --- The recipient's side ------------------------------------------------------------------------


def test_the_landing_page_shows_no_patient_data_until_the_check_passes(jane, study_x):
    created = make_share(jane, [study_x])
    browser = Client()

    landing = browser.get(f"/s/{created.token}")
    wrong = browser.post(f"/s/{created.token}", {"answer": "WRONG-WRONG"})

    for response in (landing, wrong):
        text = response.content.decode()
        assert not [marker for marker in ("DOE", "JANE", "CHEST", "MRN-1001") if marker in text]
        assert response["Referrer-Policy"] == "no-referrer"
        assert response["Cache-Control"] == "no-store"
    assert landing.status_code == HTTPStatus.OK
    assert wrong.status_code == HTTPStatus.FORBIDDEN
    assert browser.get("/s/").status_code == HTTPStatus.FORBIDDEN


def test_the_right_code_opens_a_session_without_the_token_in_the_url(jane, study_x, study_y):
    created = make_share(jane, [study_x])
    browser = opened(created)

    home = browser.get("/s/")
    page = browser.get(f"/s/studies/{study_x.study_instance_uid}/")

    assert home.status_code == HTTPStatus.OK
    assert "CT CHEST X" in home.content.decode()
    assert "CT HEAD Y" not in home.content.decode()
    assert page.status_code == HTTPStatus.OK
    assert created.token not in home.content.decode() + page.content.decode()
    assert home["Referrer-Policy"] == "no-referrer"
    assert home["Cache-Control"] == "no-store"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SHARE_OPEN, share=created.share).exists()


def test_a_date_of_birth_share_opens_with_the_patients_birth_date(jane, study_x):
    created = make_share(jane, [study_x], protection=Share.Protection.BIRTH_DATE)
    browser = Client()

    assert browser.post(f"/s/{created.token}", {"answer": "1980-01-02"}).status_code == HTTPStatus.FORBIDDEN
    assert browser.post(f"/s/{created.token}", {"answer": "1980-01-01"})["Location"] == "/s/"


def test_a_share_without_a_check_opens_with_one_click_but_not_on_a_get(jane, study_x):
    created = make_share(jane, [study_x], protection=Share.Protection.NONE)
    browser = Client()

    browser.get(f"/s/{created.token}")  # a link preview or mail scanner only GETs
    assert Share.objects.get().open_count == 0
    assert browser.post(f"/s/{created.token}")["Location"] == "/s/"
    assert Share.objects.get().open_count == 1


def test_the_recipient_sees_every_kind_of_resource_for_the_shared_study(jane, study_x):
    created = make_share(jane, [study_x])
    browser = opened(created)

    for name, url in sub_resources(study_x).items():
        response = get(browser, name, url)
        assert response.status_code == HTTPStatus.OK, (name, response.status_code)
        content(response)


def test_dicomweb_links_for_a_share_stay_under_the_shares_root(jane, study_x):
    created = make_share(jane, [study_x])
    browser = opened(created)
    urls = sub_resources(study_x)

    studies = json.loads(get(browser, "qido studies", urls["qido studies"]).content)
    metadata = json.loads(get(browser, "metadata", urls["metadata"]).content)

    assert [s["0020000D"]["Value"][0] for s in studies] == [study_x.study_instance_uid]
    assert "/s/dicomweb/studies/" in studies[0]["00081190"]["Value"][0]
    assert all("/s/dicomweb/studies/" in item["7FE00010"]["BulkDataURI"] for item in metadata)


def test_the_share_holder_reaches_nothing_outside_the_share(jane, study_x, study_y):
    created = make_share(jane, [study_x])
    browser = opened(created)

    for name, url in sub_resources(study_y).items():
        if name in ("home", "qido studies"):
            continue
        response = get(browser, name, url)
        assert response.status_code == HTTPStatus.NOT_FOUND, (name, response.status_code)
        assert b"CT HEAD Y" not in content(response)
    # Nor the signed-in pages of the same study.
    assert browser.get(f"/studies/{study_x.study_instance_uid}/").status_code == HTTPStatus.FOUND
    assert browser.get("/dicomweb/studies", HTTP_ACCEPT="application/dicom+json").status_code == 401


def test_the_share_holder_cannot_change_anything(jane, study_x):
    created = make_share(jane, [study_x])
    browser = opened(created)
    urls = sub_resources(study_x)

    for name, url in urls.items():
        for method in ("post", "put", "delete", "patch"):
            response = getattr(browser, method)(url)
            assert response.status_code in (HTTPStatus.METHOD_NOT_ALLOWED, HTTPStatus.FORBIDDEN), (
                name,
                method,
            )
            assert b"CT CHEST" not in response.content
    assert Study.objects.filter(pk=study_x.pk).exists()


def test_downloads_answer_403_when_the_patient_did_not_allow_them(jane, study_x):
    created = make_share(jane, [study_x], allow_download=False)
    browser = opened(created)
    urls = sub_resources(study_x)

    assert browser.get(urls["download"]).status_code == HTTPStatus.FORBIDDEN
    assert browser.get(urls["jpeg download"]).status_code == HTTPStatus.FORBIDDEN
    assert "Download" not in browser.get(urls["study page"]).content.decode().split("Report")[0]
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD).exists()


def test_a_view_only_share_serves_the_viewer_but_not_the_dicom_files(jane, study_x):
    created = make_share(jane, [study_x], allow_download=False)
    browser = opened(created)
    urls = sub_resources(study_x)
    instance = urls["instance"]
    series = instance.rsplit("/instances/", 1)[0]
    study = series.rsplit("/series/", 1)[0]

    for url in (instance, series, study):
        response = browser.get(url, HTTP_ACCEPT=ACCEPT["instance"])
        assert response.status_code == HTTPStatus.FORBIDDEN, url
        assert "viewing only" in response.json()["detail"]
    for name in ("metadata", "frames", "rendered"):
        assert get(browser, name, urls[name]).status_code == HTTPStatus.OK, name
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD).exists()


def test_an_allowed_download_is_a_zip_audited_as_the_share(jane, study_x):
    created = make_share(jane, [study_x], allow_download=True)
    browser = opened(created)

    response = browser.get(sub_resources(study_x)["download"])

    assert zipfile.ZipFile(BytesIO(content(response))).testzip() is None
    event = AuditEvent.objects.get(action=AuditEvent.Action.DOWNLOAD)
    assert event.share == created.share
    assert event.actor_kind == AuditEvent.ActorKind.SHARE


@pytest.mark.parametrize("ending", ["revoked", "expired", "locked"])
def test_every_sub_resource_answers_410_once_the_share_stops(jane, study_x, settings, ending):
    settings.LIGHTBOX_SHARE_MAX_FAILURES = 1
    created = make_share(jane, [study_x], expires_at=timezone.now() + datetime.timedelta(hours=1))
    browser = opened(created)
    urls = sub_resources(study_x)

    def check() -> None:
        for name, url in urls.items():
            response = get(browser, name, url)
            assert response.status_code == HTTPStatus.GONE, (name, response.status_code)
            assert b"CT CHEST" not in content(response)
        assert Client().get(f"/s/{created.token}").status_code == HTTPStatus.GONE

    if ending == "revoked":
        share_revoke(share=created.share, actor=jane)
        check()
    elif ending == "locked":
        Client().post(f"/s/{created.token}", {"answer": "WRONG-WRONG"})
        check()
    else:
        with time_machine.travel(timezone.now() + datetime.timedelta(hours=1, seconds=1)):
            check()


def test_a_download_being_streamed_stops_when_the_share_is_revoked(jane, study_x, monkeypatch):
    created = make_share(jane, [study_x], allow_download=True)
    browser = opened(created)
    clock = iter(range(0, 10_000, 2))  # every chunk looks two seconds later: each one re-checks
    monkeypatch.setattr("sharing.views.downloads.time.monotonic", lambda: next(clock))

    response = browser.get(sub_resources(study_x)["download"])
    chunks = iter(response.streaming_content)  # type: ignore[attr-defined]
    first = next(chunks)
    share_revoke(share=created.share, actor=jane)
    rest = b"".join(chunks)

    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(BytesIO(first + rest))


def test_an_unknown_token_answers_404_and_a_malformed_one_too(client):
    assert client.get("/s/" + "A" * 32).status_code == HTTPStatus.NOT_FOUND
    assert client.post("/s/" + "A" * 32, {"answer": "x"}).status_code == HTTPStatus.NOT_FOUND
    assert client.get("/s/short").status_code == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize("mangled", ["cut short", "a full stop run on", "a bracket run on"])
def test_a_link_an_email_client_mangled_gets_the_page_that_says_to_check_the_link(
    client, jane, study_x, mangled
):
    token = make_share(jane, [study_x]).token
    path = {"cut short": token[:-3], "a full stop run on": token + ".", "a bracket run on": token + ">"}[
        mangled
    ]

    response = client.get(f"/s/{path}")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert "We could not find this link" in response.content.decode()
    assert "Check that the whole link was copied" in response.content.decode()


def test_pages_that_do_not_exist_and_server_errors_get_lightbox_s_own_pages(client, settings):
    response = client.get("/no-such-page/")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert "We could not find this page" in response.content.decode()
    assert 'href="/static/css/lightbox.css"' in response.content.decode()
    from django.views.defaults import server_error

    error = server_error(RequestFactory().get("/"))
    assert error.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert "Something went wrong on our side" in error.content.decode()


def test_a_used_up_share_refuses_new_browsers_but_not_the_one_that_opened_it(jane, study_x):
    created = make_share(jane, [study_x], max_opens=1)
    first = opened(created)

    assert Client().get(f"/s/{created.token}").status_code == HTTPStatus.GONE
    assert first.get("/s/").status_code == HTTPStatus.OK


def test_leaving_ends_the_share_session(jane, study_x):
    browser = opened(make_share(jane, [study_x]))

    browser.post("/s/leave")

    assert browser.get("/s/").status_code == HTTPStatus.FORBIDDEN


def test_frames_are_audited_once_per_series_not_per_frame(jane, study_x):
    created = make_share(jane, [study_x])
    browser = opened(created)
    series = study_x.series.get(modality="CT")
    uid, se = study_x.study_instance_uid, series.series_instance_uid

    for instance in series.instances.all():
        url = f"/s/dicomweb/studies/{uid}/series/{se}/instances/{instance.sop_instance_uid}/frames/1"
        assert get(browser, "frames", url).status_code == HTTPStatus.OK

    events = AuditEvent.objects.filter(action=AuditEvent.Action.FRAMES)
    assert events.count() == 1
    assert events.get().detail["series_instance_uid"] == se


def test_the_token_never_reaches_a_log_line(jane, study_x, caplog):
    created = make_share(jane, [study_x])
    with caplog.at_level(logging.DEBUG):
        opened(created)
        Client().get("/s/" + created.token[::-1])  # unknown: Django logs "Not Found: <path>"
        share_revoke(share=created.share, actor=jane)
        Client().get(f"/s/{created.token}")  # gone: logged as a 4xx
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/s/[token]" in logged  # the paths were logged, without the token
    assert created.token not in logged
    assert created.token[::-1] not in logged


def test_the_patient_is_emailed_on_first_open(jane, study_x, mailoutbox):
    created = make_share(jane, [study_x], notify_on_open=True)

    opened(created)
    opened(created)

    assert [m.to for m in mailoutbox] == [[jane.email]]


def test_another_patients_share_grants_nothing_in_their_own_library(jane, john, study_x, tmp_path):
    other = SyntheticPatient(patient_id="MRN-2002", issuer="GENERAL", name="ROE^JOHN")
    johns = make_study(tmp_path, other, "john")
    created = make_share(jane, [study_x])
    browser = Client()
    browser.login(email=john.email, password=PASSWORD)
    opened(created, browser)

    # John's session now holds a share of Jane's study X: his own pages are unchanged.
    assert browser.get(f"/studies/{study_x.study_instance_uid}/").status_code == HTTPStatus.NOT_FOUND
    assert browser.get(f"/studies/{johns.study_instance_uid}/").status_code == HTTPStatus.OK


def test_the_check_form_needs_its_csrf_token_even_with_a_null_origin(jane, study_x):
    created = make_share(jane, [study_x])
    browser = Client(enforce_csrf_checks=True)
    browser.get(f"/s/{created.token}")  # sets the CSRF cookie
    token = browser.cookies["csrftoken"].value

    forged = browser.post(f"/s/{created.token}", {"answer": created.code}, HTTP_ORIGIN="null")
    genuine = browser.post(
        f"/s/{created.token}", {"answer": created.code, "csrfmiddlewaretoken": token}, HTTP_ORIGIN="null"
    )

    assert forged.status_code == HTTPStatus.FORBIDDEN
    assert genuine.status_code == HTTPStatus.FOUND


def test_a_short_lived_share_answers_410_everywhere_once_it_expires_on_a_live_server(
    jane, study_x, live_server
):
    import http.cookiejar
    import time as clock
    import urllib.error
    import urllib.request

    created = make_share(jane, [study_x], expires_at=timezone.now() + datetime.timedelta(seconds=3))
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    landing = opener.open(f"{live_server.url}/s/{created.token}")
    csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    form = f"answer={created.code}&csrfmiddlewaretoken={csrf}".encode()
    request = urllib.request.Request(
        f"{live_server.url}/s/{created.token}", data=form, headers={"Origin": "null"}
    )
    opened = opener.open(request)  # follows the redirect to /s/
    urls = sub_resources(study_x)

    def status(name: str, url: str) -> int:
        headers = {"Accept": ACCEPT.get(name, "application/dicom+json, text/html, */*")}
        try:
            with opener.open(urllib.request.Request(live_server.url + url, headers=headers)) as response:
                response.read()
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    assert landing.status == HTTPStatus.OK
    assert opened.geturl() == f"{live_server.url}/s/"
    assert status("frames", urls["frames"]) == HTTPStatus.OK
    clock.sleep(max(0.0, (created.share.expires_at - timezone.now()).total_seconds()) + 0.2)
    assert {name: status(name, url) for name, url in urls.items()} == dict.fromkeys(urls, HTTPStatus.GONE)


def test_gunicorns_access_log_line_has_no_token():
    from types import SimpleNamespace

    from gunicorn.config import Config  # type: ignore[import-untyped]

    from sharing.logging import RedactingGunicornLogger

    token = "Q" * 32
    logger = RedactingGunicornLogger(Config())
    response = SimpleNamespace(status="200 OK", sent=10, headers=[], response_length=10)
    request = SimpleNamespace(
        headers=[], method="GET", path=f"/s/{token}", query="", version=(1, 1), uri=f"/s/{token}"
    )
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/s/{token}",
        "PATH_INFO": f"/s/{token}",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_REFERER": f"http://x/s/{token}",
    }
    atoms = logger.atoms(response, request, environ, datetime.timedelta(seconds=0.01))

    assert token not in " ".join(str(value) for value in atoms.values())
    assert "/s/[token]" in atoms["r"]


def test_a_recipient_is_offered_no_sign_in_and_leaving_is_not_the_main_action(jane, study_x):
    created = make_share(jane, [study_x])
    landing = Client().get(f"/s/{created.token}").content.decode()
    browser = opened(created)
    pages = [
        landing,
        *(
            browser.get(path).content.decode()
            for path in ("/s/", f"/s/studies/{study_x.study_instance_uid}/")
        ),
    ]

    assert [page for page in pages if ">Sign in<" in page] == []
    assert '<button type="submit" class="button secondary">Leave the shared images</button>' in pages[1]
    assert ">Sign in<" in Client().get("/accounts/password/reset/").content.decode()  # elsewhere it stays
