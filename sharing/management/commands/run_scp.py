"""``manage.py run_scp``: the DICOM Storage SCP.

With ``--processes N`` (or LIGHTBOX_SCP_PROCESSES) N processes share the port through
SO_REUSEPORT; each serves its associations on threads. Processes hold no state of their own, so
any number of them, on any number of hosts behind a TCP balancer, can run side by side.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from sharing.conf import app_settings
from sharing.scp.guard import ScpLimits
from sharing.scp.server import make_server


class Command(BaseCommand):
    help = "Run the DICOM Storage SCP (C-ECHO, C-STORE)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=app_settings.SCP_HOST)
        parser.add_argument("--port", type=int, default=app_settings.SCP_PORT)
        parser.add_argument("--ae-title", default=app_settings.SCP_AE_TITLE)
        parser.add_argument("--processes", type=int, default=app_settings.SCP_PROCESSES)

    def handle(self, *args: Any, host: str, port: int, ae_title: str, processes: int, **options: Any) -> None:
        app_settings.TEMP_DIR  # noqa: B018 - create it before forking
        connections.close_all()
        allowed = ", ".join(app_settings.SCP_ALLOWED_AES) or "any calling AE (each is logged)"
        limits = ScpLimits.from_settings()
        pdus = f"PDUs up to {limits.max_pdu} bytes" if limits.max_pdu else "PDUs of any length"
        self.stdout.write(
            f"Storage SCP {ae_title} on {host}:{port}, {processes} process(es); accepting {allowed}\n"
            f"Each process: {limits.max_associations} associations, "
            f"{limits.max_associations_per_address} connections per address, "
            f"{limits.negotiation_timeout:g} s to negotiate, {pdus}"
        )
        self.stdout.flush()
        if processes <= 1:
            _serve(host, port, ae_title)
            return
        context = multiprocessing.get_context("fork")
        children = [
            context.Process(target=_serve, args=(host, port, ae_title), daemon=True) for _ in range(processes)
        ]
        for child in children:
            child.start()

        def stop(signum: int, frame: Any) -> None:
            for child in children:
                if child.pid:
                    os.kill(child.pid, signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for child in children:
            child.join()


def _serve(host: str, port: int, ae_title: str) -> None:
    server = make_server(host=host, port=port, ae_title=ae_title)
    _start_embedded_scheduler()

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    server.server_close()


def _start_embedded_scheduler() -> None:
    """Without a Celery beat (the embedded default), run its periodic work from here."""
    from django.conf import settings

    if not settings.CELERY_TASK_ALWAYS_EAGER:
        return
    from sharing.services.completion import studies_mark_complete
    from sharing.services.indexing import instances_index_stragglers
    from sharing.services.shares import shares_expire_sweep

    def loop() -> None:
        while not stopped.wait(15):
            try:
                instances_index_stragglers()
                studies_mark_complete()
                shares_expire_sweep()
            finally:
                connections.close_all()

    stopped = threading.Event()
    threading.Thread(target=loop, name="study-completion", daemon=True).start()
