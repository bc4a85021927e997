"""The one gateway to object storage. Nothing else in Lightbox imports boto3.

Two backends share one small interface: a local directory (the embedded default) and any
S3-compatible service. Objects are private; keys are built by callers from server-side ids only.
Failures surface as ``StorageUnavailable`` (retry later) or ``ObjectNotFound``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

from sharing.conf import app_settings

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

CHUNK_SIZE = 1024 * 1024
# boto3's own default: larger objects go up in parallel parts.
MULTIPART_THRESHOLD = 8 * 1024 * 1024


class StorageError(Exception):
    pass


class StorageUnavailable(StorageError):
    """The store could not be reached or refused the operation; the caller may retry."""


class ObjectNotFound(StorageError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


class ObjectStore(Protocol):
    def put_file(self, key: str, path: Path, *, content_type: str) -> None:
        """Store a local file under ``key``; returns only once the bytes are durable."""

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None: ...

    def open(self, key: str) -> IO[bytes]:
        """A readable, seekable-if-possible stream of the object."""

    def iter_bytes(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The object's bytes ``[start, end)`` in chunks, without loading it whole."""

    def head(self, key: str) -> ObjectInfo: ...

    def delete(self, key: str) -> None: ...

    def presigned_url(self, key: str, *, expires_in: int) -> str | None:
        """A short-lived URL to fetch the object directly, or None if the backend has none."""

    def local_copy(self, key: str) -> contextlib.AbstractContextManager[Path]:
        """A path to the object's bytes on local disk for the duration of the block."""

    def ensure_ready(self) -> None:
        """Create the bucket or directory if missing; raise StorageUnavailable if unreachable."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def new_key(prefix: str, suffix: str = "") -> str:
    """A fresh object key under ``prefix``, spread over 256 sub-directories."""
    token = uuid.uuid4().hex
    return f"{prefix}/{token[:2]}/{token}{suffix}"


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        # Keys are Lightbox's own ("instances/ab/abcdef….dcm"): a relative path that goes
        # nowhere up stays below the root, so no file system call is needed to check it.
        parts = PurePosixPath(key).parts
        if not parts or key.startswith("/") or ".." in parts or "\\" in key or "\x00" in key:
            raise ValueError(f"object key escapes the store: {key!r}")
        return self.root / key

    def ensure_ready(self) -> None:
        # Private by its root: nothing below a 0700 directory is reachable by other users,
        # whatever the umask gives the files and sub-directories inside.
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.root.chmod(0o700)
        except OSError as exc:
            raise StorageUnavailable(f"object store directory unusable: {exc}") from exc

    def put_file(self, key: str, path: Path, *, content_type: str) -> None:
        target = self._path(key)
        if not self.root.exists():
            self.ensure_ready()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
            try:
                # A hard link costs nothing when the source is on the same file system (the SCP's
                # temporary files are); otherwise copy.
                os.link(path, staging)
            except OSError:
                shutil.copyfile(path, staging)
            _fsync_path(staging)
            os.replace(staging, target)
            _fsync_path(target.parent)
        except OSError as exc:
            with contextlib.suppress(OSError, UnboundLocalError):
                staging.unlink()
            raise StorageUnavailable(f"could not write object: {exc.strerror}") from exc

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None:
        with tempfile.NamedTemporaryFile(dir=app_settings.TEMP_DIR, delete=False) as handle:
            handle.write(data)
        try:
            self.put_file(key, Path(handle.name), content_type=content_type)
        finally:
            os.unlink(handle.name)

    def open(self, key: str) -> IO[bytes]:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise StorageUnavailable(str(exc.strerror)) from exc

    def iter_bytes(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with self.open(key) as handle:
            handle.seek(start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                chunk = handle.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def head(self, key: str) -> ObjectInfo:
        try:
            return ObjectInfo(key=key, size=self._path(key).stat().st_size)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def presigned_url(self, key: str, *, expires_in: int) -> str | None:
        return None

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.exists():
            raise ObjectNotFound(key)
        yield path


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3ObjectStore:
    def __init__(self, bucket: str, prefix: str = "") -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @functools.cached_property
    def client(self) -> S3Client:
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            # Some S3-compatible services reject the newer default checksum headers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return boto3.session.Session().client("s3", config=config)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectNotFound(key) from None
            raise StorageUnavailable(f"object store refused the request ({code})") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"object store unreachable: {type(exc).__name__}") from exc

    def ensure_ready(self) -> None:
        from botocore.exceptions import ClientError

        with self._errors(""):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                    raise
                self.client.create_bucket(Bucket=self.bucket)
                self._block_public_access()

    def _block_public_access(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.put_public_access_block(
                Bucket=self.bucket,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            )
        except ClientError as exc:
            # MinIO and some others do not implement the call; their new buckets are private.
            if exc.response.get("Error", {}).get("Code") not in ("NotImplemented", "XNotImplemented"):
                raise

    def put_file(self, key: str, path: Path, *, content_type: str) -> None:
        with self._errors(key):
            if path.stat().st_size <= MULTIPART_THRESHOLD:
                # One request; upload_file builds a transfer manager and threads on every call.
                with path.open("rb") as body:
                    self.client.put_object(
                        Bucket=self.bucket, Key=self._key(key), Body=body, ContentType=content_type
                    )
            else:
                self.client.upload_file(
                    str(path), self.bucket, self._key(key), ExtraArgs={"ContentType": content_type}
                )

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None:
        with self._errors(key):
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type
            )

    def open(self, key: str) -> IO[bytes]:
        with self._errors(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        return response["Body"]  # type: ignore[return-value]

    def iter_bytes(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        byte_range = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"
        if end is not None and end <= start:
            return
        with self._errors(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=byte_range)
            yield from response["Body"].iter_chunks(CHUNK_SIZE)

    def head(self, key: str) -> ObjectInfo:
        with self._errors(key):
            response = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        return ObjectInfo(key=key, size=int(response["ContentLength"]))

    def delete(self, key: str) -> None:
        with self._errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def presigned_url(self, key: str, *, expires_in: int) -> str | None:
        with self._errors(key):
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_in
            )

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(dir=app_settings.TEMP_DIR) as directory:
            path = Path(directory) / "object"
            with self._errors(key):
                self.client.download_file(self.bucket, self._key(key), str(path))
            yield path


def store_from_url(url: str) -> ObjectStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise ImproperlyConfigured("LIGHTBOX_OBJECT_STORE=file://… needs an absolute path")
        return LocalObjectStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ImproperlyConfigured("LIGHTBOX_OBJECT_STORE=s3://… needs a bucket name")
        return S3ObjectStore(parsed.netloc, parsed.path)
    raise ImproperlyConfigured(f"LIGHTBOX_OBJECT_STORE must be file:///path or s3://bucket, not {url!r}")


@functools.cache
def _store_for(url: str) -> ObjectStore:
    return store_from_url(url)


def get_store() -> ObjectStore:
    """The configured store (cached per URL, so tests can switch it with a settings override)."""
    return _store_for(app_settings.OBJECT_STORE)
