"""Keep share tokens out of every log line, and query strings out of the request logs.

A share link is ``/s/<token>``; the token is a credential, so anything that logs a path (Django's
request logger, the development server, gunicorn's access log) passes through ``redact``.

The lines that log requests (gunicorn's access log, the development server's) also drop every
query string (``redact_queries``). Staff search by MRN, name and birth date: the audit search and
its exports, the study search of a release request, finding a patient to reconcile a study with,
the admin's search boxes, DICOMweb's QIDO (``?PatientName=…``); and a query string travels on in
a ``?next=`` or a referrer. Those searches stay GET links on purpose (they are paged, exported,
opened in a second tab and bookmarked by staff, and POST would make each of those hold its filter
in the session); what leaks from them is the URL in a log that is kept longer, and read by more
people, than the audit trail. Dropping every query string rather than a list of routes' means a
new search page cannot forget it, and nobody reading an access log needs one.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger  # type: ignore[import-untyped]

# The token is 32 URL-safe characters; match a little wider so a mangled one is caught too.
_SHARE_PATH = re.compile(r"(/s/)[A-Za-z0-9_-]{16,}")
REDACTED = r"\1[token]"
# A query string, up to the end of its URL. In a request's log line a "?" only starts one (a
# User-Agent with one loses its end, which costs nothing).
_QUERY = re.compile(r"\?\S*")
QUERY_REDACTED = "?[query]"
# Atoms and environ entries that hold a bare query string, without the "?".
_QUERY_ATOMS = frozenset({"q", "{query_string}e"})


def redact(text: str) -> str:
    return _SHARE_PATH.sub(REDACTED, text)


def redact_queries(text: str) -> str:
    """``GET /staff/audit/?patient=DOE HTTP/1.1`` → ``GET /staff/audit/?[query] HTTP/1.1``."""
    return _QUERY.sub(QUERY_REDACTED, redact(text))


def _redact_record(record: logging.LogRecord) -> None:
    # The development server's logger writes one line per request, as an access log does.
    clean = redact_queries if record.name == "django.server" else redact
    if isinstance(record.msg, str):
        record.msg = clean(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(clean(arg) if isinstance(arg, str) else arg for arg in record.args)
    elif isinstance(record.args, dict):
        record.args = {
            key: clean(value) if isinstance(value, str) else value for key, value in record.args.items()
        }


class RedactShareTokens(logging.Filter):
    """A logging filter for handlers configured outside Django (belt and braces)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


_installed = False


def install_token_redaction() -> None:
    """Redact every log record as it is made, whichever logger or handler it goes to."""
    global _installed
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _redact_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


class RedactingGunicornLogger(GunicornLogger):  # type: ignore[misc]  # untyped base
    """gunicorn's access log with share tokens and query strings taken out of every atom (the
    request line, the referrer, headers and environ a custom format may name)."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        return {key: _access_log_value(key, value) for key, value in atoms.items()}


def _access_log_value(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if key in _QUERY_ATOMS:
        return "[query]" if value else value
    return redact_queries(value)
