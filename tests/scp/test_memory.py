"""The Storage SCP's memory stays bounded whatever the instance size (it streams to disk)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from pydicom.uid import ExplicitVRLittleEndian

from sharing.dicom.scu import send_files
from sharing.dicom.synthetic import SyntheticPatient, ct_series, write_part10
from sharing.models import Instance
from tests.support.network import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def big_instance(tmp_path: Path, *, megabytes: int) -> Path:
    ds = ct_series(SyntheticPatient(patient_id="BIG-1"), slices=1, size=512)[0]
    frames = megabytes * MB // (512 * 512 * 2)
    ds.NumberOfFrames = frames
    ds.PixelData = np.zeros((frames, 512, 512), dtype=np.uint16).tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return write_part10(ds, tmp_path / "big.dcm")


def test_receiving_a_256_mb_instance_does_not_grow_the_scp(tmp_path):
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url or connection.vendor != "postgresql":
        pytest.skip("needs REDIS_URL and DATABASE_URL (PostgreSQL): set by `make test` in CI")
    # Tasks go to a Redis queue nobody consumes: this measures receiving only, not rendering.
    queue_url = redis_url.rsplit("/", 1)[0] + "/13"
    db = connection.settings_dict
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.dev",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": queue_url,
        "LIGHTBOX_OBJECT_STORE": django_settings.LIGHTBOX_OBJECT_STORE,
        "LIGHTBOX_TEMP_DIR": django_settings.LIGHTBOX_TEMP_DIR,
    }
    small = write_part10(
        ct_series(SyntheticPatient(patient_id="SMALL-1"), slices=1, size=64)[0], tmp_path / "s.dcm"
    )
    big = big_instance(tmp_path, megabytes=256)
    scp = subprocess.Popen(
        [sys.executable, "manage.py", "run_scp", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                send_files([small], host="127.0.0.1", port=port, called_ae="LIGHTBOX")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        baseline = peak_rss(scp.pid)

        result = send_files([big], host="127.0.0.1", port=port, called_ae="LIGHTBOX")

        grown = peak_rss(scp.pid) - baseline
    finally:
        scp.terminate()
        scp.wait(timeout=30)
        redis.Redis.from_url(queue_url).flushdb()

    assert not result.failures
    assert Instance.objects.get(sop_instance_uid=pydicom.dcmread(big, stop_before_pixels=True).SOPInstanceUID)
    assert grown < 48 * MB, f"the SCP grew by {grown / MB:.0f} MB receiving a 256 MB instance"
