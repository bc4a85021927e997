"""Staff search by MRN, name and birth date with GET links (paged, exported, bookmarked); the
access log keeps none of it: every query string is dropped from the line gunicorn writes, and from
the development server's request lines (sharing.logging)."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote, urlencode

import pytest
from gunicorn.config import Config  # type: ignore[import-untyped]

from portal import gunicorn_conf
from sharing.logging import RedactingGunicornLogger

MRN, NAME, BORN = "MRN-1001", "DOE", "1980-01-02"
SECRETS = (MRN, NAME, BORN, "1980-01-02".replace("-", ""), quote(MRN))

# Every atom gunicorn offers that can carry a URL or its query, besides the default format's.
EVERY_ATOM = "%(r)s | %(U)s | %(q)s | %(f)s | %({referer}i)s | %({raw_uri}e)s | %({query_string}e)s"

STAFF_SEARCHES = {
    "audit search": "/staff/audit/?" + urlencode({"patient": MRN, "since": BORN}),
    "audit search by name, page 2": "/staff/audit/?" + urlencode({"patient": NAME, "page": 2}),
    "audit export": "/staff/audit/export.csv?" + urlencode({"patient": MRN, "until": BORN}),
    "request's study search": "/staff/requests/7/?"
    + urlencode({"patient_id": MRN, "name": NAME, "birth_date": BORN}),
    "reconciliation search": "/staff/unmatched/3/?" + urlencode({"q": NAME, "patient": 12}),
    "sign-in after a timeout": "/accounts/login/?" + urlencode({"next": f"/staff/audit/?patient={MRN}"}),
    "QIDO search": "/dicomweb/studies?" + urlencode({"PatientID": MRN, "PatientBirthDate": BORN}),
}


def access_log_line(tmp_path: Path, url: str, *, referrer: str = "", log_format: str = "") -> str:
    """The line gunicorn's access log writes for a GET of ``url``, with Lightbox's logger class."""
    path, _, query = url.partition("?")
    log_file = tmp_path / "access.log"
    config = Config()
    config.set("accesslog", str(log_file))
    if log_format:
        config.set("access_log_format", log_format)
    logger = RedactingGunicornLogger(config)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": url,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.9",
        "HTTP_REFERER": referrer or "-",
        "HTTP_USER_AGENT": "Firefox/130",
    }
    request = SimpleNamespace(headers=[("REFERER", referrer or "-")])
    response = SimpleNamespace(status="200 OK", sent=10, headers=[])
    logger.access(response, request, environ, datetime.timedelta(milliseconds=12))
    for handler in logger.access_log.handlers:
        handler.close()
    logger.access_log.handlers.clear()
    return log_file.read_text()


def test_lightbox_runs_gunicorn_with_the_redacting_logger():
    assert gunicorn_conf.logger_class == "sharing.logging.RedactingGunicornLogger"


@pytest.mark.parametrize("url", STAFF_SEARCHES.values(), ids=STAFF_SEARCHES.keys())
def test_the_access_log_line_of_a_staff_search_carries_no_patient_identifier(tmp_path, url):
    line = access_log_line(tmp_path, url)

    assert [secret for secret in SECRETS if secret in line] == []
    assert f'"GET {url.partition("?")[0]}?[query] HTTP/1.1" 200' in line


@pytest.mark.parametrize("url", STAFF_SEARCHES.values(), ids=STAFF_SEARCHES.keys())
def test_no_atom_of_the_access_log_carries_a_patient_identifier(tmp_path, url):
    line = access_log_line(tmp_path, url, referrer=f"https://lightbox.example{url}", log_format=EVERY_ATOM)

    assert [secret for secret in SECRETS if secret in line] == []
    assert url.partition("?")[0] in line  # the path itself stays


def test_the_referrer_of_a_page_opened_from_a_search_is_logged_without_its_query(tmp_path):
    search = STAFF_SEARCHES["request's study search"]

    line = access_log_line(tmp_path, "/staff/requests/7/", referrer=f"https://lightbox.example{search}")

    assert '"https://lightbox.example/staff/requests/7/?[query]"' in line
    assert [secret for secret in SECRETS if secret in line] == []


def test_a_request_without_a_query_is_logged_as_it_was(tmp_path):
    line = access_log_line(tmp_path, "/staff/requests/")

    assert '"GET /staff/requests/ HTTP/1.1" 200' in line


def test_the_development_servers_request_lines_drop_query_strings_too(caplog):
    # runserver logs each request through "django.server"; Lightbox's record factory cleans it.
    url = STAFF_SEARCHES["audit search"]

    with caplog.at_level(logging.INFO, logger="django.server"):
        logging.getLogger("django.server").info('"%s" %s %s', f"GET {url} HTTP/1.1", "200", "512")

    assert caplog.messages == ['"GET /staff/audit/?[query] HTTP/1.1" 200 512']


def test_other_log_lines_keep_their_question_marks(caplog):
    with caplog.at_level(logging.INFO, logger="sharing"):
        logging.getLogger("sharing").info("Is PACS %s reachable? %s", "MAIN", "no")

    assert caplog.messages == ["Is PACS MAIN reachable? no"]
