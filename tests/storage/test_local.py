from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from sharing.storage import LocalObjectStore, ObjectNotFound, S3ObjectStore, get_store, store_from_url


def test_objects_round_trip_with_ranges(tmp_path: Path):
    store = get_store()
    source = tmp_path / "blob"
    source.write_bytes(b"0123456789" * 1000)

    store.put_file("instances/aa/x.dcm", source, content_type="application/dicom")
    store.put_bytes("thumbnails/1/y.jpg", b"jpeg", content_type="image/jpeg")

    assert store.head("instances/aa/x.dcm").size == 10000
    assert b"".join(store.iter_bytes("instances/aa/x.dcm", start=5, end=15)) == b"5678901234"
    with store.open("thumbnails/1/y.jpg") as handle:
        assert handle.read() == b"jpeg"
    store.delete("thumbnails/1/y.jpg")
    with pytest.raises(ObjectNotFound):
        store.open("thumbnails/1/y.jpg")


def test_objects_are_private_to_the_service_user(object_store: Path, tmp_path: Path):
    source = tmp_path / "blob"
    source.write_bytes(b"x")

    get_store().put_file("instances/aa/x.dcm", source, content_type="application/dicom")

    assert object_store.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", "instances/../../x", "/etc/passwd", "", "instances\\..\\..\\x", "a\x00b"]
)
def test_keys_cannot_escape_the_store(tmp_path: Path, key: str):
    store = LocalObjectStore(tmp_path / "objects")

    with pytest.raises(ValueError, match="escapes"):
        store.head(key)


@pytest.mark.parametrize(
    ("url", "kind"),
    [("file:///var/lib/lightbox/objects", LocalObjectStore), ("s3://bucket/prefix", S3ObjectStore)],
)
def test_the_store_is_chosen_by_url(url, kind):
    assert isinstance(store_from_url(url), kind)


@pytest.mark.parametrize("url", ["ftp://x", "s3://", "file://relative/path"])
def test_a_bad_store_url_is_refused_at_start(url):
    with pytest.raises(ImproperlyConfigured):
        store_from_url(url)
