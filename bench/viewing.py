"""Viewing benchmark (issue #3): Lightbox's web side by side with Orthanc's DICOMweb plugin.

One command loads the same synthetic CT into Orthanc (Debian's Orthanc + orthanc-dicomweb) and
into a production-configured Lightbox (gunicorn, PostgreSQL, Redis, a Celery worker, run_scp; both
receive it over DIMSE from dcmtk's storescu), then measures, in the same run:

* series metadata of the 500-instance series (median of ``--repeats``), and Lightbox's ratio;
* one frame (stored transfer syntax) as a viewer fetches them: every slice of the series once, in
  order, each request to Lightbox followed by the same to Orthanc (median of each); and the middle
  slice again and again (median of ``--repeats``), for reference;
* the study as a zip: Lightbox's PDI download against Orthanc's ``/studies/{id}/archive``;
* the first image and the whole stack in headless Chromium (Debian's, driven by Playwright) on
  Lightbox's viewer page, beside the time Orthanc needs to answer the same three requests
  (series search, series metadata, first frame) that a viewer makes before drawing;
* the study list and QIDO-RS at ``--clients`` concurrent clients (wrk) with ``--studies``
  synthetic studies in PostgreSQL: p50/p95/p99 latency, for a patient and for records staff;
* peak resident memory of a gunicorn worker while it streams a ``--big-gb`` study as a zip.

    .venv/bin/python bench/viewing.py [--instances 500] [--size 512] [--repeats 15]
        [--studies 100000] [--clients 32] [--big-gb 2] [--skip-browser]

Needs: dcmtk, orthanc, orthanc-dicomweb, wrk and chromium from Debian (apt-get install).
Everything it starts is stopped, and every database, Redis key and file it made is removed, on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402 - the path above makes bench importable
    CACHE_DIR,
    CELERY_WORKER,
    NODELAY_ENV,
    RUN_SCP,
    START_TIMEOUT,
    BenchError,
    Lab,
    benchmark_ct,
    echo_ok,
    free_port,
    ingest_state,
    listening_sockets,
    log_tail,
    process_tree,
    storescu_send,
    tree_cpu_seconds,
    wait_for,
    worker_ready,
)

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FRAME_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"
JSON_ACCEPT = "application/dicom+json"
PATIENT_EMAIL = "bench-patient@example.com"
STAFF_EMAIL = "bench-staff@example.com"


# --- HTTP ---------------------------------------------------------------------------------------


class Http:
    """One keep-alive connection, as a browser would hold, with an optional session cookie."""

    def __init__(self, port: int, cookie: str = "") -> None:
        self.port = port
        self.cookie = cookie
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def get(
        self, path: str, accept: str = "*/*", sink: Callable[[bytes], None] | None = None
    ) -> tuple[int, int]:
        """GET ``path``; returns the status and the number of body bytes (read, then dropped)."""
        headers = {"Accept": accept}
        if self.cookie:
            headers["Cookie"] = self.cookie
        try:
            self.connection.request("GET", path, headers=headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # The server closed the idle keep-alive connection (gunicorn after 2 s): reconnect,
            # as a browser would. Timings are of later, warm requests; the warm-up absorbs this.
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            self.connection.request("GET", path, headers=headers)
            response = self.connection.getresponse()
        size = 0
        while chunk := response.read(1 << 20):
            size += len(chunk)
            if sink is not None:
                sink(chunk)
        return response.status, size

    def timed(self, path: str, accept: str = "*/*") -> tuple[float, int]:
        started = time.perf_counter()
        status, size = self.get(path, accept)
        if status != 200:
            raise BenchError(f"GET {path} answered {status}")
        return time.perf_counter() - started, size

    def close(self) -> None:
        self.connection.close()


def median_of(repeats: int, run: Callable[[], float]) -> float:
    run()  # warm-up: connection, caches, the metadata prepared at ingest
    return statistics.median(run() for _ in range(repeats))


# --- The two servers ----------------------------------------------------------------------------


@dataclass
class Orthanc:
    dicom_port: int
    http_port: int
    pid: int

    def series_id(self) -> tuple[str, str]:
        studies = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/studies").read())
        study = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/studies/{studies[0]}").read()
        )
        return studies[0], study["Series"][0]


@contextlib.contextmanager
def orthanc(lab: Lab) -> Iterator[Orthanc]:
    if not DICOMWEB_PLUGIN.exists():
        raise BenchError(f"{DICOMWEB_PLUGIN} is missing: apt-get install orthanc-dicomweb")
    workdir = lab.workdir("orthanc")
    dicom_port, http_port = free_port(), free_port()
    config = {
        "Name": "lightbox-bench",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "DicomAet": "ORTHANC",
        "AuthenticationEnabled": False,
        "RemoteAccessAllowed": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (workdir / "orthanc.json").write_text(json.dumps(config, indent=2))
    process = lab.processes.start(
        ["/usr/sbin/Orthanc", workdir / "orthanc.json"],
        env={**os.environ, **NODELAY_ENV},
        log=workdir / "orthanc.log",
    )
    try:
        wait_for(
            lambda: echo_ok(dicom_port, "ORTHANC"), timeout=START_TIMEOUT, what="Orthanc", process=process
        )
        yield Orthanc(dicom_port, http_port, process.pid)
    except BenchError as exc:
        raise BenchError(f"{exc}\n{log_tail(workdir / 'orthanc.log')}") from None
    finally:
        lab.processes.stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Lightbox:
    scp_port: int
    http_port: int
    gunicorn_pid: int
    env: dict[str, str]
    db: Any

    def manage(self, *args: str, timeout: float = 600) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise BenchError(f"manage.py {args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return result.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code).strip()


@contextlib.contextmanager
def lightbox(lab: Lab) -> Iterator[Lightbox]:
    import psycopg

    workdir = lab.workdir("lightbox")
    database = lab.fresh_database()
    lab.redis.flushdb()
    scp_port, http_port = free_port(), free_port()
    env = {
        **lab.lightbox_env(database, workdir, (workdir / "objects").as_uri()),
        "LIGHTBOX_STATIC_ROOT": str(workdir / "static"),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        stack.callback(lab.drop_database, database)
        stack.callback(lab.redis.flushdb)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=300,
        )
        worker = lab.processes.start(
            [*CELERY_WORKER, "--concurrency", "2"], env=env, log=workdir / "celery.log"
        )
        stack.callback(lab.processes.stop, worker)
        scp = lab.processes.start([*RUN_SCP, "--port", str(scp_port)], env=env, log=workdir / "scp.log")
        stack.callback(lab.processes.stop, scp)
        web = lab.processes.start(
            [
                # As deployed: portal/gunicorn_conf.py (two workers per core).
                Path(sys.executable).with_name("gunicorn"),
                "--config",
                "python:portal.gunicorn_conf",
                "--bind",
                f"127.0.0.1:{http_port}",
            ],
            env=env,
            log=workdir / "web.log",
        )
        stack.callback(lab.processes.stop, web)
        try:
            wait_for(
                lambda: listening_sockets(scp_port) >= 1, timeout=START_TIMEOUT, what="run_scp", process=scp
            )
            wait_for(
                lambda: echo_ok(scp_port, "LIGHTBOX"), timeout=START_TIMEOUT, what="run_scp", process=scp
            )
            wait_for(
                lambda: listening_sockets(http_port) >= 1, timeout=START_TIMEOUT, what="gunicorn", process=web
            )
            wait_for(lambda: worker_ready(lab), timeout=START_TIMEOUT, what="celery worker", process=worker)
        except BenchError as exc:
            raise BenchError(
                f"{exc}\n{log_tail(workdir / 'scp.log')}\n{log_tail(workdir / 'web.log')}"
            ) from None
        db = stack.enter_context(
            psycopg.connect(f"postgres://postgres@127.0.0.1:5432/{database}", autocommit=True)
        )
        try:
            yield Lightbox(scp_port, http_port, web.pid, env, db)
        except BenchError as exc:
            raise BenchError(f"{exc}\n--- web.log\n{log_tail(workdir / 'web.log')}") from None


def wait_indexed(lab: Lab, server: Lightbox, expected: int) -> None:
    """Every instance indexed and thumbnailed, and every series' metadata prepared (the task that
    prepares it runs beside the thumbnail one; a short grace lets it finish)."""
    deadline = time.monotonic() + 900
    while True:
        state = ingest_state(server.db)
        if state.indexed >= expected and state.series and state.thumbnailed == state.series:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"Lightbox did not index the study: {state}")
        time.sleep(0.2)
    wait_for(
        lambda: not lab.redis.llen("celery") and not lab.redis.hlen("unacked"), timeout=300, what="task queue"
    )


LOGIN_CODE = """
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.conf import settings
from django.test import Client
from sharing.models import Patient, User

def session(email, role, patient_id=None):
    user, _ = User.objects.get_or_create(email=email, defaults={{"role": role}})
    EmailAddress.objects.get_or_create(user=user, email=email, defaults={{"verified": True, "primary": True}})
    if role != User.Role.PATIENT and not Authenticator.objects.filter(user=user).exists():
        TOTP.activate(user, generate_totp_secret())
    if patient_id:
        Patient.objects.filter(patient_id=patient_id).update(user=user)
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value

print(settings.SESSION_COOKIE_NAME + "=" + session("{patient}", User.Role.PATIENT, "{patient_id}"))
print(settings.SESSION_COOKIE_NAME + "=" + session("{staff}", User.Role.RECORDS))
"""


def sessions(server: Lightbox, patient_id: str) -> tuple[str, str]:
    """Session cookies of the patient who owns the benchmark CT, and of records staff (with TOTP)."""
    out = server.shell(LOGIN_CODE.format(patient=PATIENT_EMAIL, staff=STAFF_EMAIL, patient_id=patient_id))
    patient, staff = out.splitlines()[-2:]
    return patient, staff


# --- Measurements -------------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    lightbox: str
    orthanc: str
    ratio: str
    target: str
    verdict: str


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def compare_latency(what: str, lightbox_s: float, orthanc_s: float, *, at_most: float, target: str) -> Row:
    ratio = lightbox_s / orthanc_s
    return Row(
        what,
        fmt_ms(lightbox_s),
        fmt_ms(orthanc_s),
        f"{ratio:.2f}x",
        target,
        "PASS" if ratio <= at_most else "FAIL",
    )


def study_uids(server: Lightbox) -> tuple[str, str, list[str]]:
    row = server.db.execute(
        "select s.study_instance_uid, se.series_instance_uid from sharing_study s"
        " join sharing_series se on se.study_id = s.id where se.modality = 'CT' order by se.number_of_instances desc limit 1"
    ).fetchone()
    if row is None:
        raise BenchError("no CT series in Lightbox")
    sops = [
        r[0]
        for r in server.db.execute(
            "select sop_instance_uid from sharing_instance i join sharing_series se on se.id = i.series_id"
            " where se.series_instance_uid = %s order by instance_number",
            [row[1]],
        ).fetchall()
    ]
    return row[0], row[1], sops


def metadata_and_frames(
    server: Lightbox, pacs: Orthanc, cookie: str, repeats: int
) -> tuple[list[Row], dict[str, float]]:
    study, series, sops = study_uids(server)
    middle = sops[len(sops) // 2]
    ours, theirs = Http(server.http_port, cookie), Http(pacs.http_port)
    lb_series = f"/dicomweb/studies/{study}/series/{series}"
    or_series = f"/dicom-web/studies/{study}/series/{series}"
    try:
        lb_meta = median_of(repeats, lambda: ours.timed(f"{lb_series}/metadata", JSON_ACCEPT)[0])
        or_meta = median_of(repeats, lambda: theirs.timed(f"{or_series}/metadata", JSON_ACCEPT)[0])
        # Each slice once, the two servers in turn, so that whatever else the machine does falls
        # on both. Neither has served these frames before.
        lb_frames, or_frames = [], []
        for sop in sops:
            lb_frames.append(ours.timed(f"{lb_series}/instances/{sop}/frames/1", FRAME_ACCEPT)[0])
            or_frames.append(theirs.timed(f"{or_series}/instances/{sop}/frames/1", FRAME_ACCEPT)[0])
        lb_frame = median_of(
            repeats, lambda: ours.timed(f"{lb_series}/instances/{middle}/frames/1", FRAME_ACCEPT)[0]
        )
        or_frame = median_of(
            repeats, lambda: theirs.timed(f"{or_series}/instances/{middle}/frames/1", FRAME_ACCEPT)[0]
        )

        def first_image(client: Http, root: str) -> float:
            started = time.perf_counter()
            client.timed(f"{root}/studies/{study}/series", JSON_ACCEPT)
            client.timed(f"{root}/studies/{study}/series/{series}/metadata", JSON_ACCEPT)
            client.timed(f"{root}/studies/{study}/series/{series}/instances/{sops[0]}/frames/1", FRAME_ACCEPT)
            return time.perf_counter() - started

        lb_first = median_of(repeats, lambda: first_image(ours, "/dicomweb"))
        or_first = median_of(repeats, lambda: first_image(theirs, "/dicom-web"))
    finally:
        ours.close()
        theirs.close()
    rows = [
        compare_latency(
            f"series metadata ({len(sops)} instances)", lb_meta, or_meta, at_most=1 / 3, target="≤ 0.33x"
        ),
        compare_latency(
            f"one frame (stored syntax), each of {len(sops)} once",
            statistics.median(lb_frames),
            statistics.median(or_frames),
            at_most=1.0,
            target="≤ 1x",
        ),
        Row(
            "one frame, the same again (reference)",
            fmt_ms(lb_frame),
            fmt_ms(or_frame),
            f"{lb_frame / or_frame:.2f}x",
            "—",
            "",
        ),
        compare_latency("search + metadata + first frame", lb_first, or_first, at_most=1.0, target="≤ 1x"),
    ]
    return rows, {"first_requests": lb_first, "orthanc_metadata": or_meta}


def zip_rates(server: Lightbox, pacs: Orthanc, cookie: str) -> tuple[Row, float]:
    """The zip row, and Orthanc's time for its archive."""
    study, _series, _ = study_uids(server)
    orthanc_study, _ = pacs.series_id()
    ours, theirs = Http(server.http_port, cookie), Http(pacs.http_port)
    try:
        lb_time, lb_bytes = ours.timed(f"/studies/{study}/download", "application/zip")
        or_time, or_bytes = theirs.timed(f"/studies/{orthanc_study}/archive", "application/zip")
    finally:
        ours.close()
        theirs.close()
    lb_rate, or_rate = lb_bytes / lb_time / 1e6, or_bytes / or_time / 1e6
    ratio = lb_rate / or_rate
    row = Row(
        "study zip",
        f"{lb_time:.2f} s, {lb_rate:.0f} MB/s",
        f"{or_time:.2f} s, {or_rate:.0f} MB/s",
        f"{ratio:.1f}x the rate",
        "≥ 10x the rate",
        "PASS" if ratio >= 10 else "FAIL",
    )
    return row, or_time


# Orthanc's times for the 500-slice CT on the machine where issue #3's targets were set.
ISSUE_ORTHANC_METADATA_S = (0.23, 0.35)
ISSUE_ORTHANC_ARCHIVE_S = 16.3


def host_speed(orthanc_metadata_s: float, orthanc_archive_s: float) -> Row:
    """How this machine compares with the one the issue measured, by Orthanc's own times.

    The latency targets (first image < 1 s, p95 < 100 ms) are absolute: on a slower machine they
    mean less headroom for Lightbox and Orthanc alike, which this row makes visible.
    """
    low, high = ISSUE_ORTHANC_METADATA_S
    metadata = orthanc_metadata_s / ((low + high) / 2)
    archive = orthanc_archive_s / ISSUE_ORTHANC_ARCHIVE_S
    return Row(
        "host speed: Orthanc's metadata and archive times against the issue's"
        f" ({low:g}-{high:g} s, {ISSUE_ORTHANC_ARCHIVE_S:g} s)",
        "—",
        f"{fmt_ms(orthanc_metadata_s)}, {orthanc_archive_s:.1f} s",
        f"{metadata:.1f}x / {archive:.1f}x the issue's times",
        "—",
        "",
    )


def browser_first_image(server: Lightbox, cookie: str, *, runs: int = 3) -> list[Row]:
    """Lightbox's viewer page in headless Chromium: first image drawn, and the whole stack loaded.

    The viewer marks its root element ``data-first-image-ms`` and ``data-stack-loaded-ms`` (from the
    page's navigation start) once it has drawn the first image and loaded every image.
    """
    from playwright.sync_api import sync_playwright

    study, series, sops = study_uids(server)
    name, value = cookie.split("=", 1)
    firsts, stacks, timeline = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for _ in range(runs + 1):  # the first run warms the static files' cache of the server
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.add_cookies(
                    [{"name": name, "value": value, "url": f"http://127.0.0.1:{server.http_port}"}]
                )
                page = context.new_page()
                page.goto(f"http://127.0.0.1:{server.http_port}/studies/{study}/view?series={series}")
                page.wait_for_selector("[data-first-image-ms]", state="attached", timeout=60_000)
                page.wait_for_selector("[data-stack-loaded-ms]", state="attached", timeout=120_000)
                first = float(page.get_attribute("[data-first-image-ms]", "data-first-image-ms") or "nan")
                stack = float(page.get_attribute("[data-stack-loaded-ms]", "data-stack-loaded-ms") or "nan")
                firsts.append(first / 1000)
                stacks.append(stack / 1000)
                timeline.append(page.evaluate(RESOURCE_TIMELINE))
                context.close()
        finally:
            browser.close()
    first, stack = statistics.median(firsts[1:]), statistics.median(stacks[1:])
    print("  where the first image's time went (last run, ms since navigation start):")
    for line in timeline[-1]:
        print(f"    {line}")
    return [
        Row(
            f"viewer: first image ({len(sops)}-slice CT)",
            fmt_ms(first),
            "—",
            "—",
            "< 1 s",
            "PASS" if first < 1 else "FAIL",
        ),
        Row(
            "viewer: whole stack scrollable",
            fmt_ms(stack),
            "—",
            "—",
            "< 5 s",
            "PASS" if stack < 5 else "FAIL",
        ),
    ]


# The page's own milestones and the first requests it made, for the breakdown printed above.
RESOURCE_TIMELINE = r"""() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const lines = [`page HTML: ${Math.round(nav.responseEnd)}; DOMContentLoaded: ${Math.round(nav.domContentLoadedEventEnd)}`];
  const wanted = (e) => /viewer\.js|\/metadata|\/frames\/|\.wasm|\/series\?|worker/.test(e.name);
  performance.getEntriesByType('resource').filter(wanted).slice(0, 8).forEach((e) => {
    const name = e.name.replace(/^https?:\/\/[^/]+/, '').replace(/[0-9.]{20,}/g, '…');
    lines.push(`${name}: ${Math.round(e.startTime)} → ${Math.round(e.responseEnd)} (${Math.round(e.transferSize / 1024)} KB)`);
  });
  return lines;
}"""


# --- Many studies, many clients -------------------------------------------------------------------

SYNTHETIC_STUDIES_SQL = """
insert into sharing_patient (patient_id, issuer, name, birth_date, sex, created_at, updated_at)
select 'SYN-' || g, 'BENCH', 'SYNTHETIC^PATIENT' || g, date '1950-01-01' + (g %% 20000), 'O', now(), now()
from generate_series(1, %(patients)s) g;

insert into sharing_study (
    study_instance_uid, patient_id, study_date, study_time, accession_number, study_id, description,
    referring_physician, institution, modalities, body_parts, number_of_series, number_of_instances,
    size_bytes, has_report, source, is_outside, first_received_at, last_received_at, completed_at, created_at)
select '2.25.9' || g, p.id, date '2015-01-01' + (g %% 4000), '120000', 'ACC' || g, '1',
       (array['CT CHEST', 'MR BRAIN', 'CR CHEST', 'US ABDOMEN'])[1 + g %% 4], '', 'BENCH HOSPITAL',
       (array['CT', 'MR', 'CR', 'US'])[1 + g %% 4], 'CHEST', 1, 100, 52428800, g %% 3 = 0, 'dimse', false,
       now(), now() - (g || ' seconds')::interval, now(), now()
from generate_series(1, %(studies)s) g
join sharing_patient p on p.patient_id = 'SYN-' || (1 + g %% %(patients)s);
"""


def load_synthetic_studies(server: Lightbox, studies: int) -> None:
    for statement in SYNTHETIC_STUDIES_SQL.split(";"):
        if statement.strip():
            server.db.execute(statement, {"studies": studies, "patients": max(1, studies // 10)})
    # A steady state: without this, autovacuum visits the 100k new rows during the measurements,
    # and the checkpointer writes what the vacuum dirtied.
    server.db.execute("vacuum analyze")
    server.db.execute("checkpoint")


LOAD_RUNS = 3

WRK_SCRIPT = """
wrk.headers["Cookie"] = "{cookie}"
wrk.headers["Accept"] = "{accept}"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %.3f %.3f %.3f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""


@dataclass
class Load:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def wrk(port: int, path: str, *, cookie: str, accept: str, clients: int, seconds: int, workdir: Path) -> Load:
    if shutil.which("wrk") is None:
        raise BenchError("wrk is missing: apt-get install wrk")
    script = workdir / "wrk.lua"
    script.write_text(WRK_SCRIPT.format(cookie=cookie, accept=accept))
    result = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(clients),
            "-d",
            f"{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    line = next((line for line in result.stdout.splitlines() if line.startswith("RESULT ")), None)
    if line is None:
        raise BenchError(f"wrk printed no result:\n{result.stdout}\n{result.stderr}")
    requests, errors, duration, p50, p95, p99 = line.split()[1:]
    return Load(int(requests), int(errors), int(duration) / 1e6, float(p50), float(p95), float(p99))


def query_load(
    server: Lightbox, pacs: Orthanc, lab: Lab, *, patient: str, staff: str, clients: int, studies: int
) -> list[Row]:
    workdir = lab.workdir("wrk")
    cases = [
        ("study list (patient's library page)", server.http_port, "/", patient, "text/html"),
        ("QIDO studies, patient", server.http_port, "/dicomweb/studies?limit=25", patient, JSON_ACCEPT),
        (
            "QIDO studies, staff, date range",
            server.http_port,
            "/dicomweb/studies?StudyDate=20200101-20200131&limit=25",
            staff,
            JSON_ACCEPT,
        ),
        (
            "QIDO studies, staff, name prefix",
            server.http_port,
            "/dicomweb/studies?PatientName=SYNTHETIC%5EPATIENT12*&limit=25",
            staff,
            JSON_ACCEPT,
        ),
    ]
    rows = []
    for what, port, path, cookie, accept in cases:
        # Warm-up, not measured: every worker thread's database connection, templates, caches.
        wrk(port, path, cookie=cookie, accept=accept, clients=clients, seconds=3, workdir=workdir)
        cpu_before = tree_cpu_seconds(server.gunicorn_pid)
        # Three runs, each with new connections: on two shared cores one run is one draw. The run
        # with the median p95 is reported, with the other two p95s beside it.
        runs = sorted(
            (
                wrk(port, path, cookie=cookie, accept=accept, clients=clients, seconds=10, workdir=workdir)
                for _ in range(LOAD_RUNS)
            ),
            key=lambda run: run.p95_ms,
        )
        load = runs[len(runs) // 2]
        requests, errors = sum(run.requests for run in runs), sum(run.errors for run in runs)
        # What the web process spends per request: unlike latency, it does not depend on what
        # else the machine's two cores are doing (wrk, PostgreSQL, Redis).
        cpu_ms = (tree_cpu_seconds(server.gunicorn_pid) - cpu_before) * 1000 / max(1, requests)
        spread = "/".join(f"{run.p95_ms:.0f}" for run in runs)
        rows.append(
            Row(
                f"{what}, {clients} clients, {studies:,} studies",
                f"p50 {load.p50_ms:.0f} / p95 {load.p95_ms:.0f} (runs {spread}) / p99 {load.p99_ms:.0f} ms"
                f", {load.requests / load.seconds:.0f} req/s, {cpu_ms:.1f} ms CPU/req"
                + (f", {errors} errors" if errors else ""),
                "—",
                "—",
                "p95 < 100 ms",
                "PASS" if load.p95_ms < 100 and not errors else "FAIL",
            )
        )
    reference = wrk(
        pacs.http_port,
        "/dicom-web/studies?limit=25",
        cookie="",
        accept=JSON_ACCEPT,
        clients=clients,
        seconds=15,
        workdir=workdir,
    )
    rows.append(
        Row(
            f"reference: Orthanc QIDO studies, {clients} clients, 1 study",
            "—",
            f"p50 {reference.p50_ms:.0f} / p95 {reference.p95_ms:.0f} ms, {reference.requests / reference.seconds:.0f} req/s",
            "—",
            "—",
            "",
        )
    )
    return rows


# --- A big study's zip and the web process's memory --------------------------------------------------


def big_study(gigabytes: float) -> list[Path]:
    """Multi-frame colour cines of ~128 MB each, generated once into bench/.cache."""
    count = max(1, round(gigabytes * 1024 / 128))
    directory = CACHE_DIR / f"big-{count}x128MB"
    marker = directory / ".complete"
    if not marker.exists():
        print(f"generating {count} x 128 MB cines into {directory} …", flush=True)
        from sharing.dicom.synthetic import SyntheticPatient, us_multiframe, write_study

        shutil.rmtree(directory, ignore_errors=True)
        patient = SyntheticPatient(patient_id="BENCH-BIG", name="BENCH^BIG")
        first = us_multiframe(patient, frames=145, rows=480, cols=640)
        study_uid = str(first[0].StudyInstanceUID)
        datasets = list(first)
        for _ in range(count - 1):
            datasets += us_multiframe(patient, frames=145, rows=480, cols=640, study_uid=study_uid)
        write_study(datasets, directory)
        marker.write_text(f"{count} x 128 MB US cine\n")
    return sorted(directory.glob("*.dcm"))


def worker_rss_mb(gunicorn_pid: int) -> float:
    """The largest resident set among gunicorn's workers (the master never serves a request)."""
    largest = 0
    for pid in process_tree(gunicorn_pid):
        if pid == gunicorn_pid:
            continue
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    largest = max(largest, int(line.split()[1]))
    return largest / 1024


def big_zip_memory(lab: Lab, server: Lightbox, cookie: str, gigabytes: float) -> Row:
    files = big_study(gigabytes)
    before = ingest_state(server.db).indexed
    storescu_send(
        files, port=server.scp_port, called_ae="LIGHTBOX", associations=1, workdir=lab.workdir("big-send")
    )
    wait_indexed(lab, server, before + len(files))
    row = server.db.execute(
        "select study_instance_uid, size_bytes from sharing_study where patient_id ="
        " (select id from sharing_patient where patient_id = 'BENCH-BIG')"
    ).fetchone()
    if row is None:
        raise BenchError("the big study was not indexed")
    server.shell(
        "from sharing.models import Patient, User; "
        f"Patient.objects.filter(patient_id='BENCH-BIG').update(user=User.objects.get(email='{PATIENT_EMAIL}'))"
    )
    peak, stop = [0.0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], worker_rss_mb(server.gunicorn_pid))

    baseline = worker_rss_mb(server.gunicorn_pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    client = Http(server.http_port, cookie)
    try:
        seconds, size = client.timed(f"/studies/{row[0]}/download", "application/zip")
    finally:
        stop.set()
        sampler.join()
        client.close()
    return Row(
        f"zip of a {row[1] / 1e9:.1f} GB study: worker peak RSS",
        f"{peak[0]:.0f} MB (idle {baseline:.0f} MB), {size / seconds / 1e6:.0f} MB/s",
        "—",
        "—",
        "< 150 MB",
        "PASS" if peak[0] < 150 else "FAIL",
    )


# --- Main ---------------------------------------------------------------------------------------


def table(rows: Sequence[Row]) -> str:
    header = Row("measure", "Lightbox", "Orthanc", "ratio", "target", "")
    cells = [header, *rows]
    widths = [
        max(len(getattr(r, f)) for r in cells)
        for f in ("what", "lightbox", "orthanc", "ratio", "target", "verdict")
    ]
    lines = []
    for index, r in enumerate(cells):
        values = [r.what, r.lightbox, r.orthanc, r.ratio, r.target, r.verdict]
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |")
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--studies", type=int, default=100_000, help="synthetic studies for the query load (0: skip)"
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--big-gb", type=float, default=2.0, help="size of the big study for the memory check (0: skip)"
    )
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    files = benchmark_ct(args.instances, args.size)
    lab = Lab(redis_db=args.redis_db, index_timeout=900, verbose=args.verbose)
    rows: list[Row] = []
    try:
        with orthanc(lab) as pacs, lightbox(lab) as server:
            print(f"sending {len(files)} instances to Orthanc and to Lightbox …", flush=True)
            storescu_send(
                files,
                port=pacs.dicom_port,
                called_ae="ORTHANC",
                associations=1,
                workdir=lab.workdir("send-o"),
            )
            storescu_send(
                files,
                port=server.scp_port,
                called_ae="LIGHTBOX",
                associations=1,
                workdir=lab.workdir("send-l"),
            )
            wait_indexed(lab, server, len(files))
            patient, staff = sessions(server, "BENCH-INGEST")
            print("measuring metadata, frames and the first requests …", flush=True)
            measured, timings = metadata_and_frames(server, pacs, patient, args.repeats)
            rows += measured
            print("measuring the study zip …", flush=True)
            zipped, orthanc_archive = zip_rates(server, pacs, patient)
            rows.append(zipped)
            if (args.instances, args.size) == (500, 512):  # the issue's data set
                rows.append(host_speed(timings["orthanc_metadata"], orthanc_archive))
            if not args.skip_browser:
                print("measuring the viewer in Chromium …", flush=True)
                rows += browser_first_image(server, patient)
            if args.studies:
                print(
                    f"loading {args.studies:,} synthetic studies and measuring queries under load …",
                    flush=True,
                )
                load_synthetic_studies(server, args.studies)
                rows += query_load(
                    server,
                    pacs,
                    lab,
                    patient=patient,
                    staff=staff,
                    clients=args.clients,
                    studies=args.studies,
                )
            if args.big_gb:
                print(f"streaming a {args.big_gb:g} GB study …", flush=True)
                rows.append(big_zip_memory(lab, server, patient, args.big_gb))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        lab.close()
    print()
    print(table(rows))
    return 0 if all(row.verdict != "FAIL" for row in rows) else 2


if __name__ == "__main__":
    raise SystemExit(main())
