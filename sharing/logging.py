"""Keep share tokens out of every log line.

A share link is ``/s/<token>``; the token is a credential, so anything that logs a path (Django's
request logger, the development server, gunicorn's access log) passes through ``redact``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger  # type: ignore[import-untyped]

# The token is 32 URL-safe characters; match a little wider so a mangled one is caught too.
_SHARE_PATH = re.compile(r"(/s/)[A-Za-z0-9_-]{16,}")
REDACTED = r"\1[token]"


def redact(text: str) -> str:
    return _SHARE_PATH.sub(REDACTED, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    return value


def _redact_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_value(arg) for arg in record.args)
    elif isinstance(record.args, dict):
        record.args = {key: _redact_value(value) for key, value in record.args.items()}


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
    """gunicorn's access log with share tokens taken out of the request line and referrer."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        return {key: _redact_value(value) for key, value in atoms.items()}
