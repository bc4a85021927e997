"""Exporting the audit trail (CSV or DICOM audit messages), an export being itself audited."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from typing import Literal

from sharing.models import AuditEvent, User
from sharing.selectors.audit import AuditFilters
from sharing.services.atna import audit_messages_xml
from sharing.services.audit import NO_CLIENT, Client, audit_event_record

ExportFormat = Literal["csv", "xml"]

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

CSV_HEADER = [
    "id",
    "occurred_at",
    "action",
    "outcome",
    "actor_kind",
    "actor",
    "remote_addr",
    "user_agent",
    "patient_id",
    "patient_name",
    "study_instance_uid",
    "share_id",
    "entry_hash",
]


def csv_safe(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Echo:
    """A file-like object for ``csv.writer`` that hands each row back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _csv_row(event: AuditEvent) -> list[str]:
    patient = event.patient
    return [
        csv_safe(value)
        for value in (
            event.pk,
            event.occurred_at.isoformat(),
            event.action,
            event.outcome,
            event.actor_kind,
            event.actor_label,
            event.remote_addr or "",
            event.user_agent,
            f"{patient.patient_id}^^^{patient.issuer}" if patient else "",
            patient.name if patient else "",
            event.study_instance_uid,
            event.share_id or "",
            event.entry_hash,
        )
    ]


def audit_csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    for event in events:
        yield writer.writerow(_csv_row(event))


def audit_export_lines(*, events: Iterable[AuditEvent], fmt: ExportFormat) -> Iterator[str]:
    """The export as it is written: pass ``queryset.iterator()`` to keep memory constant."""
    return audit_csv_lines(events) if fmt == "csv" else audit_messages_xml(events)


def audit_export_record(
    *,
    fmt: ExportFormat,
    filters: AuditFilters,
    actor_user: User | None = None,
    actor_label: str = "",
    client: Client = NO_CLIENT,
) -> AuditEvent:
    """Recorded before the first row is written."""
    return audit_event_record(
        action=AuditEvent.Action.EXPORT,
        actor_kind=AuditEvent.ActorKind.USER if actor_user else AuditEvent.ActorKind.SYSTEM,
        actor_user=actor_user,
        actor_label=actor_label,
        client=client,
        detail={"format": fmt, **{key: str(value) for key, value in asdict(filters).items() if value}},
    )
