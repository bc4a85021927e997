"""The real Storage SCP in a thread, and dcmtk's storescu sending to it."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.binaries import require_binary
from tests.support.network import free_port


class RunningSCP:
    def __init__(self, server, port: int, ae_title: str) -> None:
        self.server = server
        self.port = port
        self.ae_title = ae_title
        self.host = "127.0.0.1"


@contextmanager
def running_scp(*, allowed_aes: list[str] | None = None) -> Iterator[RunningSCP]:
    """The real Storage SCP (the core of ``manage.py run_scp``) on a free port, in a thread."""
    from sharing.scp.server import make_server

    port = free_port()
    server = make_server(host="127.0.0.1", port=port, ae_title="LIGHTBOX", allowed_aes=allowed_aes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningSCP(server, port, "LIGHTBOX")
    finally:
        server.shutdown()


def storescu(scp, env, *paths: Path, calling_ae: str = "PACS") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            require_binary("storescu"),
            "-v",
            "-aet",
            calling_ae,
            "-aec",
            scp.ae_title,
            scp.host,
            str(scp.port),
            *map(str, paths),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
