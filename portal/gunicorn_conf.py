"""gunicorn's settings for Lightbox's web process: one place for ``manage.py serve``, the container
image and the benchmarks, which add only where to listen::

    gunicorn --config python:portal.gunicorn_conf --bind 127.0.0.1:8000

``LIGHTBOX_WEB_WORKERS`` and ``LIGHTBOX_WEB_THREADS`` override the process and thread counts.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from portal.env import env_int


def _cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


wsgi_app = "portal.wsgi:application"
worker_class = "gthread"
# A worker runs Python on one core at a time, so two per core: when one worker holds more of the
# connections than another, it can still have a core to itself while the others share theirs.
# Several workers need the cache they all share (Redis): rate limits, lockouts and the signed-in
# users kept between requests must be the same in every process. Without REDIS_URL (the embedded
# demo) there is one worker, whose memory is then the one place they are kept.
_shared_cache = bool(os.environ.get("REDIS_URL"))
workers = env_int("LIGHTBOX_WEB_WORKERS", 2 * _cores() if _shared_cache else 1, minimum=1)
if workers > 1 and not _shared_cache:
    raise SystemExit(
        f"LIGHTBOX_WEB_WORKERS={workers} needs REDIS_URL: web processes count failed sign-ins and "
        "lockouts in a cache they share; without one Lightbox runs a single web process"
    )
# Threads wait on PostgreSQL, Redis and the object store, and stream downloads; a lone worker has
# more of them.
threads = env_int("LIGHTBOX_WEB_THREADS", 2 if workers > 1 else 8, minimum=1)
# Each worker listens on a socket of its own and the kernel spreads new connections over them. On
# one shared socket the worker that wakes first accepts a whole burst: 32 clients' keep-alive
# connections often all went to one of two workers, which served them on one core while the other
# idled (half the throughput; bench/viewing.py, docs/PERFORMANCE.md).
reuse_port = True
accesslog = "-"
# Share tokens and query strings (staff searches carry MRNs, names, birth dates) are redacted from
# every atom of the access log (sharing.logging).
logger_class = "sharing.logging.RedactingGunicornLogger"


def on_starting(server: Any) -> None:
    """Refuse an address that something is already listening on.

    Sockets with SO_REUSEPORT join each other's group instead of failing, so a second Lightbox
    started on the same port would quietly take half of the first one's connections. A plain
    bind, without the option, still fails on a port in use; it is tried and closed here, before
    the workers bind theirs. A Unix socket cannot be shared this way, so its workers share one.
    """
    addresses = server.cfg.address
    if any(not isinstance(address, tuple) for address in addresses):
        server.cfg.set("reuse_port", False)
        return
    for host, port, *_ in addresses:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                raise SystemExit(f"cannot listen on {host}:{port}: {error.strerror}") from None
        server.log.info("Each worker listens on %s:%s itself (SO_REUSEPORT)", host, port)
