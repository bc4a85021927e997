"""The Storage SCP's event handlers: plain functions that return DIMSE statuses and never raise.

They are bound to pynetdicom events in ``sharing.scp.server``; tests call them directly too.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connections
from pydicom.dataset import Dataset

from sharing.models import Study
from sharing.services.audit import Client
from sharing.services.receiving import ReceiveResult, Sender, ingest_audit_record, instance_receive

logger = logging.getLogger("sharing.scp")

SUCCESS = 0x0000
PROCESSING_FAILURE = 0x0110


@dataclass
class AssociationTally:
    """What one association stored, summarised into audit events when it ends."""

    calling_ae: str
    address: str
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sender_label(self) -> str:
        return f"{self.calling_ae}@{self.address}"

    @property
    def sender(self) -> Sender:
        return Sender(source=Study.Source.DIMSE, label=self.sender_label, client=Client(address=self.address))

    def add(self, result: ReceiveResult) -> None:
        with self.lock:
            self.outcomes[result.study_instance_uid][result.outcome.value] += 1


def peer_of(assoc: Any) -> tuple[str, str]:
    requestor = assoc.requestor
    return str(requestor.ae_title).strip(), str(requestor.address)


def tally_for(assoc: Any) -> AssociationTally:
    tally: AssociationTally | None = getattr(assoc, "lightbox_tally", None)
    if tally is None:
        calling_ae, address = peer_of(assoc)
        tally = AssociationTally(calling_ae=calling_ae, address=address)
        assoc.lightbox_tally = tally
    return tally


def status_dataset(status: int, comment: str = "") -> Dataset:
    response = Dataset()
    response.Status = status
    if comment:
        response.ErrorComment = comment[:64]
    return response


def handle_echo(event: Any) -> int:
    return SUCCESS


def handle_store(event: Any) -> Dataset:
    """C-STORE: receive the dataset pynetdicom has written to a temporary Part-10 file."""
    try:
        tally = tally_for(event.assoc)
        request = event.request
        result = instance_receive(
            path=Path(event.dataset_path),
            sender=tally.sender,
            expected_sop_instance_uid=str(request.AffectedSOPInstanceUID or ""),
            expected_sop_class_uid=str(request.AffectedSOPClassUID or ""),
        )
        tally.add(result)
    except Exception:  # the last line of defence: a peer must get a status, not a dropped link
        logger.exception("unexpected error while storing an instance")
        return status_dataset(PROCESSING_FAILURE, "internal error")
    if not result.outcome.is_success:
        logger.info("C-STORE from %s refused: %s (%s)", tally.sender_label, result.outcome, result.reason)
    return status_dataset(result.outcome.dimse_status, result.reason)


def is_peer_allowed(calling_ae: str, address: str, allowed: list[str]) -> bool:
    """``allowed`` holds "AE" or "AE@host" entries; empty means anyone may store."""
    if not allowed:
        return True
    for entry in allowed:
        ae, _, host = entry.partition("@")
        if ae.strip() == calling_ae and (not host or host.strip() == address):
            return True
    return False


def handle_released(event: Any) -> None:
    _association_end(event.assoc, aborted=False)


def handle_aborted(event: Any) -> None:
    _association_end(event.assoc, aborted=True)


def _association_end(assoc: Any, *, aborted: bool) -> None:
    """Write one audit event per study the association touched, then free its DB connection."""
    tally: AssociationTally | None = getattr(assoc, "lightbox_tally", None)
    try:
        if tally is not None and tally.outcomes:
            association_audit_record(tally=tally, aborted=aborted)
    except DatabaseError:
        logger.exception("could not write the ingest audit events for %s", tally and tally.sender_label)
    finally:
        connections.close_all()


def association_audit_record(*, tally: AssociationTally, aborted: bool = False) -> None:
    ingest_audit_record(
        counts=tally.outcomes,
        sender=tally.sender,
        aborted=aborted,
    )
