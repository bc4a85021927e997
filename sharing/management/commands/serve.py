"""``manage.py serve``: run the whole of Lightbox in the foreground (what ``make run`` ends with).

Starts the web server, the Storage SCP and, when REDIS_URL is set, a Celery worker with its beat;
prints where to log in; stops them all on Ctrl-C or when any one of them exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from sharing.conf import app_settings


class Command(BaseCommand):
    help = "Run the web server, the Storage SCP and (with REDIS_URL) a Celery worker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=os.environ.get("LIGHTBOX_WEB_BIND", "127.0.0.1:8000"))
        parser.add_argument(
            "--web-workers", type=int, default=None, help="web processes (default: two per core)"
        )

    def handle(self, *args: Any, bind: str, web_workers: int | None, **options: Any) -> None:
        python = sys.executable
        bin_dir = os.path.dirname(python)
        commands = {
            # Workers, threads and the access log's redaction: portal/gunicorn_conf.py.
            "web": [
                os.path.join(bin_dir, "gunicorn"),
                "--config",
                "python:portal.gunicorn_conf",
                "--bind",
                bind,
                *(["--workers", str(web_workers)] if web_workers else []),
            ],
            "scp": [python, "manage.py", "run_scp"],
        }
        if settings.REDIS_URL:
            commands["worker"] = [
                python,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--beat",
                "--schedule-filename",
                os.path.join(settings.VAR_DIR, "celerybeat-schedule"),
                "--loglevel",
                "INFO",
            ]
        processes = {name: subprocess.Popen(argv) for name, argv in commands.items()}

        demo_password = os.environ.get("LIGHTBOX_DEMO_PASSWORD", "lightbox-demo")
        self.stdout.write(
            self.style.SUCCESS("\nLightbox is running.\n")
            + f"  Web:          http://{bind}/\n"
            + f"  Admin:        http://{bind}/admin/\n"
            + f"  Storage SCP:  AE title {app_settings.SCP_AE_TITLE}, port {app_settings.SCP_PORT}\n"
            + f"  Patient:      patient@example.com / {demo_password}\n"
            + f"  Records staff: staff@example.com / {demo_password}\n"
            + f"  Tasks:        {'a Celery worker on Redis' if settings.REDIS_URL else 'run inline (no REDIS_URL)'}\n"
            + "Press Ctrl-C to stop.\n"
        )
        self.stdout.flush()

        def stop(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        try:
            while all(process.poll() is None for process in processes.values()):
                time.sleep(0.5)
            exited = [name for name, process in processes.items() if process.poll() is not None]
            self.stderr.write(f"{', '.join(exited)} exited; stopping the rest.")
        except KeyboardInterrupt:
            pass
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.terminate()
            for process in processes.values():
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
