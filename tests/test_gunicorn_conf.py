"""The web server as deployed (portal/gunicorn_conf.py): each worker listens on the port itself,
a port already in use is refused, a Unix socket still works, and the counts come from the
environment."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.network import free_port

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


# Several workers need a cache they share; the test settings keep their own (nothing is cached
# across requests here), so the address only has to be given.
SHARED_CACHE = "redis://127.0.0.1:6379/15"


def _env(**extra: str) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LIGHTBOX_WEB_", "REDIS_URL"))
    }
    return {**clean, "DJANGO_SETTINGS_MODULE": "portal.settings.test", **extra}


@contextmanager
def gunicorn(bind: str, **env: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [GUNICORN, "--config", "python:portal.gunicorn_conf", "--bind", bind],
        cwd=ROOT,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _status(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/no-such-page/", headers={"Host": "localhost"})
    return connection.getresponse().status


def wait_for_answer(connect, process: subprocess.Popen[str], timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _status(connect())
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def listening_sockets(port: int) -> int:
    """Sockets in LISTEN state on this TCP port, from /proc (every process's)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            count += state == "0A" and int(local.rsplit(":", 1)[1], 16) == port
    return count


def test_each_worker_listens_on_the_port_itself():
    port = free_port()
    with gunicorn(f"127.0.0.1:{port}", LIGHTBOX_WEB_WORKERS="3", REDIS_URL=SHARED_CACHE) as server:
        assert (
            wait_for_answer(lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=10), server) == 404
        )
        deadline = time.monotonic() + 30
        while listening_sockets(port) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert listening_sockets(port) == 3


def test_a_port_in_use_is_refused_rather_than_shared():
    port = free_port()
    with socket.socket() as other:
        # Another server that, like ours, lets others join its port.
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", port))
        other.listen()
        with gunicorn(f"127.0.0.1:{port}") as server:
            output, _ = server.communicate(timeout=60)

        assert server.returncode != 0
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in output
        assert listening_sockets(port) == 1


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def test_a_unix_socket_is_shared_by_the_workers(tmp_path):
    path = str(tmp_path / "web.sock")
    with gunicorn(f"unix:{path}", LIGHTBOX_WEB_WORKERS="2", REDIS_URL=SHARED_CACHE) as server:
        assert wait_for_answer(lambda: _UnixConnection(path), server) == 404
        # Both workers up, and still one socket that answers.
        time.sleep(1)
        assert [_status(_UnixConnection(path)) for _ in range(4)] == [404] * 4


@pytest.mark.parametrize("value", ["none", "0"])
def test_a_bad_worker_count_stops_the_start(value):
    with gunicorn(f"127.0.0.1:{free_port()}", LIGHTBOX_WEB_WORKERS=value) as server:
        output, _ = server.communicate(timeout=60)

    assert server.returncode != 0
    assert "LIGHTBOX_WEB_WORKERS must be" in output


def test_several_workers_without_a_shared_cache_are_refused():
    with gunicorn(f"127.0.0.1:{free_port()}", LIGHTBOX_WEB_WORKERS="4") as server:
        output, _ = server.communicate(timeout=60)

    assert server.returncode != 0
    assert "LIGHTBOX_WEB_WORKERS=4 needs REDIS_URL" in output


def test_without_a_shared_cache_one_worker_serves():
    port = free_port()
    with gunicorn(f"127.0.0.1:{port}") as server:
        assert (
            wait_for_answer(lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=10), server) == 404
        )
        time.sleep(1)
        assert listening_sockets(port) == 1
