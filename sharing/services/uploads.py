"""Browser uploads of files, folders and zips (records staff, and patients' outside images).

Each DICOM file goes to ``instance_receive``, the receiver the Storage SCP uses; one INGEST audit
event is written per study at the end of the request. A zip is read entry by entry, each into a
fresh temporary file named by Lightbox (never by the entry), and every byte read counts against
``LIGHTBOX_UPLOAD_MAX_BYTES``.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import lzma
import struct
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile

from sharing.conf import app_settings
from sharing.dicom.part10 import Part10Kind, part10_kind
from sharing.models import Study, User
from sharing.services.audit import NO_CLIENT, Client
from sharing.services.receiving import (
    ReceiveOutcome,
    ReceiveResult,
    Sender,
    count_outcomes,
    ingest_audit_record,
    instance_receive,
)

logger = logging.getLogger(__name__)


CHUNK_SIZE = 256 * 1024
DICOM_MEDIA_TYPE = "application/dicom"
DICOM_JSON_MEDIA_TYPE = "application/dicom+json"
DICOMDIR_SKIPPED = "index file (DICOMDIR): the images it lists are read from their own files"
NESTED_ARCHIVE_SKIPPED = "an archive inside the archive: upload it on its own"

# Zip safety limits: far beyond any CD or USB stick, far below what a crafted archive asks for.
MAX_ARCHIVE_ENTRIES = 20_000
MAX_CENTRAL_DIRECTORY_BYTES = 32 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200
RATIO_CHECK_FROM_BYTES = 1024 * 1024
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class FileStatus(enum.StrEnum):
    STORED = "stored"
    ALREADY_STORED = "already-stored"
    SKIPPED = "skipped"
    REFUSED = "refused"

    @property
    def label(self) -> str:
        return {
            FileStatus.STORED: "Stored",
            FileStatus.ALREADY_STORED: "Already stored",
            FileStatus.SKIPPED: "Skipped",
            FileStatus.REFUSED: "Refused",
        }[self]


@dataclass(frozen=True)
class FileReport:
    name: str
    status: FileStatus
    reason: str = ""
    study_instance_uid: str = ""


@dataclass
class StudySummary:
    study_instance_uid: str
    description: str
    study_date: str
    modalities: set[str] = field(default_factory=set)
    images: int = 0


@dataclass
class UploadReport:
    files: list[FileReport] = field(default_factory=list)
    studies: dict[str, StudySummary] = field(default_factory=dict)
    results: list[ReceiveResult] = field(default_factory=list)

    def add_result(self, name: str, result: ReceiveResult) -> None:
        self.results.append(result)
        header = result.header
        status = {
            ReceiveOutcome.STORED: FileStatus.STORED,
            ReceiveOutcome.DUPLICATE: FileStatus.ALREADY_STORED,
        }.get(result.outcome, FileStatus.REFUSED)
        reason = "" if result.outcome.is_success else _refusal_reason(result)
        self.files.append(FileReport(name, status, reason, result.study_instance_uid))
        if header is not None and result.outcome.is_success:
            summary = self.studies.setdefault(
                header.study_instance_uid,
                StudySummary(
                    study_instance_uid=header.study_instance_uid,
                    description=header.study_description,
                    study_date=header.study_date.isoformat() if header.study_date else "",
                ),
            )
            summary.images += 1
            if header.modality:
                summary.modalities.add(header.modality)

    def skip(self, name: str, reason: str) -> None:
        self.files.append(FileReport(name, FileStatus.SKIPPED, reason))

    def refuse(self, name: str, reason: str) -> None:
        self.files.append(FileReport(name, FileStatus.REFUSED, reason))

    def counts(self) -> dict[str, int]:
        tally = Counter(f.status for f in self.files)
        return {status.name.lower(): tally[status] for status in FileStatus}

    def as_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "files": [
                {"name": f.name, "status": f.status.value, "label": f.status.label, "reason": f.reason}
                for f in self.files
            ],
            "studies": [
                {
                    "study_instance_uid": s.study_instance_uid,
                    "description": s.description,
                    "study_date": s.study_date,
                    "modalities": sorted(s.modalities),
                    "images": s.images,
                }
                for s in self.studies.values()
            ],
        }


def _refusal_reason(result: ReceiveResult) -> str:
    return {
        ReceiveOutcome.INVALID: f"the DICOM header is incomplete or wrong ({result.reason})",
        ReceiveOutcome.UNREADABLE: f"damaged: it cannot be read as DICOM ({result.reason})",
        ReceiveOutcome.CONFLICT: "a different image with the same identifier is already stored; "
        "records staff will compare the two",
        ReceiveOutcome.UNAVAILABLE: "storage is unavailable at the moment: please try again later",
    }.get(result.outcome, result.reason)


class _ArchiveRefused(Exception):
    """Stop reading this archive: it is unsafe or over the limits."""


class _EntryRefused(Exception):
    """Refuse one entry, go on with the rest of the archive."""


@dataclass
class _Budget:
    """Bytes still allowed out of archives in this request, counted as they are read."""

    left: int

    def check(self, size: int) -> None:
        if size > self.left:
            raise _ArchiveRefused(
                f"it unpacks to more than {app_settings.UPLOAD_MAX_BYTES:,} bytes, the upload limit"
            )

    def take(self, size: int) -> None:
        self.check(size)
        self.left -= size


def upload_receive(*, files: Iterable[UploadedFile], user: User, client: Client = NO_CLIENT) -> UploadReport:
    """Receive files from the upload form: DICOM files, a CD/USB folder's files, or zip archives.

    What a patient uploads becomes an outside study (the indexer decides from the role).
    """
    sender = Sender(source=Study.Source.UPLOAD, label=user.email, user=user, client=client)
    report = UploadReport()
    budget = _Budget(app_settings.UPLOAD_MAX_BYTES)
    try:
        for uploaded in files:
            name = _display_name(uploaded.name or "file")
            with _local_path(uploaded) as path:
                _receive_file(path=path, name=name, sender=sender, report=report, budget=budget)
    finally:
        ingest_audit_record(counts=count_outcomes(report.results), sender=sender)
    return report


@contextlib.contextmanager
def _local_path(uploaded: UploadedFile) -> Iterator[Path]:
    """Django has spooled large uploads to disk already; small ones live in memory."""
    if isinstance(uploaded, TemporaryUploadedFile):
        yield Path(uploaded.temporary_file_path())
        return
    with tempfile.NamedTemporaryFile(dir=app_settings.TEMP_DIR, prefix="upload-", suffix=".part") as handle:
        for chunk in uploaded.chunks():
            handle.write(chunk)
        handle.flush()
        yield Path(handle.name)


def _receive_file(*, path: Path, name: str, sender: Sender, report: UploadReport, budget: _Budget) -> None:
    if name.upper() == "DICOMDIR":
        report.skip(name, DICOMDIR_SKIPPED)
        return
    kind = part10_kind(path)
    if kind is Part10Kind.INSTANCE:
        report.add_result(name, instance_receive(path=path, sender=sender))
    elif kind is Part10Kind.DIRECTORY:
        report.skip(name, DICOMDIR_SKIPPED)
    elif _is_zip(path):
        _receive_archive(path=path, name=name, sender=sender, report=report, budget=budget)
    else:
        report.skip(name, "not a DICOM file")


def _receive_archive(*, path: Path, name: str, sender: Sender, report: UploadReport, budget: _Budget) -> None:
    try:
        _check_central_directory(path)
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            if len(entries) > MAX_ARCHIVE_ENTRIES:
                raise _ArchiveRefused(f"it holds more than {MAX_ARCHIVE_ENTRIES:,} files")
            for info in entries:
                _receive_entry(
                    archive=archive, info=info, archive_name=name, sender=sender, report=report, budget=budget
                )
    except _ArchiveRefused as exc:
        logger.warning("upload by %s: archive refused: %s", sender.label, exc)
        report.refuse(name, f"zip archive refused: {exc}. Lightbox stopped reading it.")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError):
        report.refuse(name, "zip archive refused: it is damaged or not a zip file Lightbox can read")
    except OSError as exc:
        logger.warning("upload by %s: archive unreadable: %s", sender.label, exc)
        report.refuse(name, "this zip archive could not be read on the server: please try again later")


def _receive_entry(
    *,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    archive_name: str,
    sender: Sender,
    report: UploadReport,
    budget: _Budget,
) -> None:
    entry = info.filename
    parts = [p for p in entry.replace("\\", "/").split("/") if p]
    if info.is_dir() or "__MACOSX" in parts or not parts:
        return  # folders, and the resource forks macOS adds to zips: nothing to report
    name = _display_name(f"{archive_name}: {entry}")
    if _is_unsafe_entry_name(entry):
        report.refuse(name, "unsafe file name in the archive (absolute path or '..'): not read")
        return
    if parts[-1].upper() == "DICOMDIR":
        report.skip(name, DICOMDIR_SKIPPED)
        return
    if parts[-1].lower().endswith(".zip"):
        report.skip(name, NESTED_ARCHIVE_SKIPPED)
        return
    try:
        with _extracted(archive=archive, info=info, budget=budget) as path:
            kind = part10_kind(path)
            if kind is Part10Kind.INSTANCE:
                report.add_result(name, instance_receive(path=path, sender=sender))
            elif kind is Part10Kind.DIRECTORY:
                report.skip(name, DICOMDIR_SKIPPED)
            elif _is_zip(path):
                report.skip(name, NESTED_ARCHIVE_SKIPPED)
            else:
                report.skip(name, "not a DICOM file")
    except _EntryRefused as exc:
        report.refuse(name, str(exc))


@contextlib.contextmanager
def _extracted(*, archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> Iterator[Path]:
    """One entry in a fresh temporary file, counting the bytes actually inflated."""
    compressed = max(info.compress_size, 1)
    if info.file_size > RATIO_CHECK_FROM_BYTES and info.file_size > MAX_COMPRESSION_RATIO * compressed:
        raise _ArchiveRefused(_bomb_message(info))
    budget.check(info.file_size)
    if info.flag_bits & 0x1:
        raise _EntryRefused("password-protected: Lightbox cannot read it")
    with tempfile.NamedTemporaryFile(dir=app_settings.TEMP_DIR, prefix="unzip-", suffix=".part") as target:
        try:
            with archive.open(info) as source:
                _copy_counted(source=source, target=target, info=info, budget=budget)
        except NotImplementedError:
            raise _EntryRefused("compressed with a method Lightbox cannot read") from None
        except (zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, ValueError, RuntimeError):
            raise _EntryRefused("damaged in the archive: it cannot be unpacked") from None
        except OSError:  # bz2 reports bad data this way; so does a full temporary disk
            raise _EntryRefused("it could not be unpacked") from None
        target.flush()
        yield Path(target.name)


def _copy_counted(*, source: IO[bytes], target: IO[bytes], info: zipfile.ZipInfo, budget: _Budget) -> None:
    written = 0
    compressed = max(info.compress_size, 1)
    while chunk := source.read(CHUNK_SIZE):
        written += len(chunk)
        budget.take(len(chunk))
        if written > RATIO_CHECK_FROM_BYTES and written > MAX_COMPRESSION_RATIO * compressed:
            raise _ArchiveRefused(_bomb_message(info))
        target.write(chunk)


def _bomb_message(info: zipfile.ZipInfo) -> str:
    return (
        f"'{_display_name(info.filename)}' expands to more than {MAX_COMPRESSION_RATIO} times its "
        "packed size, which images never do: the archive looks like a zip bomb"
    )


def _check_central_directory(path: Path) -> None:
    """Refuse archives whose directory is huge before ``zipfile`` loads all of it into memory."""
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        tail_start = max(0, size - (65535 + 22))
        handle.seek(tail_start)
        tail = handle.read()
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) - end < 22:
        raise zipfile.BadZipFile("no end of central directory")
    # disk, directory's disk, entries on this disk, entries, directory size, offset
    _, _, _, entries, directory_size, _ = struct.unpack("<4H2L", tail[end + 4 : end + 20])
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:
        entries, directory_size = _zip64_directory(path, tail_start + end)
    if entries > MAX_ARCHIVE_ENTRIES:
        raise _ArchiveRefused(f"it holds more than {MAX_ARCHIVE_ENTRIES:,} files")
    if directory_size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise _ArchiveRefused("its table of contents is far larger than any disc's")


def _zip64_directory(path: Path, end_offset: int) -> tuple[int, int]:
    with path.open("rb") as handle:
        handle.seek(max(0, end_offset - 20))
        locator = handle.read(20)
        if len(locator) < 20 or locator[:4] != b"PK\x06\x07":
            raise zipfile.BadZipFile("zip64 locator missing")
        (record_offset,) = struct.unpack("<Q", locator[8:16])
        handle.seek(record_offset)
        record = handle.read(56)
    if len(record) < 56 or record[:4] != b"PK\x06\x06":
        raise zipfile.BadZipFile("zip64 end of central directory missing")
    entries, directory_size = struct.unpack("<QQ", record[32:48])
    return int(entries), int(directory_size)


def _is_zip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) in ZIP_MAGIC


def _is_unsafe_entry_name(name: str) -> bool:
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        return True
    return any(part == ".." for part in normalized.split("/"))


def _display_name(name: str) -> str:
    cleaned = "".join(c if c.isprintable() else "?" for c in name)
    return cleaned if len(cleaned) <= 200 else f"…{cleaned[-199:]}"
