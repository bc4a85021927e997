"""Reading DICOMweb responses: multipart/related bodies, and the URLs of an instance's resources."""

from __future__ import annotations

from django.urls import reverse
from pydicom.dataset import Dataset

from sharing.models import Study

EXPLICIT_LE = "1.2.840.10008.1.2.1"
RAW_FRAME_ACCEPT = f'multipart/related; type="application/octet-stream"; transfer-syntax={EXPLICIT_LE}'


def parts(response) -> list[tuple[str, bytes]]:
    """The parts of a multipart/related response: (content type, body)."""
    content_type = response["Content-Type"]
    assert content_type.startswith("multipart/related")
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"').encode()
    body = b"".join(response.streaming_content)
    assert body.endswith(b"--" + boundary + b"--\r\n")
    found = []
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        assert data.endswith(b"\r\n")
        found.append((head.decode().split(":", 1)[1].strip(), data[:-2]))
    return found


def instance_url(name: str, study: Study, ds: Dataset, *extra: str) -> str:
    return reverse(
        name, args=[study.study_instance_uid, str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID), *extra]
    )
