"""Writing the audit trail: ``audit_event_record`` is its one writer. Call it inside the
transaction of the change being audited.

Each event is linked into the hash chain (``sharing.services.audit_chain``). Writers are
serialized so that chain order is primary-key order: on PostgreSQL by a transaction-scoped
advisory lock, held until the caller's transaction ends; SQLite allows one writer at a time anyway.
That lock is the trail's throughput ceiling: every audited change in the whole deployment takes it
in turn, for the time between the event's insert and its transaction's commit. So write the event
after the change it records, as the last statement before commit, and never before a row lock.

Who did it is the actor (a user, a share link, a DICOM peer, or Lightbox itself); where it came
from is the ``Client``, built once per request by ``Client.of`` and handed down to the services.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from sharing.models import AuditEvent, Patient, Share, User
from sharing.services.audit_chain import GENESIS_HASH, entry_hash

# pg_advisory_xact_lock key for the chain head ("LBAU"); any constant no other code uses.
AUDIT_CHAIN_LOCK_KEY = 0x4C424155

USER_AGENT_LENGTH = 255
_REQUEST_CLIENT = "_lightbox_client"


@dataclass(frozen=True, slots=True)
class Client:
    """The far end of a request or an association: its network address and what it says it is."""

    address: str | None = None
    user_agent: str = ""

    @classmethod
    def of(cls, request: HttpRequest) -> Client:
        """The request's client, read from it once and kept on it."""
        client: Client | None = getattr(request, _REQUEST_CLIENT, None)
        if client is None:
            client = cls(
                address=request.META.get("REMOTE_ADDR") or None,
                user_agent=request.headers.get("User-Agent", "")[:USER_AGENT_LENGTH],
            )
            setattr(request, _REQUEST_CLIENT, client)
        return client


# Work that Lightbox does on its own (tasks, commands), with no one on the other end.
NO_CLIENT = Client()


def _chain_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK_KEY])


def _chain_head() -> str:
    head = AuditEvent.objects.order_by("-pk").values_list("entry_hash", flat=True).first()
    return head or GENESIS_HASH


def audit_event_record(
    *,
    action: AuditEvent.Action,
    client: Client,
    actor_user: User | None = None,
    actor_kind: AuditEvent.ActorKind | None = None,
    actor_label: str = "",
    share: Share | None = None,
    patient: Patient | None = None,
    study_instance_uid: str = "",
    outcome: AuditEvent.Outcome = AuditEvent.Outcome.SUCCESS,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. The actor is the user when one is given, else Lightbox itself, unless
    ``actor_kind`` says otherwise (a share link, a DICOM peer)."""
    if actor_kind is None:
        actor_kind = AuditEvent.ActorKind.USER if actor_user is not None else AuditEvent.ActorKind.SYSTEM
    if actor_user is not None and not actor_label:
        actor_label = actor_user.email
    event = AuditEvent(
        action=action,
        actor_kind=actor_kind,
        actor_user=actor_user,
        actor_label=actor_label[:255],
        remote_addr=client.address or None,
        user_agent=client.user_agent[:USER_AGENT_LENGTH],
        share=share,
        patient=patient,
        study_instance_uid=study_instance_uid,
        outcome=outcome,
        detail=detail or {},
    )
    # No savepoint: inside the caller's transaction a failure here fails the whole change, as it should.
    with transaction.atomic(savepoint=False):
        _chain_lock()
        event.occurred_at = timezone.now()  # under the lock, so times follow chain order
        event.prev_hash = _chain_head()
        event.entry_hash = entry_hash(event, prev_hash=event.prev_hash)
        event.save(force_insert=True)
    return event


# The two spellings below go once every caller passes a Client (issue: one audit API).
def audit_record(
    *,
    action: AuditEvent.Action,
    actor_kind: AuditEvent.ActorKind,
    actor_user: User | None = None,
    actor_label: str = "",
    remote_addr: str | None = None,
    patient: Patient | None = None,
    study_instance_uid: str = "",
    outcome: AuditEvent.Outcome = AuditEvent.Outcome.SUCCESS,
    detail: dict[str, Any] | None = None,
    user_agent: str = "",
    share: Share | None = None,
) -> AuditEvent:
    return audit_event_record(
        action=action,
        client=Client(address=remote_addr, user_agent=user_agent or ""),
        actor_user=actor_user,
        actor_kind=actor_kind,
        actor_label=actor_label,
        share=share,
        patient=patient,
        study_instance_uid=study_instance_uid,
        outcome=outcome,
        detail=detail,
    )


def access_record(
    *,
    user: User,
    action: AuditEvent.Action,
    remote_addr: str | None,
    detail: dict[str, Any] | None = None,
    patient: Patient | None = None,
    study_instance_uid: str = "",
    user_agent: str = "",
    share: Share | None = None,
) -> AuditEvent:
    return audit_event_record(
        action=action,
        client=Client(address=remote_addr, user_agent=user_agent or ""),
        actor_user=user,
        patient=patient,
        study_instance_uid=study_instance_uid,
        detail=detail,
        share=share,
    )
