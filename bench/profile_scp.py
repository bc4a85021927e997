"""Where Lightbox's Storage SCP spends its time: wall time per phase of every C-STORE.

Runs the SCP in this process (the same ``make_server`` that ``run_scp`` uses, on PostgreSQL, Redis
and a Celery worker, with the same environment as bench/ingest.py), wraps the steps of
``instance_receive`` in timers, sends the benchmark CT with storescu and prints, per instance:

* the time between two C-STOREs on an association thread (pynetdicom receiving the next
  dataset into its temporary file, and sending the previous response);
* inside ``handle_store``: header parse and validation, SHA-256, object-store put (and, for the
  local store, the fsyncs), the INSERT, the COMMIT, the Celery enqueue, and what is left.

``--what-if`` patches *this process only* to show what a change would buy, without touching
Lightbox's code:

* ``bare``: C-STORE handler returns success at once (pynetdicom's floor with the same config);
* ``bare-keep``: the same, but the temporary file is kept (hard-linked, no fsync), as a receiver
  that writes without fsync (Orthanc, storescp) keeps its files: the cost of the page-cache
  writeback that follows;
* ``in-memory`` (with ``bare`` only): pynetdicom keeps each dataset in memory instead of
  writing it to a temporary file as it arrives (STORE_RECV_CHUNKED_DATASET off);
* ``fast-poll``: pynetdicom's reactor threads poll every 0.1 ms instead of every 1 ms;
* ``no-fsync``: LocalObjectStore skips its two fsyncs per object;
* ``no-enqueue``: no Celery task at all (the worker stays idle; nothing gets indexed);
* ``coalesce``: at most one indexing task per 0.5 s per SCP process, plus one at association
  release (the task indexes the whole study's pending instances anyway);
* ``no-debug``: settings.DEBUG off (no query logging in the cursor wrapper);
* ``no-sha``: no SHA-256 of the temporary file.

    .venv/bin/python bench/profile_scp.py [--associations 1] [--what-if no-fsync,no-enqueue] [--py-spy]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import ingest

WHAT_IFS = (
    "bare",
    "bare-keep",
    "in-memory",
    "fast-poll",
    "no-fsync",
    "no-enqueue",
    "coalesce",
    "no-debug",
    "no-sha",
)


class Timings:
    """Wall-time totals per phase, and the gaps between C-STOREs per association thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.totals: dict[str, float] = collections.defaultdict(float)
        self.counts: dict[str, int] = collections.defaultdict(int)
        self.last_end: dict[int, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        with self.lock:
            self.totals[phase] += seconds
            self.counts[phase] += 1

    def timed(self, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(phase, time.perf_counter() - started)

        return wrapper

    def store_started(self) -> float:
        now = time.perf_counter()
        previous = self.last_end.get(threading.get_ident())
        if previous is not None:
            self.add("between C-STOREs (pynetdicom receive + response)", now - previous)
        return now

    def store_ended(self, started: float) -> None:
        now = time.perf_counter()
        self.last_end[threading.get_ident()] = now
        self.add("handle_store (total)", now - started)


def replace(owner: Any, name: str, value: Any) -> None:
    """Monkeypatch ``owner.name`` (a module global or a class attribute) in this process only."""
    setattr(owner, name, value)


def instrument(timings: Timings, what_ifs: Sequence[str]) -> None:
    """Wrap the receive path's steps in timers (module globals, looked up at call time)."""
    from django.conf import settings
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper

    from sharing import storage
    from sharing.scp import handlers
    from sharing.services import receiving

    if "no-debug" in what_ifs:
        settings.DEBUG = False
    if "fast-poll" in what_ifs:
        import pynetdicom.association
        import pynetdicom.dul

        shim = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if name[0] != "_"})
        shim.sleep = lambda seconds: time.sleep(min(seconds, 0.0001))
        setattr(pynetdicom.association, "time", shim)  # noqa: B010 - monkeypatching on purpose
        setattr(pynetdicom.dul, "time", shim)  # noqa: B010
    if "no-sha" in what_ifs:
        replace(receiving, "sha256_file", lambda path: "0" * 64)
    if "no-fsync" in what_ifs:
        replace(storage, "_fsync_path", lambda path: None)
    if "no-enqueue" in what_ifs:
        replace(receiving, "_enqueue_indexing", lambda study_instance_uid: None)
    if "coalesce" in what_ifs:
        coalesce(receiving, handlers)
    for owner, name, phase in [
        (receiving, "read_header", "header parse + validate"),
        (receiving, "sha256_file", "sha256 of temp file"),
        (storage, "_fsync_path", "  of which fsync (file + directory)"),
        (storage.LocalObjectStore, "put_file", "object store put_file"),
        (storage.S3ObjectStore, "put_file", "object store put_file"),
        (CursorWrapper, "execute", "SQL statements (INSERT)"),
        (BaseDatabaseWrapper, "commit", "COMMIT"),
        (BaseDatabaseWrapper, "connect", "DB connect"),
        (receiving, "_enqueue_indexing", "Celery enqueue (on_commit)"),
        (receiving, "instance_receive", "instance_receive (total)"),
    ]:
        replace(owner, name, timings.timed(phase, getattr(owner, name)))
    replace(handlers, "instance_receive", receiving.instance_receive)

    original = handlers.handle_store

    def handle_store(event: Any) -> Any:
        started = timings.store_started()
        try:
            if "bare" in what_ifs:
                return handlers.status_dataset(handlers.SUCCESS)
            if "bare-keep" in what_ifs:
                keep = Path(str(settings.LIGHTBOX_TEMP_DIR)).parent / "kept"
                keep.mkdir(exist_ok=True)
                os.link(event.dataset_path, keep / Path(event.dataset_path).name)
                return handlers.status_dataset(handlers.SUCCESS)
            return original(event)
        finally:
            timings.store_ended(started)

    # make_server looks handlers.handle_store up when it is called, so this takes effect.
    replace(handlers, "handle_store", handle_store)


def coalesce(receiving: Any, handlers: Any, interval: float = 0.5) -> None:
    """Enqueue indexing at most every ``interval`` s, and once more when an association ends.

    (Lightbox now coalesces by itself, LIGHTBOX_INDEX_COALESCE_SECONDS; this adds a second layer
    in the SCP, to see what is left to gain there.)
    """
    enqueue, released = receiving._enqueue_indexing, handlers.handle_released
    lock = threading.Lock()
    state: dict[str, Any] = {"last": 0.0, "pending": None}

    def coalesced(study_instance_uid: str) -> None:
        with lock:
            due = time.monotonic() - state["last"] >= interval
            if due:
                state["last"], state["pending"] = time.monotonic(), None
            else:
                state["pending"] = study_instance_uid
        if due:
            enqueue(study_instance_uid)

    def handle_released(event: Any) -> None:
        with lock:
            pending, state["pending"] = state["pending"], None
        if pending is not None:
            enqueue(pending)
        released(event)

    replace(receiving, "_enqueue_indexing", coalesced)
    replace(handlers, "handle_released", handle_released)


@contextlib.contextmanager
def py_spy(
    output: Path, seconds: int, pid: int, *, subprocesses: bool = False, gil: bool = False
) -> Iterator[None]:
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    args = [
        str(spy),
        "record",
        "-p",
        str(pid),
        "-f",
        "raw",
        "-r",
        "250",
        "-d",
        str(seconds),
        "-o",
        str(output),
    ]
    args += ["--subprocesses"] if subprocesses else []
    process = subprocess.Popen(
        args + (["--gil"] if gil else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    try:
        yield
    finally:
        process.wait(timeout=seconds + 30)


def py_spy_summary(raw: Path, top: int = 30, only: str = "") -> str:
    """Inclusive samples per function, over the stacks that contain ``only`` (all when empty)."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if only and not any(only in frame for frame in frames):
            continue
        samples = int(count)
        total += samples
        for name in {frame.split(" (")[0] + " (" + frame.rsplit("/", 1)[-1] for frame in frames}:
            inclusive[name] += samples
    lines = [f"py-spy {raw.name}{', stacks through ' + only if only else ''}: {total} samples at 250 Hz"]
    lines += [f"{100 * n / max(total, 1):5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


@dataclass
class Sample:
    seconds: float
    phases: dict[str, float]  # ms per instance
    scp_cpu_ms: float
    worker_cpu_ms: float
    ingest: str


def one_send(
    lab: ingest.Lab,
    files: Sequence[Path],
    *,
    port: int,
    associations: int,
    workdir: Path,
    timings: Timings,
    db: Any,
    worker: subprocess.Popen[bytes] | None,
    wait_for_index: bool,
) -> Sample:
    db.execute(
        "truncate sharing_instance, sharing_instanceconflict, sharing_series, sharing_study,"
        " sharing_patient, sharing_auditevent restart identity cascade"
    )
    for table in (timings.totals, timings.counts, timings.last_end):
        table.clear()
    cpu_before = sum(os.times()[:2])
    worker_before = ingest.tree_cpu_seconds(worker.pid) if worker else 0.0
    seconds = ingest.storescu_send(
        files, port=port, called_ae="LIGHTBOX", associations=associations, workdir=workdir
    )
    released = time.perf_counter()
    result = "-"
    if wait_for_index:
        latency, note = ingest.wait_ingested(lab, lambda: ingest.ingest_state(db), len(files), released)
        result = f"{latency:.1f} s" if latency is not None else note
    return Sample(
        seconds=seconds,
        phases={phase: 1000 * total / len(files) for phase, total in timings.totals.items()},
        scp_cpu_ms=1000 * (sum(os.times()[:2]) - cpu_before) / len(files),
        worker_cpu_ms=1000 * (ingest.tree_cpu_seconds(worker.pid) - worker_before) / len(files)
        if worker
        else 0.0,
        ingest=result,
    )


def report(samples: Sequence[Sample], instances: int, associations: int, what_ifs: Sequence[str]) -> str:
    median = statistics.median
    seconds = median(s.seconds for s in samples)
    lines = [
        f"{instances} instances on {associations} association(s)"
        f"{' (what-if: ' + ', '.join(what_ifs) + ')' if what_ifs else ''}, median of {len(samples)}: "
        f"{seconds:.2f} s, {instances / seconds:.0f} inst/s "
        f"(runs: {', '.join(f'{instances / s.seconds:.0f}' for s in samples)} inst/s)",
        f"CPU per instance: SCP process {median(s.scp_cpu_ms for s in samples):.1f} ms, "
        f"Celery worker {median(s.worker_cpu_ms for s in samples):.1f} ms; "
        f"indexed + thumbnailed after release: {', '.join(s.ingest for s in samples)}",
        f"{'phase (wall time, summed over association threads)':52} {'ms/inst':>8} {'% of wall':>9}",
    ]
    phases = {phase for s in samples for phase in s.phases}
    per_phase = {phase: median(s.phases.get(phase, 0.0) for s in samples) for phase in phases}
    wall_ms = 1000 * seconds * associations / instances
    for phase, ms in sorted(per_phase.items(), key=lambda item: -item[1]):
        lines.append(f"{phase:52} {ms:8.2f} {100 * ms / wall_ms:8.1f}%")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--associations", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="sends (tables emptied between); medians shown")
    parser.add_argument("--s3", action="store_true", help="object store on moto's S3 server")
    parser.add_argument("--no-worker", action="store_true", help="no Celery worker competing for the CPUs")
    parser.add_argument("--what-if", default="", help=f"comma-separated: {', '.join(WHAT_IFS)}")
    parser.add_argument("--py-spy", type=Path, help="record the SCP with py-spy (raw stacks) to this file")
    parser.add_argument("--py-spy-worker", type=Path, help="record the Celery worker's processes too")
    parser.add_argument(
        "--py-spy-gil", action="store_true", help="py-spy: only samples holding the GIL (CPU)"
    )
    parser.add_argument("--worker-log", type=Path, help="keep the worker's INFO log (one line per task) here")
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra setting, e.g. LIGHTBOX_SCP_MAX_PDU=0",
    )
    args = parser.parse_args(argv)
    what_ifs = [w for w in args.what_if.split(",") if w]
    if set(what_ifs) - set(WHAT_IFS):
        parser.error(f"--what-if takes {', '.join(WHAT_IFS)}")

    files = ingest.benchmark_ct(args.instances, args.size)
    lab = ingest.Lab(redis_db=args.redis_db, index_timeout=60, verbose=False)
    samples: list[Sample] = []
    try:
        with contextlib.ExitStack() as stack:
            workdir = lab.workdir("profile")
            database = lab.fresh_database()
            stack.callback(lab.drop_database, database)
            if args.s3:
                aws = stack.enter_context(ingest.moto_server(lab, workdir))
                env = {**lab.lightbox_env(database, workdir, "s3://lightbox-bench"), **aws}
            else:
                env = lab.lightbox_env(database, workdir, (workdir / "objects").as_uri())
            env.update(item.split("=", 1) for item in args.env)
            worker = None
            if not args.no_worker:
                level = ["--loglevel", "INFO"] if args.worker_log else []
                worker = lab.processes.start(
                    [*ingest.CELERY_WORKER, "--concurrency", "2", *level], env=env, log=workdir / "celery.log"
                )
                if args.worker_log:
                    stack.callback(shutil.copyfile, workdir / "celery.log", args.worker_log)
                stack.callback(lab.processes.stop, worker)
                ingest.wait_for(lambda: ingest.worker_ready(lab), timeout=60, what="celery worker")
            os.environ.update(env)
            sys.path.insert(0, str(ingest.ROOT))
            import django

            django.setup()
            from django.db import connections

            from sharing.scp.server import make_server
            from sharing.storage import get_store

            get_store().ensure_ready()
            connections.close_all()
            timings = Timings()
            instrument(timings, what_ifs)
            port = ingest.free_port()
            server = make_server(host="127.0.0.1", port=port, ae_title="LIGHTBOX")
            if "in-memory" in what_ifs:
                from pynetdicom import _config

                if "bare" not in what_ifs:
                    parser.error("in-memory needs bare: Lightbox's handler reads a file")
                _config.STORE_RECV_CHUNKED_DATASET = False
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            stack.callback(server.shutdown)
            db = stack.enter_context(psycopg.connect(env["DATABASE_URL"], autocommit=True))
            spy_seconds = 10 + args.repeat * (5 + args.instances // 25)
            if args.py_spy:
                stack.enter_context(py_spy(args.py_spy, spy_seconds, os.getpid(), gil=args.py_spy_gil))
            if args.py_spy_worker and worker:
                stack.enter_context(
                    py_spy(
                        args.py_spy_worker, spy_seconds, worker.pid, subprocesses=True, gil=args.py_spy_gil
                    )
                )
            for _ in range(args.repeat):
                samples.append(
                    one_send(
                        lab,
                        files,
                        port=port,
                        associations=args.associations,
                        workdir=workdir,
                        timings=timings,
                        db=db,
                        worker=worker,
                        wait_for_index=worker is not None
                        and not {"no-enqueue", "bare", "bare-keep"} & set(what_ifs),
                    )
                )
    finally:
        lab.close()
    print(report(samples, len(files), args.associations, what_ifs))
    if args.py_spy:
        print(py_spy_summary(args.py_spy, only="Association.run"))
    if args.py_spy_worker and not args.no_worker:
        print(py_spy_summary(args.py_spy_worker, only="trace_task"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
