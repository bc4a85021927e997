"""The audit trail's hash chain: what each event's hash covers, and checking the whole chain.

Every event stores ``prev_hash`` (the previous event's ``entry_hash``, or ``GENESIS_HASH`` for
the first) and ``entry_hash``, the SHA-256 of a canonical JSON of its content and ``prev_hash``.
Changing an event's content breaks its own hash; deleting or inserting one breaks the link of the
event after it. Chain order is primary-key order (``audit_record`` serializes writers).

Events written before the chain existed have no hash; they may only precede the first hashed one.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import ipaddress
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sharing.models import AuditEvent

GENESIS_HASH = ""
VERIFY_BATCH_SIZE = 2000

# Exactly the fields the hash covers; ``pk`` is not among them (it is only known after the insert).
HASHED_FIELDS = (
    "occurred_at",
    "action",
    "outcome",
    "actor_kind",
    "actor_user_id",
    "actor_label",
    "remote_addr",
    "user_agent",
    "share_id",
    "patient_id",
    "study_instance_uid",
    "detail",
)


def _json_value(value: Any) -> Any:
    """A JSON value as it reads back from any database: jsonb stores numbers as decimals, so a
    float that is a whole number comes back as an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _ip(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return str(value)


def _timestamp(value: datetime.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)
    return value.isoformat(timespec="microseconds")


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def event_content(event: AuditEvent) -> dict[str, Any]:
    """The event's content in one canonical form, whether it is about to be saved or was read back."""
    return {
        "occurred_at": _timestamp(event.occurred_at),
        "action": str(_plain(event.action)),
        "outcome": int(_plain(event.outcome)),
        "actor_kind": str(_plain(event.actor_kind)),
        "actor_user_id": event.actor_user_id,
        "actor_label": event.actor_label,
        "remote_addr": _ip(event.remote_addr),
        "user_agent": event.user_agent,
        "share_id": event.share_id,
        "patient_id": event.patient_id,
        "study_instance_uid": event.study_instance_uid,
        "detail": _json_value(event.detail),
    }


def entry_hash(event: AuditEvent, *, prev_hash: str) -> str:
    payload = {**event_content(event), "prev_hash": prev_hash}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ChainProblem(enum.StrEnum):
    CONTENT_CHANGED = "content changed: the event's hash does not match its content"
    LINK_BROKEN = "link broken: prev_hash is not the previous event's hash (an event was removed or inserted)"
    MISSING_PREDECESSOR = "missing predecessor: the first event of the chain points to an earlier event"
    UNSEALED = "unsealed: an event after the start of the chain has no hash"


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    occurred_at: datetime.datetime
    problem: ChainProblem


@dataclass(frozen=True)
class ChainReport:
    verified: int = 0
    unsealed_before_chain: int = 0
    head_hash: str = GENESIS_HASH
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> ChainBreak | None:
        return self.breaks[0] if self.breaks else None


def _events_in_chain_order() -> Iterator[AuditEvent]:
    return (
        AuditEvent.objects.order_by("pk")
        .only("pk", "prev_hash", "entry_hash", *HASHED_FIELDS)
        .iterator(chunk_size=VERIFY_BATCH_SIZE)
    )


def audit_chain_verify(*, stop_at_first: bool = True) -> ChainReport:
    """Recompute every hash in primary-key order, in batches (constant memory).

    The report holds the events verified, the hash of the last one (worth writing down elsewhere:
    it pins the whole chain) and the breaks found, only the first unless ``stop_at_first`` is off.
    """
    verified = 0
    unsealed = 0
    previous: str | None = None  # None until the first hashed event
    breaks: list[ChainBreak] = []
    for event in _events_in_chain_order():
        if not event.entry_hash and previous is None:
            unsealed += 1  # written before the chain existed
            continue
        problem: ChainProblem | None = None
        if not event.entry_hash:
            problem = ChainProblem.UNSEALED
        elif entry_hash(event, prev_hash=event.prev_hash) != event.entry_hash:
            problem = ChainProblem.CONTENT_CHANGED
        elif previous is None and event.prev_hash != GENESIS_HASH:
            problem = ChainProblem.MISSING_PREDECESSOR
        elif previous is not None and event.prev_hash != previous:
            problem = ChainProblem.LINK_BROKEN
        if problem is not None:
            breaks.append(ChainBreak(event_id=event.pk, occurred_at=event.occurred_at, problem=problem))
            if stop_at_first:
                break
        else:
            verified += 1
        previous = event.entry_hash
    return ChainReport(
        verified=verified, unsealed_before_chain=unsealed, head_hash=previous or GENESIS_HASH, breaks=breaks
    )
