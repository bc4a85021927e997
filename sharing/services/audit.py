"""Writing the audit trail. Call inside the transaction of the change being audited.

``audit_record`` is the only writer: it links each event into the hash chain
(``sharing.services.audit_chain``). Writers are serialized so that chain order is primary-key
order: on PostgreSQL by a transaction-scoped advisory lock, held until the caller's transaction
ends; SQLite allows one writer at a time anyway. Write the audit event after the change it records,
so that the lock is held for as short a time as possible and never taken before a row lock.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from sharing.models import AuditEvent, Patient, Share, User
from sharing.services.audit_chain import GENESIS_HASH, entry_hash

# pg_advisory_xact_lock key for the chain head ("LBAU"); any constant no other code uses.
AUDIT_CHAIN_LOCK_KEY = 0x4C424155


def _chain_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK_KEY])


def _chain_head() -> str:
    head = AuditEvent.objects.order_by("-pk").values_list("entry_hash", flat=True).first()
    return head or GENESIS_HASH


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
    if actor_user is not None and not actor_label:
        actor_label = actor_user.email
    event = AuditEvent(
        action=action,
        actor_kind=actor_kind,
        actor_user=actor_user,
        actor_label=actor_label[:255],
        remote_addr=remote_addr or None,
        user_agent=(user_agent or "")[:255],
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
    """A signed-in user looked at patient data (a list, a study, a search)."""
    return audit_record(
        action=action,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_user=user,
        remote_addr=remote_addr,
        patient=patient,
        study_instance_uid=study_instance_uid,
        detail=detail,
        user_agent=user_agent,
        share=share,
    )
