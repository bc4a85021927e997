"""Receiving one instance: the core shared by the Storage SCP, STOW-RS and browser uploads.

The order is what makes an acknowledgement trustworthy: validate, put the bytes in object
storage (durable on return), record the row, commit, and only then enqueue indexing. Any failure
before the commit removes the object again, so nothing is left half-stored.

A patient's own upload is received into rows of its own (``upload_owner``): its SOP Instance UIDs
are compared with that patient's earlier uploads only, never with the hospital's instances.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from sharing.dicom.errors import InvalidDicom, UnreadableDicom
from sharing.dicom.header import InstanceHeader, read_header
from sharing.dicom.part10 import dataset_offset
from sharing.models import AuditEvent, Instance, InstanceConflict, Study, User
from sharing.services.audit import NO_CLIENT, Client, audit_event_record
from sharing.storage import StorageError, get_store, new_key

logger = logging.getLogger(__name__)

DICOM_MEDIA_TYPE = "application/dicom"
CHUNK_SIZE = 1024 * 1024


class ReceiveOutcome(enum.StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # the same bytes were already stored: success, stored once
    CONFLICT = "conflict"  # same SOP Instance UID, different bytes: original kept, copy set aside
    INVALID = "invalid"  # identifiers missing, malformed or not those announced
    UNREADABLE = "unreadable"  # not parseable as DICOM
    UNAVAILABLE = "unavailable"  # storage or database down: nothing recorded, retry later

    @property
    def is_success(self) -> bool:
        return self in (ReceiveOutcome.STORED, ReceiveOutcome.DUPLICATE)

    @property
    def dimse_status(self) -> int:
        """The DIMSE status a peer gets (PS3.4 B.2.3), also STOW-RS's FailureReason."""
        return _DIMSE_STATUS[self]


_DIMSE_STATUS = {
    ReceiveOutcome.STORED: 0x0000,
    ReceiveOutcome.DUPLICATE: 0x0000,
    ReceiveOutcome.CONFLICT: 0x0111,  # duplicate SOP instance: the original is kept
    ReceiveOutcome.INVALID: 0xA900,  # data set does not match SOP class (or the command)
    ReceiveOutcome.UNREADABLE: 0xC000,  # cannot understand
    ReceiveOutcome.UNAVAILABLE: 0xA700,  # out of resources: retry later
}


@dataclass(frozen=True)
class Sender:
    """Who is handing us the instance, as recorded on the row and in the audit trail."""

    source: Study.Source
    label: str  # "AE_TITLE@address", or the uploading user's email
    user: User | None = None
    client: Client = NO_CLIENT  # where the association or request came from

    @property
    def upload_owner(self) -> User | None:
        """The patient whose own upload this is; None for the hospital's sources and staff."""
        if self.user is not None and self.user.role == User.Role.PATIENT:
            return self.user
        return None


@dataclass(frozen=True)
class ReceiveResult:
    outcome: ReceiveOutcome
    reason: str = ""
    instance_id: int | None = None
    header: InstanceHeader | None = field(default=None, repr=False)

    @property
    def study_instance_uid(self) -> str:
        return self.header.study_instance_uid if self.header else ""


def instance_receive(
    *,
    path: Path,
    sender: Sender,
    expected_sop_instance_uid: str | None = None,
    expected_sop_class_uid: str | None = None,
) -> ReceiveResult:
    try:
        header = read_header(path)
    except UnreadableDicom as exc:
        return ReceiveResult(ReceiveOutcome.UNREADABLE, str(exc))
    except InvalidDicom as exc:
        return ReceiveResult(ReceiveOutcome.INVALID, str(exc))
    if expected_sop_instance_uid is not None and header.sop_instance_uid != expected_sop_instance_uid:
        return ReceiveResult(
            ReceiveOutcome.INVALID, "SOP Instance UID differs from the command", header=header
        )
    if expected_sop_class_uid is not None and header.sop_class_uid != expected_sop_class_uid:
        return ReceiveResult(ReceiveOutcome.INVALID, "SOP Class UID differs from the command", header=header)

    try:
        digest, dataset_digest = _digests(path)
        size = path.stat().st_size
    except OSError as exc:
        return ReceiveResult(ReceiveOutcome.UNAVAILABLE, f"temporary file unreadable: {exc.strerror}")

    store = get_store()
    key = new_key("instances", ".dcm")
    try:
        store.put_file(key, path, content_type=DICOM_MEDIA_TYPE)
    except StorageError as exc:
        logger.warning("object store unavailable while receiving: %s", exc)
        return ReceiveResult(ReceiveOutcome.UNAVAILABLE, "object storage unavailable", header=header)

    try:
        with transaction.atomic():
            instance = Instance.objects.create(
                sop_instance_uid=header.sop_instance_uid,
                sop_class_uid=header.sop_class_uid,
                transfer_syntax_uid=header.transfer_syntax_uid,
                study_instance_uid=header.study_instance_uid,
                series_instance_uid=header.series_instance_uid,
                patient_identifier=header.patient_id,
                patient_issuer=header.issuer,
                patient_name=header.patient_name,
                patient_birth_date=header.birth_date,
                instance_number=header.instance_number,
                number_of_frames=header.number_of_frames,
                rows=header.rows,
                columns=header.columns,
                size_bytes=size,
                sha256=digest,
                dataset_sha256=dataset_digest,
                object_key=key,
                source=sender.source,
                sender=sender.label[:128],
                uploaded_by=sender.user,
                upload_owner=sender.upload_owner,
                received_at=timezone.now(),
            )
            transaction.on_commit(lambda: _enqueue_indexing(header.study_instance_uid), robust=True)
    except IntegrityError:
        _discard(key)
        return _receive_known(
            path=path, header=header, digest=digest, dataset_digest=dataset_digest, size=size, sender=sender
        )
    except DatabaseError as exc:
        _discard(key)
        logger.warning("database unavailable while receiving: %s", type(exc).__name__)
        return ReceiveResult(ReceiveOutcome.UNAVAILABLE, "database unavailable", header=header)
    return ReceiveResult(ReceiveOutcome.STORED, instance_id=instance.pk, header=header)


def count_outcomes(results: Iterable[ReceiveResult]) -> dict[str, Counter[str]]:
    """Outcome counts per Study Instance UID ("" for instances too broken to name one)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for result in results:
        counts[result.study_instance_uid][result.outcome.value] += 1
    return counts


@transaction.atomic
def ingest_audit_record(
    *,
    counts: Mapping[str, Counter[str]],
    sender: Sender,
    aborted: bool = False,
) -> None:
    """One INGEST audit event per study an association or a request touched."""
    for study_uid, outcomes in counts.items():
        failures = sum(n for outcome, n in outcomes.items() if not ReceiveOutcome(outcome).is_success)
        audit_event_record(
            action=AuditEvent.Action.INGEST,
            client=sender.client,
            actor_kind=AuditEvent.ActorKind.USER if sender.user else AuditEvent.ActorKind.PEER,
            actor_user=sender.user,
            actor_label=sender.label,
            study_instance_uid=study_uid,
            outcome=AuditEvent.Outcome.MINOR_FAILURE if failures or aborted else AuditEvent.Outcome.SUCCESS,
            detail={
                "source": str(sender.source),
                "instances": sum(outcomes.values()),
                **dict(outcomes),
                **({"aborted": True} if aborted else {}),
            },
        )


def _digests(path: Path) -> tuple[str, str]:
    """SHA-256 of the whole file, and of the data set after the file meta group, in one read."""
    offset = dataset_offset(path)
    whole, dataset = hashlib.sha256(), hashlib.sha256()
    position = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            whole.update(chunk)
            if position + len(chunk) > offset:
                dataset.update(chunk[max(0, offset - position) :])
            position += len(chunk)
    return whole.hexdigest(), dataset.hexdigest()


def _same_instance(existing: Instance, *, digest: str, dataset_digest: str) -> bool:
    if existing.dataset_sha256:
        return existing.dataset_sha256 == dataset_digest
    return existing.sha256 == digest  # a row stored before data set digests were kept


def _receive_known(
    *, path: Path, header: InstanceHeader, digest: str, dataset_digest: str, size: int, sender: Sender
) -> ReceiveResult:
    """The SOP Instance UID is already stored: the same instance again, or a conflicting copy."""
    try:
        existing = Instance.objects.get(
            sop_instance_uid=header.sop_instance_uid, upload_owner=sender.upload_owner
        )
    except (Instance.DoesNotExist, DatabaseError):
        return ReceiveResult(ReceiveOutcome.UNAVAILABLE, "database unavailable", header=header)
    if _same_instance(existing, digest=digest, dataset_digest=dataset_digest):
        return ReceiveResult(ReceiveOutcome.DUPLICATE, instance_id=existing.pk, header=header)

    key = new_key("conflicts", ".dcm")
    try:
        get_store().put_file(key, path, content_type=DICOM_MEDIA_TYPE)
    except StorageError:
        return ReceiveResult(ReceiveOutcome.UNAVAILABLE, "object storage unavailable", header=header)
    try:
        with transaction.atomic():
            InstanceConflict.objects.create(
                instance=existing,
                object_key=key,
                sha256=digest,
                size_bytes=size,
                sender=sender.label[:128],
                received_at=timezone.now(),
            )
            audit_event_record(
                action=AuditEvent.Action.INGEST_CONFLICT,
                client=sender.client,
                actor_kind=AuditEvent.ActorKind.USER if sender.user else AuditEvent.ActorKind.PEER,
                actor_user=sender.user,
                actor_label=sender.label,
                study_instance_uid=header.study_instance_uid,
                outcome=AuditEvent.Outcome.MINOR_FAILURE,
                detail={"sop_instance_uid": header.sop_instance_uid, "source": sender.source},
            )
    except DatabaseError:
        _discard(key)
        return ReceiveResult(ReceiveOutcome.UNAVAILABLE, "database unavailable", header=header)
    return ReceiveResult(
        ReceiveOutcome.CONFLICT,
        "a different instance with this SOP Instance UID is already stored",
        instance_id=existing.pk,
        header=header,
    )


def _discard(key: str) -> None:
    with contextlib.suppress(StorageError):
        get_store().delete(key)


def _enqueue_indexing(study_instance_uid: str) -> None:
    from sharing.services.indexing import study_index_request

    study_index_request(study_instance_uid=study_instance_uid)
