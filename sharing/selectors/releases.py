"""Reads for release requests and reconciliation. Patients get their own requests, records staff
every request; anything else answers 404 (a patient) or 403 (the workspace)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import BigIntegerField, Exists, OuterRef, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import Http404
from django.utils import timezone

from sharing.models import (
    AuditEvent,
    AuthorizationEvent,
    DenialTemplate,
    Facility,
    Patient,
    ReleaseAuthorization,
    RetrieveJob,
    Series,
    Study,
    User,
)
from sharing.selectors.studies import studies_awaiting_reconciliation

SEARCH_LIMIT = 100
DEFAULT_DENIAL_REASONS: tuple[tuple[str, str], ...] = (
    (
        "Identity not verified",
        "We could not verify your identity from the information and documents provided. "
        "Please submit a new request with a clear copy of a photo ID.",
    ),
    (
        "No records found",
        "We found no imaging records at this facility matching the details in your request.",
    ),
    (
        "Authorization incomplete",
        "The authorization is missing information we need to release records. "
        "Please submit a new request and complete every section.",
    ),
    (
        "Representative authority not shown",
        "The request was signed by a personal representative, but we did not receive proof of "
        "their authority to act for the patient (for example, a power of attorney or guardianship).",
    ),
)


def _require_staff(user: User) -> None:
    if not user.is_records_staff:
        raise PermissionDenied("records staff only")


# --- The patient ---------------------------------------------------------------------------------


def authorizations_for_patient(*, user: User) -> QuerySet[ReleaseAuthorization]:
    return (
        ReleaseAuthorization.objects.filter(requester=user)
        .select_related("facility")
        .order_by("-received_at", "-pk")
    )


def authorization_get_for_patient(*, user: User, pk: int) -> ReleaseAuthorization:
    """The requester's own request; anyone else's answers exactly like a missing one."""
    auth = authorizations_for_patient(user=user).filter(pk=pk).first()
    if auth is None:
        raise Http404("no such request")
    return auth


def authorization_timeline(*, authorization: ReleaseAuthorization, staff: bool) -> list[AuthorizationEvent]:
    events = authorization.events.select_related("actor")
    if not staff:
        events = events.filter(visible_to_patient=True)
    return list(events)


def facilities_active() -> QuerySet[Facility]:
    return Facility.objects.filter(is_active=True).order_by("name")


# --- Records staff -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilters:
    status: str = ""  # a Status value, "open" (the default view) or "" for all
    assignee: str = ""  # "mine", "unassigned", a user pk, or ""
    facility: int | None = None
    overdue: bool = False
    sort: str = "due"  # "due", "-due", "received", "-received"


SORTS = {
    "due": ("due_on", "received_at", "pk"),
    "-due": ("-due_on", "-received_at", "-pk"),
    "received": ("received_at", "pk"),
    "-received": ("-received_at", "-pk"),
}


def authorization_queue(*, user: User, filters: QueueFilters) -> QuerySet[ReleaseAuthorization]:
    _require_staff(user)
    queue = ReleaseAuthorization.objects.select_related("facility", "assignee", "requester")
    if filters.status == "open":
        queue = queue.filter(status__in=ReleaseAuthorization.OPEN_STATUSES)
    elif filters.status:
        queue = queue.filter(status=filters.status)
    if filters.assignee == "mine":
        queue = queue.filter(assignee=user)
    elif filters.assignee == "unassigned":
        queue = queue.filter(assignee__isnull=True)
    elif filters.assignee.isdigit():
        queue = queue.filter(assignee_id=int(filters.assignee))
    if filters.facility is not None:
        queue = queue.filter(facility_id=filters.facility)
    if filters.overdue:
        queue = queue.filter(status__in=ReleaseAuthorization.OPEN_STATUSES, due_on__lt=timezone.localdate())
    return queue.order_by(*SORTS.get(filters.sort, SORTS["due"]))


def authorization_get_for_staff(*, user: User, pk: int) -> ReleaseAuthorization:
    _require_staff(user)
    auth = (
        ReleaseAuthorization.objects.select_related(
            "facility",
            "facility__pacs",
            "requester",
            "assignee",
            "patient",
            "identity_verified_by",
            "decided_by",
        )
        .filter(pk=pk)
        .first()
    )
    if auth is None:
        raise Http404("no such request")
    return auth


def authorization_studies(*, authorization: ReleaseAuthorization) -> list[Study]:
    return list(authorization.studies.select_related("patient").order_by("-study_date", "pk"))


def authorization_retrievals(*, authorization: ReleaseAuthorization) -> list[RetrieveJob]:
    return list(authorization.retrievals.select_related("pacs"))


def records_staff(*, user: User) -> QuerySet[User]:
    _require_staff(user)
    return User.objects.filter(role__in=[User.Role.RECORDS, User.Role.ADMIN], is_active=True).order_by(
        "email"
    )


def denial_reasons() -> list[tuple[str, str]]:
    """The editable templates (admin), or sensible defaults until someone writes some."""
    saved = [(t.title, t.text) for t in DenialTemplate.objects.order_by("title")]
    return saved or list(DEFAULT_DENIAL_REASONS)


@dataclass(frozen=True)
class StudySearch:
    patient_id: str = ""
    name: str = ""
    birth_date: datetime.date | None = None
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    modality: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.patient_id or self.name or self.birth_date)


def studies_search_for_staff(*, user: User, search: StudySearch) -> list[Study]:
    """Indexed studies by patient identifiers; at least one identifier is required."""
    _require_staff(user)
    if search.is_empty:
        return []
    studies = Study.objects.filter(number_of_instances__gt=0).select_related("patient", "patient__user")
    if search.patient_id:
        studies = studies.filter(patient__patient_id__iexact=search.patient_id.strip())
    if search.name:
        studies = studies.filter(patient__name__icontains=search.name.strip())
    if search.birth_date:
        studies = studies.filter(patient__birth_date=search.birth_date)
    if search.date_from:
        studies = studies.filter(study_date__gte=search.date_from)
    if search.date_to:
        studies = studies.filter(study_date__lte=search.date_to)
    if search.modality:
        studies = studies.filter(
            Exists(Series.objects.filter(study=OuterRef("pk"), modality__iexact=search.modality.strip()))
        )
    return list(studies.order_by("-study_date", "pk")[:SEARCH_LIMIT])


def studies_by_pk_for_staff(*, user: User, pks: list[int]) -> list[Study]:
    _require_staff(user)
    return list(Study.objects.filter(pk__in=pks).select_related("patient"))


# --- Reconciliation ------------------------------------------------------------------------------


def _reconciled() -> Exists:
    """A RECONCILE decision recorded since the study last received images.

    Several studies may share a Study Instance UID (a patient's upload of a hospital study, a clash
    held apart), so a decision names its study; one recorded before decisions did counts for all.
    """
    return Exists(
        AuditEvent.objects.filter(
            action=AuditEvent.Action.RECONCILE,
            study_instance_uid=OuterRef("study_instance_uid"),
            occurred_at__gte=OuterRef("last_received_at"),
        )
        .annotate(decided=Cast(KeyTextTransform("study", "detail"), BigIntegerField()))
        .filter(Q(decided__isnull=True) | Q(decided=OuterRef("pk")))
    )


def studies_unreconciled(*, user: User) -> QuerySet[Study]:
    """The reconciliation queue: studies awaiting a patient that no one has decided on yet."""
    return studies_awaiting_reconciliation(user=user).filter(~_reconciled())


def study_get_for_reconciliation(*, user: User, pk: int) -> Study:
    _require_staff(user)
    study = Study.objects.select_related("patient", "patient__user").filter(pk=pk).first()
    if study is None:
        raise Http404("no such study")
    return study


def reconciliation_history(*, user: User, study: Study) -> list[AuditEvent]:
    _require_staff(user)
    return list(
        AuditEvent.objects.filter(
            action=AuditEvent.Action.RECONCILE, study_instance_uid=study.study_instance_uid
        )
    )


def patients_search_for_staff(*, user: User, query: str) -> list[Patient]:
    """Patients by PatientID, name, or linked account email."""
    _require_staff(user)
    query = query.strip()
    if not query:
        return []
    return list(
        Patient.objects.filter(
            Q(patient_id__iexact=query) | Q(name__icontains=query) | Q(user__email__iexact=query)
        )
        .select_related("user")
        .order_by("patient_id", "issuer")[:SEARCH_LIMIT]
    )


def patient_get_for_staff(*, user: User, pk: int) -> Patient:
    _require_staff(user)
    patient = Patient.objects.select_related("user").filter(pk=pk).first()
    if patient is None:
        raise Http404("no such patient")
    return patient
