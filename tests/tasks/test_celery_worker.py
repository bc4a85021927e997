"""Ingest through real Celery workers on Redis, including a worker killed in the middle of a task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection

from portal.celery import app as celery_app
from sharing.dicom.scu import send_files
from sharing.models import Instance, Series

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
TEST_REDIS_DB = 14


@pytest.fixture
def broker(settings) -> Iterator[str]:
    """Tasks go to a real Redis broker for the duration of the test."""
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url or connection.vendor != "postgresql":
        pytest.skip("needs REDIS_URL and DATABASE_URL (PostgreSQL): set by `make test` in CI")
    url = redis_url.rsplit("/", 1)[0] + f"/{TEST_REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    previous = {key: celery_app.conf[key] for key in ("task_always_eager", "broker_url")}
    celery_app.conf.update(task_always_eager=False, broker_url=url)
    # Workers and receivers share the "task queued" flags through the cache, as in production.
    settings.CACHES = {"default": {"BACKEND": "portal.redis_cache.RedisCache", "LOCATION": url}}
    reset_connections()
    yield url
    celery_app.conf.update(previous)
    reset_connections()
    redis.Redis.from_url(url).flushdb()


def reset_connections() -> None:
    """Forget pooled broker connections so the next task uses the current broker_url.

    (kombu keeps its pools in a global registry keyed by URL, so closing them would poison the
    next test that uses the same URL.)"""
    celery_app._pool = None  # type: ignore[attr-defined]
    celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]


def worker_env(broker_url: str, **extra: str) -> dict[str, str]:
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.dev",
        "DATABASE_URL": database_url,
        "REDIS_URL": broker_url,
        "LIGHTBOX_OBJECT_STORE": django_settings.LIGHTBOX_OBJECT_STORE,
        "LIGHTBOX_TEMP_DIR": django_settings.LIGHTBOX_TEMP_DIR,
        "LIGHTBOX_TASK_VISIBILITY_TIMEOUT": "3",
        **extra,
    }


@contextmanager
def celery_worker(env: dict[str, str], app: str = "portal") -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app,
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for the worker")
        time.sleep(0.2)


def fully_indexed(count: int) -> bool:
    return (
        Instance.objects.filter(state=Instance.State.INDEXED).count() == count
        and Series.objects.exists()
        and not Series.objects.filter(thumbnail_key="").exists()
    )


def test_a_worker_indexes_and_thumbnails_what_the_scp_received(broker, scp, ct_files):
    result = send_files(ct_files, host=scp.host, port=scp.port, called_ae=scp.ae_title)
    assert not result.failures
    assert Instance.objects.filter(state=Instance.State.RECEIVED).count() == len(
        ct_files
    )  # queued, not inline

    with celery_worker(worker_env(broker)):
        wait_until(lambda: fully_indexed(len(ct_files)))


def test_a_task_whose_worker_was_killed_is_delivered_again_and_completes(broker, scp, ct_files, tmp_path):
    # One instance, so one task: only its redelivery can finish the job.
    marker = tmp_path / "stalled"
    send_files(ct_files[:1], host=scp.host, port=scp.port, called_ae=scp.ae_title)

    env = worker_env(broker, LIGHTBOX_TEST_STALL_MARKER=str(marker))
    with celery_worker(env, app="tests.support.slow_worker") as doomed:
        wait_until(marker.exists, timeout=60)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    assert Instance.objects.filter(state=Instance.State.INDEXED).count() == 0  # rolled back with the worker

    with celery_worker(worker_env(broker)):
        wait_until(lambda: fully_indexed(1), timeout=90)
