"""Lightbox's web server as deployed, for tests that must see several processes: gunicorn with its
own config (portal/gunicorn_conf.py), on the test's PostgreSQL database and object store.

A test that changes someone's access in its own process checks that every web process sees the
change; the test client alone runs in one process and could not tell.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.support.network import free_port

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def require_postgres_and_redis() -> str:
    """The Redis URL; the server and the test share PostgreSQL (SQLite's test database is in memory)."""
    redis_url = os.environ.get("REDIS_URL", "")
    if connection.vendor != "postgresql" or not redis_url:
        pytest.skip("needs REDIS_URL and DATABASE_URL (PostgreSQL): set by `make test` in CI")
    return redis_url


# An access log line per request naming the worker (pid) that answered and the request's X-Probe
# header, for tests that must see every worker answer.
PROBE_LOG_FORMAT = "probe pid=%(p)s id=%({x-probe}i)s status=%(s)s"


@dataclass(frozen=True)
class LiveWeb:
    url: str
    port: int
    workers: int
    process: subprocess.Popen[str]
    log: Path | None = None

    def get(self, path: str, **kwargs: object) -> requests.Response:
        """A request on a connection of its own, so that the kernel may hand it to any worker."""
        with requests.Session() as session:
            return session.get(self.url + path, allow_redirects=False, timeout=30, **kwargs)  # type: ignore[arg-type]

    def worker_pids(self) -> set[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in children.read_text().split()}


@contextmanager
def live_web(*, workers: int | None, redis_url: str | None, log: Path | None = None) -> Iterator[LiveWeb]:
    """gunicorn with ``workers`` processes (its default when None), sharing Redis when given.
    With ``log``, its output goes there and each request's line says which worker answered it
    (``PROBE_LOG_FORMAT``)."""
    db = connection.settings_dict
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "LIGHTBOX_", "REDIS_URL", "DATABASE_URL"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.support.live_settings",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        LIGHTBOX_OBJECT_STORE=settings.LIGHTBOX_OBJECT_STORE,
        LIGHTBOX_TEMP_DIR=settings.LIGHTBOX_TEMP_DIR,
        LIGHTBOX_WEB_THREADS="2",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    if workers is not None:
        env["LIGHTBOX_WEB_WORKERS"] = str(workers)
    port = free_port()
    command = [GUNICORN, "--config", "python:portal.gunicorn_conf", "--bind", f"127.0.0.1:{port}"]
    if log is not None:
        command += ["--access-logformat", PROBE_LOG_FORMAT]
    with open(log or os.devnull, "w") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if log is not None else subprocess.PIPE,
            text=True,
        )
    web = LiveWeb(f"http://127.0.0.1:{port}", port, workers or 1, process, log)
    try:
        _wait_until_every_worker_answers(web, workers or 1)
        yield web
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _wait_until_every_worker_answers(web: LiveWeb, workers: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if web.get("/accounts/login/").status_code == 200 and len(web.worker_pids()) >= workers:
                # Each worker listens on the port itself once it has booted; give the last a moment.
                time.sleep(1)
                return
        except (requests.ConnectionError, FileNotFoundError):
            pass
        if web.process.poll() is not None:
            output = web.log.read_text() if web.log else web.process.communicate()[1]
            raise RuntimeError(f"gunicorn stopped: {output[-2000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError("gunicorn did not answer")
        time.sleep(0.2)
