"""Reads of the audit trail: the staff search, and a patient's own access history."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from sharing.models import AuditEvent, Patient, Share, Study, User


def audit_trail_readable_by(user: User) -> bool:
    return user.is_records_staff or user.is_superuser


@dataclass(frozen=True)
class AuditFilters:
    patient: str = ""  # PatientID or name contains
    user: str = ""  # email contains
    study_instance_uid: str = ""
    action: str = ""
    since: datetime.date | None = None
    until: datetime.date | None = None  # inclusive


def _day_start(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def audit_events_search(*, user: User, filters: AuditFilters) -> QuerySet[AuditEvent]:
    """The whole audit trail, narrowed by ``filters``, newest first: records staff only."""
    if not audit_trail_readable_by(user):
        raise PermissionDenied("records staff only")
    return audit_events_matching(filters=filters)


def audit_events_matching(*, filters: AuditFilters) -> QuerySet[AuditEvent]:
    """No access rule: for ``audit_events_search`` and the ``export_audit`` command only."""
    events = AuditEvent.objects.select_related("patient", "share")
    if filters.patient:
        term = filters.patient.strip()
        patients = Q(patient_id__icontains=term) | Q(name__icontains=term)
        events = events.filter(
            Q(patient__in=Patient.objects.filter(patients))
            | Q(
                study_instance_uid__in=Study.objects.filter(
                    patient__in=Patient.objects.filter(patients)
                ).values("study_instance_uid")
            )
        )
    if filters.user:
        term = filters.user.strip()
        # A failed sign-in has no user, only the address that was tried.
        events = events.filter(Q(actor_label__icontains=term) | Q(detail__email__icontains=term))
    if filters.study_instance_uid:
        events = events.filter(study_instance_uid=filters.study_instance_uid.strip())
    if filters.action:
        events = events.filter(action=filters.action)
    if filters.since:
        events = events.filter(occurred_at__gte=_day_start(filters.since))
    if filters.until:
        events = events.filter(occurred_at__lt=_day_start(filters.until + datetime.timedelta(days=1)))
    return events.order_by("-occurred_at", "-pk")


def audit_events_for_export(*, user: User, filters: AuditFilters) -> QuerySet[AuditEvent]:
    """As the search, in chain order, for streaming with ``iterator()``."""
    return audit_events_search(user=user, filters=filters).order_by("pk")


class AccessKind:
    ALL = "all"
    SHARES = "shares"
    STAFF = "staff"
    YOU = "you"
    CHOICES = ((ALL, "Everything"), (SHARES, "Share links"), (STAFF, "Staff"), (YOU, "You"))


def access_history_for_user(*, user: User, kind: str = AccessKind.ALL) -> QuerySet[AuditEvent]:
    """Every audit event that touches the user's own data, newest first.

    That is events about one of their patient records or studies, about a share they made, or
    done by themselves. The ids are read first (three small queries) so that the main query is a
    plain OR of indexed columns.
    """
    patient_ids = list(Patient.objects.filter(user=user).values_list("pk", flat=True))
    study_uids = list(
        Study.objects.filter(patient__user=user, held_reason="").values_list("study_instance_uid", flat=True)
    )
    share_ids = list(Share.objects.filter(owner=user).values_list("pk", flat=True))
    touching = Q(actor_user=user)
    if patient_ids:
        touching |= Q(patient_id__in=patient_ids)
    if study_uids:
        # A Study Instance UID does not prove whose study an event was about: another patient's
        # upload may reuse it. What another patient did is never this user's history.
        touching |= Q(study_instance_uid__in=study_uids) & (
            Q(actor_user__isnull=True) | Q(actor_user=user) | ~Q(actor_user__role=User.Role.PATIENT)
        )
    if share_ids:
        touching |= Q(share_id__in=share_ids)
    events = AuditEvent.objects.filter(touching)
    if kind == AccessKind.SHARES:
        events = events.filter(actor_kind=AuditEvent.ActorKind.SHARE)
    elif kind == AccessKind.STAFF:
        events = events.filter(actor_kind=AuditEvent.ActorKind.USER).exclude(actor_user=user)
    elif kind == AccessKind.YOU:
        events = events.filter(actor_user=user)
    return events.select_related("share").order_by("-occurred_at", "-pk")


def studies_by_uid(*, uids: set[str]) -> dict[str, Study]:
    """Description and date of the studies a page of events mentions, in one query."""
    if not uids:
        return {}
    studies = (
        Study.objects.filter(study_instance_uid__in=uids, held_reason="")
        # Several rows may share a UID (a patient's upload of a hospital study): the hospital's wins.
        .order_by(F("patient__upload_owner").desc(nulls_last=True), "-pk")
        .only("study_instance_uid", "description", "study_date")
    )
    return {study.study_instance_uid: study for study in studies}
