"""Reads of studies. Every query for patient data narrows the access rule (``sharing.access``)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.http import Http404
from django.utils import timezone

from sharing.access.rules import own_studies
from sharing.dicom.sop import ENCAPSULATED_CDA, ENCAPSULATED_PDF, SR_SOP_CLASS_PREFIX
from sharing.models import Instance, Series, Study, User


def study_list_for_user(*, user: User) -> QuerySet[Study]:
    """A signed-in user's own studies (those of the Patient records linked to them), newest first."""
    return own_studies(user).order_by("-study_date", "-pk")


def studies_awaiting_reconciliation(*, user: User) -> QuerySet[Study]:
    """Studies whose patient is linked to no account, that a patient uploaded, or that are held
    for an identity clash: staff only."""
    if not user.is_records_staff:
        raise PermissionDenied("records staff only")
    return (
        Study.objects.filter(number_of_instances__gt=0)
        .filter(models.Q(patient__user__isnull=True) | models.Q(is_outside=True) | ~models.Q(held_reason=""))
        .select_related("patient")
        .order_by("-last_received_at", "-pk")
    )


def studies_for_download_in(*, visible: QuerySet[Study], study_uids: Sequence[str]) -> list[Study]:
    """The studies asked for, in that order, if the viewer may have every one of them.

    A study outside ``visible`` answers exactly like one that does not exist (404), so nothing
    leaks about it.
    """
    wanted = list(dict.fromkeys(study_uids))
    if not wanted:
        raise Http404("no study")
    studies = visible.filter(study_instance_uid__in=wanted)
    found = {study.study_instance_uid: study for study in studies.select_related("patient")}
    if len(found) != len(wanted):
        raise Http404("no such study")
    return [found[uid] for uid in wanted]


def study_library_for_user(
    *,
    user: User,
    date_from: datetime.date | None = None,
    date_to: datetime.date | None = None,
    modality: str = "",
) -> QuerySet[Study]:
    """The signed-in user's own studies for the library, newest first, filtered.

    A study's card shows the thumbnail of its ``preview_series`` (``study_preview_get_in``), so
    the cards need no other query.
    """
    studies = study_list_for_user(user=user)
    if date_from is not None:
        studies = studies.filter(study_date__gte=date_from)
    if date_to is not None:
        studies = studies.filter(study_date__lte=date_to)
    if modality:
        studies = studies.filter(Exists(Series.objects.filter(study=OuterRef("pk"), modality=modality)))
    return studies


def study_modalities_for_user(*, user: User) -> list[str]:
    """The modalities present in the user's own studies, for the library's filter."""
    values = (
        Series.objects.filter(study__in=study_list_for_user(user=user).order_by())
        .exclude(modality="")
        .values_list("modality", flat=True)
        .distinct()
        .order_by("modality")
    )
    return list(values)


def study_get_in(*, visible: QuerySet[Study], study_instance_uid: str) -> Study:
    """One study of a viewer's scope (``visible``: a user's studies, or a share's), or 404.

    Staff may see several rows of one Study Instance UID (the hospital's, a patient's upload of
    it, a clash held apart): the first received answers.
    """
    study = (
        visible.filter(study_instance_uid=study_instance_uid)
        .order_by("pk")
        .select_related("patient")
        .prefetch_related(Prefetch("series", queryset=Series.objects.order_by("series_number", "pk")))
        .first()
    )
    if study is None:
        raise Http404("no such study")
    return study


def series_get_in(*, visible: QuerySet[Study], study_instance_uid: str, series_instance_uid: str) -> Series:
    """One series of a study in a viewer's scope; 404 otherwise."""
    series = (
        Series.objects.filter(
            study__in=visible.filter(study_instance_uid=study_instance_uid),
            series_instance_uid=series_instance_uid,
        )
        .select_related("study")
        .first()
    )
    if series is None:
        raise Http404("no such series")
    return series


def study_preview_get_in(*, visible: QuerySet[Study], study_instance_uid: str) -> Series:
    """The series whose thumbnail stands for a study of a viewer's scope; 404 if it has none."""
    series = Series.objects.filter(
        pk__in=visible.filter(study_instance_uid=study_instance_uid).values("preview_series")
    ).first()
    if series is None:
        raise Http404("no preview")
    return series


def _report_instances() -> QuerySet[Instance]:
    return Instance.objects.filter(state=Instance.State.INDEXED).filter(
        models.Q(sop_class_uid__startswith=SR_SOP_CLASS_PREFIX)
        | models.Q(sop_class_uid__in=[ENCAPSULATED_PDF, ENCAPSULATED_CDA])
    )


def study_reports(*, study: Study) -> list[Instance]:
    """The study's structured reports and PDF reports, in series and instance order.

    The study must come from an access-checked selector (``study_get_in``).
    """
    return list(
        _report_instances()
        .filter(series__study=study)
        .order_by("series__series_number", "series__pk", "instance_number", "pk")
    )


def report_pdf_get_in(
    *, visible: QuerySet[Study], study_instance_uid: str, sop_instance_uid: str
) -> Instance:
    """An encapsulated PDF instance of a study in a viewer's scope; 404 otherwise."""
    instance = (
        Instance.objects.filter(
            state=Instance.State.INDEXED,
            sop_class_uid=ENCAPSULATED_PDF,
            sop_instance_uid=sop_instance_uid,
            series__study__in=visible.filter(study_instance_uid=study_instance_uid),
        )
        .select_related("series__study__patient")
        .first()
    )
    if instance is None:
        raise Http404("no such report")
    return instance


def series_received_within(*, series: Series, seconds: float) -> bool:
    """Whether an instance of the series arrived less than ``seconds`` ago (it is still settling)."""
    latest = Instance.objects.filter(series=series).aggregate(latest=models.Max("received_at"))["latest"]
    return latest is not None and timezone.now() - latest < datetime.timedelta(seconds=seconds)
