"""Ingest benchmark (issue #2): Lightbox's Storage SCP side by side with Orthanc and dcmtk.

One command generates (or reuses) a synthetic CT, sends it with dcmtk's ``storescu`` to every
receiver on one association and on four concurrent associations, and prints a table of wall
times, throughput, Lightbox's ratio to Orthanc and dcmtk, the time from the last association
release until the study is indexed and thumbnailed, and the SCP's resident memory.

    .venv/bin/python bench/ingest.py [--instances 500] [--size 512] [--runs 3] [--s3]

Receivers (each started fresh for every case and stopped afterwards):

* ``dcmtk``    - Debian's ``storescp --fork`` writing Part-10 files to a temporary directory;
* ``orthanc``  - Debian's Orthanc with its default SQLite index and disk storage;
* ``lightbox`` - ``manage.py run_scp`` on PostgreSQL (a fresh database per case), Redis and a
  Celery worker, objects on local disk;
* ``lightbox-s3`` - the same with the object store on moto's S3 server (``--s3``).

Everything runs on loopback, every wait is bounded, and every process, temporary directory,
database and Redis key the benchmark made is removed on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "bench" / ".cache"
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
# dcmtk and Orthanc otherwise wait for delayed ACKs (~40 ms per instance); Lightbox gets it too.
NODELAY_ENV = {"TCP_NODELAY": "1"}
SEND_TIMEOUT = 600.0
CELERY_WORKER = [sys.executable, "-m", "celery", "-A", "portal", "worker", "--loglevel", "WARNING"]
RUN_SCP = [sys.executable, "manage.py", "run_scp", "--host", "127.0.0.1", "--ae-title", "LIGHTBOX"]
START_TIMEOUT = 60.0

LIGHTBOX, LIGHTBOX_S3, ORTHANC, DCMTK = "lightbox", "lightbox-s3", "orthanc", "dcmtk"
LABELS = {
    DCMTK: "dcmtk storescp --fork",
    ORTHANC: "Orthanc (SQLite, disk)",
    LIGHTBOX: "Lightbox (PG, Redis, disk)",
    LIGHTBOX_S3: "Lightbox (PG, Redis, S3/moto)",
}


class BenchError(Exception):
    """A receiver did not start, a send failed or a wait ran out of time."""


# --- Child processes --------------------------------------------------------------------------


class Processes:
    """Every child the benchmark starts, each in its own process group so it can be stopped whole."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []

    def start(
        self, args: Sequence[str | Path], *, env: dict[str, str], log: Path, cwd: Path = ROOT
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as handle:
            process = subprocess.Popen(
                [str(arg) for arg in args],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
        """SIGTERM the process, then SIGKILL whatever is left of its group after ``grace`` seconds."""
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # the group is ours: pool children, forked SCPs
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.running)):
            self.stop(process, grace=5.0)


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_port() -> int:
    """A port free on every interface (storescp and Orthanc 1.10 cannot bind to loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


def listening_sockets(port: int) -> int:
    """How many sockets listen on ``port`` (several with SO_REUSEPORT), from /proc/net/tcp*."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def wait_for(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process is not None and process.poll() is not None:
            raise BenchError(f"{what}: the process exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(0.1)


def echo_ok(port: int, called_ae: str) -> bool:
    result = subprocess.run(
        ["echoscu", "-to", "2", "-ta", "5", "-aec", called_ae, "127.0.0.1", str(port)],
        env={**os.environ, **NODELAY_ENV},
        capture_output=True,
        timeout=15,
        check=False,
    )
    return result.returncode == 0


# --- Memory and CPU time ----------------------------------------------------------------------


def process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and all its descendants, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


@dataclass(frozen=True)
class Memory:
    rss_mb: float  # sum of VmRSS over the tree (forked processes' shared pages counted twice)
    peak_mb: float  # sum of VmHWM (each process's high-water mark)


def tree_memory(root_pid: int) -> Memory:
    rss = peak = 0
    for pid in process_tree(root_pid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak += int(line.split()[1])
    return Memory(rss_mb=rss / 1024, peak_mb=peak / 1024)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU time (user + system) of ``root_pid``, its descendants and the children they reaped."""
    ticks = 0
    for pid in process_tree(root_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return ticks / CLOCK_TICKS


def host_busy_seconds() -> float:
    """CPU-seconds the whole machine has spent busy (not idle, not waiting for I/O) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLOCK_TICKS


# --- The benchmark CT -------------------------------------------------------------------------


def benchmark_ct(instances: int, size: int) -> list[Path]:
    """The synthetic CT as Part-10 files, generated once into bench/.cache and reused."""
    directory = CACHE_DIR / f"ct-{instances}x{size}"
    marker = directory / ".complete"
    if not marker.exists():
        print(f"generating a {instances}-slice {size}x{size} CT into {directory} …", flush=True)
        sys.path.insert(0, str(ROOT))
        from sharing.dicom.synthetic import SyntheticPatient, ct_series, write_study

        shutil.rmtree(directory, ignore_errors=True)
        patient = SyntheticPatient(patient_id="BENCH-INGEST", name="BENCH^INGEST")
        write_study(ct_series(patient, slices=instances, size=size), directory)
        marker.write_text(f"{instances} x {size}x{size} CT, explicit VR little endian\n")
    files = sorted(directory.glob("*.dcm"))
    if len(files) != instances:
        raise BenchError(f"{directory} holds {len(files)} files, not {instances}: delete it and rerun")
    return files


def split(files: Sequence[Path], groups: int) -> list[list[Path]]:
    """Contiguous groups of near-equal size, as a sender splitting a series over associations would."""
    bounds = [round(i * len(files) / groups) for i in range(groups + 1)]
    return [list(files[bounds[i] : bounds[i + 1]]) for i in range(groups)]


def storescu_send(
    files: Sequence[Path],
    *,
    port: int,
    called_ae: str,
    associations: int,
    workdir: Path,
    extra: Sequence[str] = (),
) -> float:
    """Send ``files`` over ``associations`` concurrent storescu processes; the wall time in seconds."""
    base = ["storescu", "-aet", "BENCHSCU", "-aec", called_ae, "-xe", "-to", "10", "-ta", "30", *extra]
    env = {**os.environ, **NODELAY_ENV}
    logs = [workdir / f"storescu-{i}.log" for i in range(associations)]
    handles = [log.open("wb") for log in logs]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [*base, "127.0.0.1", str(port), *map(str, group)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for group, handle in zip(split(files, associations), handles, strict=True)
    ]
    try:
        deadline = started + SEND_TIMEOUT
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.perf_counter()))
        elapsed = time.perf_counter() - started
    except subprocess.TimeoutExpired:
        raise BenchError(f"storescu did not finish within {SEND_TIMEOUT:.0f} s") from None
    finally:
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for handle in handles:
            handle.close()
    failed = [(i, p.returncode) for i, p in enumerate(processes) if p.returncode != 0]
    if failed:
        index, code = failed[0]
        raise BenchError(f"storescu #{index} exited with {code}:\n{log_tail(logs[index])}")
    return elapsed


# --- Results ----------------------------------------------------------------------------------


@dataclass
class Measurement:
    receiver: str
    associations: int
    processes: int
    instances: int
    seconds: float
    stored: int  # instances the receiver reports having stored
    syntax_ok: bool = True
    ingest_seconds: float | None = None  # release -> all indexed and every series thumbnailed
    ingest_note: str = ""
    queued_at_release: int = 0  # Celery tasks waiting in Redis when the last association ended
    receiver_cpu_s: float = 0.0  # the receiver's process tree, send start -> ingest done
    worker_cpu_s: float = 0.0  # Lightbox's Celery worker, same window
    host_busy_pct: float = 0.0  # whole machine (storescu included) during the send
    rss_start_mb: float | None = None
    rss_end_mb: float | None = None
    peak_mb: float | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.receiver, self.associations, self.processes)


@dataclass
class Summary:
    receiver: str
    associations: int
    processes: int
    instances: int
    runs: list[Measurement] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(m.seconds for m in self.runs)

    @property
    def rate(self) -> float:
        return self.instances / self.seconds

    @property
    def complete(self) -> bool:
        return all(m.stored == m.instances and m.syntax_ok for m in self.runs)

    def ingest(self) -> str:
        if not self.receiver.startswith(LIGHTBOX):
            return "-"
        values = [m.ingest_seconds for m in self.runs]
        if all(v is not None for v in values):
            return f"{statistics.median(v for v in values if v is not None):.1f} s"
        notes = sorted({m.ingest_note for m in self.runs if m.ingest_seconds is None})
        return "NOT DONE: " + "; ".join(notes)

    def cpu(self) -> str:
        receiver = statistics.median(1000 * m.receiver_cpu_s / m.instances for m in self.runs)
        host = statistics.median(m.host_busy_pct for m in self.runs)
        if not self.receiver.startswith(LIGHTBOX):
            return f"{receiver:.1f} ({host:.0f}%)"
        worker = statistics.median(1000 * m.worker_cpu_s / m.instances for m in self.runs)
        return f"{receiver:.1f} + {worker:.1f} ({host:.0f}%)"

    def memory(self) -> str:
        starts = [m.rss_start_mb for m in self.runs if m.rss_start_mb is not None]
        ends = [m.rss_end_mb for m in self.runs if m.rss_end_mb is not None]
        peaks = [m.peak_mb for m in self.runs if m.peak_mb is not None]
        if not (starts and ends and peaks):
            return "-"
        return f"{statistics.median(starts):.0f} → {statistics.median(ends):.0f} (peak {max(peaks):.0f})"


def summarise(measurements: Sequence[Measurement]) -> list[Summary]:
    summaries: dict[tuple[str, int, int], Summary] = {}
    for m in measurements:
        summary = summaries.setdefault(m.key, Summary(m.receiver, m.associations, m.processes, m.instances))
        summary.runs.append(m)
    order = [DCMTK, ORTHANC, LIGHTBOX, LIGHTBOX_S3]
    return sorted(summaries.values(), key=lambda s: (order.index(s.receiver), s.associations, s.processes))


def table(summaries: Sequence[Summary]) -> str:
    reference = {(s.receiver, s.associations): s.rate for s in summaries if s.receiver in (ORTHANC, DCMTK)}
    header = [
        "receiver",
        "assoc.",
        "SCP procs",
        "seconds",
        "inst/s",
        "x Orthanc",
        "x dcmtk",
        "CPU ms/inst: SCP + worker (host busy)",
        "indexed + thumbnailed after release",
        "SCP RSS MB start → end (peak)",
    ]
    rows = []
    for s in summaries:

        def ratio(other: str, s: Summary = s) -> str:
            base = reference.get((other, s.associations))
            return f"{s.rate / base:.2f}x" if base and s.receiver.startswith(LIGHTBOX) else "-"

        rate = f"{s.rate:.0f}" + ("" if s.complete else " (INCOMPLETE)")
        rows.append(
            [
                LABELS[s.receiver],
                str(s.associations),
                str(s.processes) if s.receiver.startswith(LIGHTBOX) else "-",
                f"{s.seconds:.2f}",
                rate,
                ratio(ORTHANC),
                ratio(DCMTK),
                s.cpu(),
                s.ingest(),
                s.memory(),
            ]
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(header), separator, *(line(row) for row in rows)])


def verdicts(summaries: Sequence[Summary], soak_rounds: Sequence[SoakRound]) -> list[str]:
    """Issue #2's targets, each with the figure it is judged on."""
    lines = []
    rates = {(s.receiver, s.associations, s.processes): s.rate for s in summaries}
    for associations in (1, 4):
        orthanc = rates.get((ORTHANC, associations, 1))
        ours = [rate for (r, a, _), rate in rates.items() if r == LIGHTBOX and a == associations]
        if orthanc and ours:
            ratio = max(ours) / orthanc
            verdict = "met" if ratio >= 1.0 else "MISSED"
            lines.append(
                f"Lightbox >= 1.0x Orthanc on {associations} association(s): {ratio:.2f}x "
                f"({max(ours):.0f} vs {orthanc:.0f} inst/s) - {verdict}"
            )
    latencies = [m.ingest_seconds for s in summaries if s.receiver == LIGHTBOX for m in s.runs]
    if latencies:
        worst = None if any(v is None for v in latencies) else max(v for v in latencies if v is not None)
        verdict = "met" if worst is not None and worst <= 5.0 else "MISSED"
        shown = f"{worst:.1f} s" if worst is not None else "not reached"
        lines.append(f"indexed + thumbnailed <= 5 s after release (worst disk run): {shown} - {verdict}")
    if len(soak_rounds) >= 2:
        first, last = soak_rounds[0].rss_mb, soak_rounds[-1].rss_mb
        growth = (last - first) / first
        verdict = "flat" if growth < 0.10 else "GROWING"
        lines.append(
            f"SCP RSS after round 1 -> round {len(soak_rounds)}: {first:.0f} -> {last:.0f} MB "
            f"({100 * growth:+.1f}%; flat means < +10%) - {verdict}"
        )
    return lines


# --- Shared infrastructure: PostgreSQL, Redis -------------------------------------------------


class Lab:
    """What every case shares: the child processes, a scratch directory, PostgreSQL and Redis."""

    def __init__(self, *, redis_db: int, index_timeout: float, verbose: bool) -> None:
        import psycopg
        import redis

        self.redis_url = f"redis://127.0.0.1:6379/{redis_db}"
        self.redis = redis.Redis.from_url(self.redis_url)
        if self.redis.dbsize():
            raise BenchError(
                f"Redis database {redis_db} is not empty: pick a free one with --redis-db "
                f"(or empty it with `redis-cli -n {redis_db} flushdb` if it is a leftover of this benchmark)"
            )
        self.pg = psycopg.connect(PG_ADMIN_URL, autocommit=True)
        self.processes = Processes()
        self.scratch = Path(tempfile.mkdtemp(prefix="lightbox-bench-"))
        self.index_timeout = index_timeout
        self.verbose = verbose
        self.prefix = f"lbbench_{os.getpid()}"
        self.databases: list[str] = []
        self.template: str | None = None
        self.counter = 0

    def workdir(self, name: str) -> Path:
        self.counter += 1
        path = self.scratch / f"{self.counter:03d}-{name}"
        path.mkdir()
        return path

    def close(self) -> None:
        self.processes.stop_all()
        for name in reversed(self.databases):
            with contextlib.suppress(Exception):
                self.pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(Exception):
            self.pg.close()
        with contextlib.suppress(Exception):
            self.redis.flushdb()  # ours: it was empty when we started
        shutil.rmtree(self.scratch, ignore_errors=True)

    # PostgreSQL: migrate once into a template, then clone it for each case (much faster).
    def lightbox_env(self, database: str, var_dir: Path, object_store: str) -> dict[str, str]:
        return {
            **os.environ,
            **NODELAY_ENV,
            # Production settings, as a hospital would run it (DEBUG off: no per-query bookkeeping),
            # whatever the shell running the benchmark has exported.
            "DJANGO_SETTINGS_MODULE": "portal.settings.prod",
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-secret-key-" + "x" * 32),
            "LIGHTBOX_HTTPS": "false",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
            "REDIS_URL": self.redis_url,
            "LIGHTBOX_VAR_DIR": str(var_dir),
            "LIGHTBOX_OBJECT_STORE": object_store,
            "LIGHTBOX_TEMP_DIR": str(var_dir / "tmp"),
            "PYTHONUNBUFFERED": "1",
        }

    def fresh_database(self) -> str:
        if self.template is None:
            template = f"{self.prefix}_template"
            self.pg.execute(f'CREATE DATABASE "{template}"')
            self.databases.append(template)
            workdir = self.workdir("migrate")
            env = self.lightbox_env(template, workdir, (workdir / "objects").as_uri())
            result = subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if result.returncode != 0:
                raise BenchError(f"migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
            self.template = template
        name = f"{self.prefix}_{self.counter}_{len(self.databases)}"
        self.pg.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.databases.append(name)
        return name

    def drop_database(self, name: str) -> None:
        self.pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.databases.remove(name)


# --- Receivers --------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A started receiver: where to send, and how to ask it what it stored."""

    port: int
    ae_title: str
    pid: int  # the receiving process: its tree's CPU time is measured
    stored: Callable[[], int]
    syntax_ok: Callable[[], bool] = lambda: True
    scp_pid: int | None = None  # Lightbox only (memory is reported for it)
    worker_pid: int | None = None
    ingest_state: Callable[[], IngestState] | None = None


@contextlib.contextmanager
def dcmtk_receiver(lab: Lab) -> Iterator[Receiver]:
    workdir = lab.workdir("dcmtk")
    output = workdir / "received"
    output.mkdir()
    port = free_port()
    process = lab.processes.start(
        ["storescp", "--fork", "-aet", "STORESCP", "-od", output, str(port)],
        env={**os.environ, **NODELAY_ENV},
        log=workdir / "storescp.log",
    )
    try:
        wait_for(lambda: echo_ok(port, "STORESCP"), timeout=START_TIMEOUT, what="storescp", process=process)

        def syntax_ok() -> bool:
            import pydicom

            first = next(output.iterdir(), None)
            if first is None:
                return False
            return str(pydicom.dcmread(first, stop_before_pixels=True).file_meta.TransferSyntaxUID) == (
                EXPLICIT_VR_LE
            )

        yield Receiver(
            port,
            "STORESCP",
            process.pid,
            stored=lambda: sum(1 for _ in output.iterdir()),
            syntax_ok=syntax_ok,
        )
    finally:
        lab.processes.stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def _http_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def orthanc_receiver(lab: Lab) -> Iterator[Receiver]:
    binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    workdir = lab.workdir("orthanc")
    port, http_port = free_port(), free_port()
    config = {
        "Name": "lightbox-bench",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "DicomPort": port,
        "HttpPort": http_port,
        "DicomAet": "ORTHANC",
        "AuthenticationEnabled": False,
        "RemoteAccessAllowed": False,
        "Plugins": [],
    }
    (workdir / "orthanc.json").write_text(json.dumps(config, indent=2))
    process = lab.processes.start(
        [binary, workdir / "orthanc.json"], env={**os.environ, **NODELAY_ENV}, log=workdir / "orthanc.log"
    )
    base = f"http://127.0.0.1:{http_port}"

    def http_up() -> bool:
        try:
            _http_json(base + "/system", timeout=2)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return True

    def syntax_ok() -> bool:
        first = _http_json(base + "/instances?since=0&limit=1")
        if not first:
            return False
        syntax = urllib.request.urlopen(f"{base}/instances/{first[0]}/metadata/TransferSyntax", timeout=10)
        return bool(syntax.read().decode().strip() == EXPLICIT_VR_LE)

    try:
        wait_for(http_up, timeout=START_TIMEOUT, what="Orthanc", process=process)
        wait_for(lambda: echo_ok(port, "ORTHANC"), timeout=START_TIMEOUT, what="Orthanc", process=process)
        yield Receiver(
            port,
            "ORTHANC",
            process.pid,
            stored=lambda: int(_http_json(base + "/statistics")["CountInstances"]),
            syntax_ok=syntax_ok,
        )
    except BenchError as exc:
        raise BenchError(f"{exc}\n{log_tail(workdir / 'orthanc.log')}") from None
    finally:
        lab.processes.stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def moto_server(lab: Lab, workdir: Path) -> Iterator[dict[str, str]]:
    """moto's S3 server on a free loopback port; yields the AWS_* variables that point boto3 at it."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    process = lab.processes.start(
        [moto, "-H", "127.0.0.1", "-p", str(port)], env=dict(os.environ), log=workdir / "moto.log"
    )
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
    }

    def up() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return True

    try:
        wait_for(up, timeout=START_TIMEOUT, what="moto_server", process=process)
        yield aws
    finally:
        lab.processes.stop(process)


@contextlib.contextmanager
def lightbox_receiver(lab: Lab, *, processes: int, s3: bool) -> Iterator[Receiver]:
    """run_scp with ``processes`` processes and one Celery worker, on a fresh database and store."""
    import psycopg

    workdir = lab.workdir("lightbox-s3" if s3 else "lightbox")
    database = lab.fresh_database()
    lab.redis.flushdb()
    port = free_port()
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        stack.callback(lab.drop_database, database)
        stack.callback(lab.redis.flushdb)
        if s3:
            aws = stack.enter_context(moto_server(lab, workdir))
            env = {**lab.lightbox_env(database, workdir, "s3://lightbox-bench"), **aws}
            subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "shell",
                    "-c",
                    "from sharing.storage import get_store; get_store().ensure_ready()",
                ],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                timeout=120,
            )
        else:
            env = lab.lightbox_env(database, workdir, (workdir / "objects").as_uri())
        worker = lab.processes.start(
            [*CELERY_WORKER, "--concurrency", "2"],
            env=env,
            log=workdir / "celery.log",
        )
        stack.callback(lab.processes.stop, worker)
        scp = lab.processes.start(
            [*RUN_SCP, "--port", str(port), "--processes", str(processes)],
            env=env,
            log=workdir / "scp.log",
        )
        stack.callback(lab.processes.stop, scp)
        try:
            wait_for(
                lambda: listening_sockets(port) >= processes,
                timeout=START_TIMEOUT,
                what="run_scp",
                process=scp,
            )
            wait_for(lambda: echo_ok(port, "LIGHTBOX"), timeout=START_TIMEOUT, what="run_scp", process=scp)
            wait_for(lambda: worker_ready(lab), timeout=START_TIMEOUT, what="celery worker", process=worker)
        except BenchError as exc:
            raise BenchError(
                f"{exc}\n--- scp.log\n{log_tail(workdir / 'scp.log')}"
                f"\n--- celery.log\n{log_tail(workdir / 'celery.log')}"
            ) from None
        db = stack.enter_context(
            psycopg.connect(f"postgres://postgres@127.0.0.1:5432/{database}", autocommit=True)
        )

        def stored() -> int:
            row = db.execute("select count(*) from sharing_instance").fetchone()
            return int(row[0]) if row else 0

        def syntax_ok() -> bool:
            rows = db.execute("select distinct transfer_syntax_uid from sharing_instance").fetchall()
            return [r[0] for r in rows] == [EXPLICIT_VR_LE]

        receiver = Receiver(
            port,
            "LIGHTBOX",
            scp.pid,
            stored=stored,
            syntax_ok=syntax_ok,
            scp_pid=scp.pid,
            worker_pid=worker.pid,
            ingest_state=lambda: ingest_state(db),
        )
        try:
            yield receiver
        except BenchError as exc:
            raise BenchError(
                f"{exc}\n--- scp.log\n{log_tail(workdir / 'scp.log')}"
                f"\n--- celery.log\n{log_tail(workdir / 'celery.log')}"
            ) from None
        finally:
            if lab.verbose:
                print(f"--- {workdir.name} celery.log\n{log_tail(workdir / 'celery.log', 8)}")


def worker_ready(lab: Lab) -> bool:
    """The worker answers a broadcast ping (its remote-control mailbox is consuming)."""
    from celery import Celery

    app = Celery(broker=lab.redis_url)
    try:
        return bool(app.control.ping(timeout=0.5))
    finally:
        app.close()


@dataclass(frozen=True)
class IngestState:
    indexed: int
    series: int
    thumbnailed: int


def ingest_state(db: Any) -> IngestState:
    """Indexed instances, series, and series with a thumbnail, from a psycopg connection."""
    row = db.execute(
        "select (select count(*) from sharing_instance where state = 'indexed'),"
        " (select count(*) from sharing_series),"
        " (select count(*) from sharing_series where thumbnail_key <> '')"
    ).fetchone()
    assert row is not None
    return IngestState(*map(int, row))


def wait_ingested(
    lab: Lab, ingest_state: Callable[[], IngestState], expected: int, released: float
) -> tuple[float | None, str]:
    """Seconds from ``released`` until ``expected`` instances are indexed and every series has a thumbnail.

    Gives up at ``--index-timeout``, or sooner once the Celery queue is drained with nothing in
    flight and nothing has changed for 3 s (the tasks failed: see the worker's log).
    """
    deadline = released + lab.index_timeout
    last, last_change = None, time.perf_counter()
    while True:
        state = ingest_state()
        now = time.perf_counter()
        if state.indexed >= expected and state.series and state.thumbnailed == state.series:
            return now - released, ""
        if state != last:
            last, last_change = state, now
        idle = not lab.redis.llen("celery") and not lab.redis.hlen("unacked")
        note = f"{state.indexed}/{expected} indexed, {state.thumbnailed}/{state.series} series thumbnailed"
        if idle and now - last_change > 3.0:
            return None, f"{note}; task queue drained"
        if now > deadline:
            return None, f"{note} after {lab.index_timeout:.0f} s"
        time.sleep(0.05)


# --- Cases ------------------------------------------------------------------------------------


def run_case(
    lab: Lab, receiver_name: str, files: Sequence[Path], associations: int, processes: int
) -> Measurement:
    os.sync()  # start each case with no dirty pages of the previous one still being written back
    n = len(files)
    if receiver_name == DCMTK:
        context: contextlib.AbstractContextManager[Receiver] = dcmtk_receiver(lab)
    elif receiver_name == ORTHANC:
        context = orthanc_receiver(lab)
    else:
        context = lightbox_receiver(lab, processes=processes, s3=receiver_name == LIGHTBOX_S3)
    with context as receiver:
        workdir = lab.workdir("send")
        start_memory = tree_memory(receiver.scp_pid) if receiver.scp_pid else None
        cpu_before = tree_cpu_seconds(receiver.pid)
        worker_before = tree_cpu_seconds(receiver.worker_pid) if receiver.worker_pid else 0.0
        busy_before = host_busy_seconds()
        seconds = storescu_send(
            files, port=receiver.port, called_ae=receiver.ae_title, associations=associations, workdir=workdir
        )
        released = time.perf_counter()
        busy = host_busy_seconds() - busy_before
        queued = int(lab.redis.llen("celery")) + int(lab.redis.hlen("unacked"))
        measurement = Measurement(receiver_name, associations, processes, n, seconds, stored=0)
        measurement.host_busy_pct = 100 * busy / (seconds * (os.cpu_count() or 1))
        measurement.queued_at_release = queued
        if receiver.ingest_state is not None:
            measurement.ingest_seconds, measurement.ingest_note = wait_ingested(
                lab, receiver.ingest_state, n, released
            )
        measurement.receiver_cpu_s = tree_cpu_seconds(receiver.pid) - cpu_before
        if receiver.worker_pid:
            measurement.worker_cpu_s = tree_cpu_seconds(receiver.worker_pid) - worker_before
        measurement.stored = receiver.stored()
        measurement.syntax_ok = receiver.syntax_ok()
        if receiver.scp_pid and start_memory:
            end_memory = tree_memory(receiver.scp_pid)
            measurement.rss_start_mb = start_memory.rss_mb
            measurement.rss_end_mb = end_memory.rss_mb
            measurement.peak_mb = end_memory.peak_mb
        shutil.rmtree(workdir, ignore_errors=True)
    return measurement


def describe(m: Measurement) -> str:
    text = (
        f"{LABELS[m.receiver]:30} assoc={m.associations} procs={m.processes} "
        f"{m.seconds:7.2f} s {m.instances / m.seconds:6.0f} inst/s stored={m.stored}/{m.instances}"
    )
    if not m.syntax_ok:
        text += " (NOT explicit VR LE)"
    text += f" cpu={1000 * m.receiver_cpu_s / m.instances:.1f} ms/inst host={m.host_busy_pct:.0f}%"
    if m.receiver.startswith(LIGHTBOX):
        text += f" worker={1000 * m.worker_cpu_s / m.instances:.1f} ms/inst"
    if m.receiver.startswith(LIGHTBOX):
        ingest = f"{m.ingest_seconds:.1f} s" if m.ingest_seconds is not None else m.ingest_note
        text += f" ingest={ingest} (tasks queued at release: {m.queued_at_release})"
        text += f" rss={m.rss_start_mb:.0f}→{m.rss_end_mb:.0f} MB peak={m.peak_mb:.0f}"
    return text


@dataclass
class SoakRound:
    round: int
    seconds: float
    ingest: str
    queued_at_release: int
    rss_mb: float
    peak_mb: float


def soak(lab: Lab, files: Sequence[Path], rounds: int) -> tuple[float, list[SoakRound]]:
    """One single-process SCP receives ``rounds`` x the CT, each with fresh UIDs (storescu +II)."""
    results = []
    with lightbox_receiver(lab, processes=1, s3=False) as receiver:
        assert receiver.scp_pid is not None
        assert receiver.ingest_state is not None
        start = tree_memory(receiver.scp_pid).rss_mb
        workdir = lab.workdir("soak")
        for i in range(1, rounds + 1):
            os.sync()
            seconds = storescu_send(
                files,
                port=receiver.port,
                called_ae=receiver.ae_title,
                associations=1,
                workdir=workdir,
                extra=["+II", "+IR", "1000000"],  # a new study, series and SOP Instance UIDs
            )
            released = time.perf_counter()
            queued = int(lab.redis.llen("celery")) + int(lab.redis.hlen("unacked"))
            ingest_seconds, note = wait_ingested(lab, receiver.ingest_state, i * len(files), released)
            memory = tree_memory(receiver.scp_pid)
            ingest = f"{ingest_seconds:.1f} s" if ingest_seconds is not None else f"NOT DONE: {note}"
            results.append(SoakRound(i, seconds, ingest, queued, memory.rss_mb, memory.peak_mb))
            print(
                f"  soak round {i}: {seconds:.2f} s ({len(files) / seconds:.0f} inst/s), ingest {ingest} "
                f"({queued} tasks queued at release), "
                f"RSS {memory.rss_mb:.0f} MB (peak {memory.peak_mb:.0f})",
                flush=True,
            )
    return start, results


def soak_table(start: float, rounds: Sequence[SoakRound], instances: int) -> str:
    lines = [
        "| round | seconds | inst/s | indexed + thumbnailed after release | tasks queued at release "
        "| SCP RSS MB after (peak) |",
        "|-------|---------|--------|------|------|------|",
        f"| before | - | - | - | - | {start:.0f} |",
    ]
    for r in rounds:
        lines.append(
            f"| {r.round} | {r.seconds:.2f} | {instances / r.seconds:.0f} | {r.ingest} | {r.queued_at_release} "
            f"| {r.rss_mb:.0f} ({r.peak_mb:.0f}) |"
        )
    return "\n".join(lines)


# --- Main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=500, help="CT slices (default 500)")
    parser.add_argument("--size", type=int, default=512, help="rows = columns (default 512)")
    parser.add_argument(
        "--runs", type=int, default=3, help="runs per case; the median is reported (0: only the soak)"
    )
    parser.add_argument("--s3", action="store_true", help="also Lightbox on an S3 object store (moto)")
    parser.add_argument(
        "--receivers",
        default=f"{DCMTK},{ORTHANC},{LIGHTBOX}",
        help="comma-separated subset of dcmtk,orthanc,lightbox (lightbox-s3 is added by --s3)",
    )
    parser.add_argument(
        "--lightbox-processes",
        default="1,2",
        help="run_scp --processes values tried on four associations (default 1,2; one association uses 1)",
    )
    parser.add_argument("--soak-rounds", type=int, default=3, help="sends in a row to one SCP (0: skip)")
    parser.add_argument("--index-timeout", type=float, default=60.0, help="seconds to wait for indexing")
    parser.add_argument(
        "--redis-db", type=int, default=13, help="an empty Redis database to use (default 13)"
    )
    parser.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    parser.add_argument("--verbose", action="store_true", help="show the worker log tail after each case")
    args = parser.parse_args(argv)
    if args.runs < 0 or args.instances < 4 or (args.runs == 0 and args.soak_rounds < 1):
        parser.error("need --runs >= 0, --instances >= 4, and --soak-rounds if --runs is 0")
    return args


def cases(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    receivers = [r.strip() for r in args.receivers.split(",") if r.strip()]
    unknown = set(receivers) - {DCMTK, ORTHANC, LIGHTBOX, LIGHTBOX_S3}
    if unknown:
        raise SystemExit(f"unknown receivers: {', '.join(sorted(unknown))}")
    if args.s3 and LIGHTBOX_S3 not in receivers:
        receivers.append(LIGHTBOX_S3)
    process_counts = [int(p) for p in args.lightbox_processes.split(",")]
    result = []
    for receiver in receivers:
        result.append((receiver, 1, 1))
        if receiver in (LIGHTBOX, LIGHTBOX_S3):
            result.extend((receiver, 4, p) for p in process_counts)
        else:
            result.append((receiver, 4, 1))
    return result


def machine(lab: Lab) -> str:
    def version(args: list[str]) -> str:
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
        except OSError:
            return "?"
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}, "
        f"PostgreSQL {lab.pg.execute('show server_version').fetchone()[0]} (local), "  # type: ignore[index]
        f"Redis {lab.redis.info()['redis_version']} (local), "
        f"{version(['Orthanc', '--version'])}, dcmtk {version(['storescu', '--version']).split()[2]}"
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # so the finally blocks below clean up on kill too
    for tool in ("storescu", "storescp", "echoscu"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install dcmtk")
    plan = cases(args)
    files = benchmark_ct(args.instances, args.size)
    print(
        f"{len(files)} instances, {sum(f.stat().st_size for f in files) / 2**20:.0f} MB; {args.runs} run(s) of:"
    )
    for receiver, associations, processes in plan:
        print(f"  {LABELS[receiver]}, {associations} association(s), {processes} SCP process(es)")
    lab = Lab(redis_db=args.redis_db, index_timeout=args.index_timeout, verbose=args.verbose)
    measurements: list[Measurement] = []
    soak_result: tuple[float, list[SoakRound]] | None = None
    started = time.monotonic()
    try:
        host = machine(lab)
        print(f"machine: {host}")
        for run in range(1, args.runs + 1):
            print(f"run {run}/{args.runs}", flush=True)
            for receiver, associations, processes in plan:
                measurement = run_case(lab, receiver, files, associations, processes)
                measurements.append(measurement)
                print("  " + describe(measurement), flush=True)
        if args.soak_rounds and any(r == LIGHTBOX for r, _, _ in plan):
            print(f"soak: {args.soak_rounds} x {len(files)} instances in a row into one run_scp process")
            soak_result = soak(lab, files, args.soak_rounds)
    finally:
        lab.close()
    print()
    print(
        f"{len(files)} instances of {args.size}x{args.size} 16-bit CT, median of {args.runs} run(s), "
        f"{time.monotonic() - started:.0f} s in all"
    )
    summaries = summarise(measurements)
    if measurements:
        print(table(summaries))
    if soak_result:
        print()
        print(soak_table(soak_result[0], soak_result[1], len(files)))
    print()
    for line in verdicts(summaries, soak_result[1] if soak_result else []):
        print(line)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": host,
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "measurements": [asdict(m) for m in measurements],
                    "soak": [asdict(r) for r in soak_result[1]] if soak_result else [],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        sys.exit(130)
