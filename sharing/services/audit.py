"""Writing the audit trail. Call inside the transaction of the change being audited."""

from __future__ import annotations

from typing import Any

from sharing.models import AuditEvent, Patient, User


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
) -> AuditEvent:
    if actor_user is not None and not actor_label:
        actor_label = actor_user.email
    return AuditEvent.objects.create(
        action=action,
        actor_kind=actor_kind,
        actor_user=actor_user,
        actor_label=actor_label[:255],
        remote_addr=remote_addr or None,
        patient=patient,
        study_instance_uid=study_instance_uid,
        outcome=outcome,
        detail=detail or {},
    )


def access_record(
    *,
    user: User,
    action: AuditEvent.Action,
    remote_addr: str | None,
    detail: dict[str, Any] | None = None,
    patient: Patient | None = None,
    study_instance_uid: str = "",
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
    )
