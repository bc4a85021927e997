"""The S3 backend against moto's server mode: a real HTTP S3 endpoint on a free port."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from sharing import storage
from sharing.models import Instance, Series, Study
from sharing.services.receiving import ReceiveOutcome, Sender, instance_receive
from sharing.storage import ObjectNotFound, S3ObjectStore, StorageUnavailable, get_store
from tests.support.network import free_port

pytestmark = pytest.mark.integration


class MotoS3:
    def __init__(self, port: int) -> None:
        # moto keeps its state per process, across server instances: a bucket per test.
        self.bucket = f"lightbox-test-{uuid.uuid4().hex[:12]}"
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.lock = threading.Lock()

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint)

    def keys(self) -> list[str]:
        response = self.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in response.get("Contents", []))


@pytest.fixture
def moto_s3(monkeypatch, settings) -> Iterator[MotoS3]:
    moto = MotoS3(free_port())
    moto.server.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.endpoint)
    settings.LIGHTBOX_OBJECT_STORE = f"s3://{moto.bucket}/lightbox"
    storage._store_for.cache_clear()
    get_store().ensure_ready()
    yield moto
    moto.server.stop()
    storage._store_for.cache_clear()


def test_objects_round_trip_with_ranges(moto_s3, tmp_path: Path):
    store = get_store()
    source = tmp_path / "blob"
    source.write_bytes(bytes(range(256)) * 4096)

    store.put_file("instances/ab/one.dcm", source, content_type="application/dicom")

    assert store.head("instances/ab/one.dcm").size == 256 * 4096
    assert b"".join(store.iter_bytes("instances/ab/one.dcm", start=10, end=20)) == bytes(range(10, 20))
    with store.open("instances/ab/one.dcm") as handle:
        assert handle.read() == source.read_bytes()
    with store.local_copy("instances/ab/one.dcm") as path:
        assert path.read_bytes() == source.read_bytes()
    assert moto_s3.keys() == ["lightbox/instances/ab/one.dcm"]  # under the configured prefix
    store.delete("instances/ab/one.dcm")
    with pytest.raises(ObjectNotFound):
        store.head("instances/ab/one.dcm")


def test_the_bucket_is_created_private(moto_s3):
    block = moto_s3.client().get_public_access_block(Bucket=moto_s3.bucket)["PublicAccessBlockConfiguration"]

    assert all(block.values())


@pytest.mark.django_db(transaction=True)
def test_ingest_stores_instances_and_thumbnails_in_s3(moto_s3, ct_files):
    results = [
        instance_receive(path=path, sender=Sender(source=Study.Source.DIMSE, label="PACS@x"))
        for path in ct_files
    ]

    assert all(r.outcome is ReceiveOutcome.STORED for r in results)
    keys = moto_s3.keys()
    for instance in Instance.objects.all():
        assert f"lightbox/{instance.object_key}" in keys
    series = Series.objects.get()
    assert f"lightbox/{series.thumbnail_key}" in keys
    assert Instance.objects.filter(state=Instance.State.INDEXED).count() == len(ct_files)


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_store_means_out_of_resources_and_nothing_recorded(moto_s3, ct_files):
    moto_s3.server.stop()

    result = instance_receive(path=ct_files[0], sender=Sender(source=Study.Source.DIMSE, label="PACS@x"))

    assert result.outcome is ReceiveOutcome.UNAVAILABLE
    assert not Instance.objects.exists()


def test_an_unreachable_store_raises_a_domain_error(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")

    with pytest.raises(StorageUnavailable):
        S3ObjectStore("nowhere").head("x")


def test_large_objects_go_up_in_parts(moto_s3, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(storage, "MULTIPART_THRESHOLD", 1024)
    source = tmp_path / "large"
    source.write_bytes(b"x" * 9 * 1024 * 1024)

    get_store().put_file("instances/cd/large.dcm", source, content_type="application/dicom")

    head = moto_s3.client().head_object(Bucket=moto_s3.bucket, Key="lightbox/instances/cd/large.dcm")
    assert head["ContentLength"] == 9 * 1024 * 1024
    assert "-" in head["ETag"]  # a multipart upload's ETag carries its part count
