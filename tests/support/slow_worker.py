"""A Celery app for one test: the worker stalls inside indexing so the test can kill it mid-task.

Started as ``celery -A tests.support.slow_worker worker``; production code is untouched.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import django

from portal.celery import app

django.setup()

from sharing.services import indexing  # noqa: E402 - needs the app registry

__all__ = ["app"]

_marker = Path(os.environ["LIGHTBOX_TEST_STALL_MARKER"])
_read_header = getattr(indexing, "read_header")  # noqa: B009 - replaced below


def _stalling_read_header(path: Path) -> Any:
    # Inside the indexing transaction, with the instance rows locked: the worst moment to die.
    _marker.touch()
    time.sleep(60)
    return _read_header(path)


setattr(indexing, "read_header", _stalling_read_header)  # noqa: B010 - a test-only patch
