"""Orthanc from Debian as a real PACS for tests and benchmarks, with a temporary configuration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ORTHANC_AE = "ORTHANC"


class Orthanc:
    def __init__(self, http_port: int, dicom_port: int, process: subprocess.Popen[bytes]) -> None:
        self.http_port = http_port
        self.dicom_port = dicom_port
        self.ae_title = ORTHANC_AE
        self.process = process
        self.url = f"http://127.0.0.1:{http_port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | list[Any] | None = None,
        timeout: float = 300,
    ) -> Any:
        data = json.dumps(body).encode() if isinstance(body, dict | list) else body
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
        if response.headers.get_content_type() == "application/json" and payload:
            return json.loads(payload)
        return payload

    def upload(self, path: Path) -> dict[str, Any]:
        return self.request("POST", "/instances", path.read_bytes())  # type: ignore[no-any-return]

    def upload_all(self, paths: list[Path]) -> set[str]:
        """Load Part-10 files; return the Orthanc ids of the studies they belong to."""
        return {self.upload(path)["ParentStudy"] for path in paths}

    def modality_set(self, name: str, ae_title: str, host: str, port: int) -> None:
        """Declare (or re-point) a DICOM modality while running, e.g. a test's own SCP."""
        self.request("PUT", f"/modalities/{name}", {"AET": ae_title, "Host": host, "Port": port})

    def store_to(self, modality: str, resources: list[str]) -> Any:
        return self.request(
            "POST", f"/modalities/{modality}/store", {"Resources": resources, "Synchronous": True}
        )


@contextmanager
def running_orthanc(
    workdir: Path,
    *,
    http_port: int,
    dicom_port: int,
    modalities: dict[str, tuple[str, str, int]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Iterator[Orthanc]:
    """Start Orthanc with a throw-away configuration; stop it and keep its log on failure."""
    binary = shutil.which("Orthanc")
    if binary is None:
        raise RuntimeError("Orthanc is not installed: .ci/run installs it with apt-get (package orthanc)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "Name": "Lightbox test PACS",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AE,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False,
        "DicomModalities": {name: list(value) for name, value in (modalities or {}).items()},
        "Plugins": [],
        "StableAge": 1,
        "DicomScpTimeout": 30,
        "HttpTimeout": 300,
        **(extra or {}),
    }
    config_path = workdir / "orthanc.json"
    config_path.write_text(json.dumps(config))
    log = (workdir / "orthanc.log").open("wb")
    process = subprocess.Popen(
        [binary, str(config_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    orthanc = Orthanc(http_port, dicom_port, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                orthanc.request("GET", "/system", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "Orthanc did not start: " + (workdir / "orthanc.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.1)
        yield orthanc
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
