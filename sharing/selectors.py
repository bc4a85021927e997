"""Reads. Every query for patient data goes through a selector that applies the access rule."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import Http404

from sharing.models import Study, User


def study_list_for_user(*, user: User) -> QuerySet[Study]:
    """The studies a signed-in user may see: their own (through linked Patient records)."""
    return (
        Study.objects.filter(patient__user=user, number_of_instances__gt=0)
        .select_related("patient")
        .order_by("-study_date", "-pk")
    )


def studies_awaiting_reconciliation(*, user: User) -> QuerySet[Study]:
    """Studies whose patient is linked to no account, or that a patient uploaded: staff only."""
    if not user.is_records_staff:
        raise PermissionDenied("records staff only")
    return (
        Study.objects.filter(number_of_instances__gt=0)
        .filter(models.Q(patient__user__isnull=True) | models.Q(is_outside=True))
        .select_related("patient")
        .order_by("-last_received_at", "-pk")
    )


def studies_for_download(*, user: User, study_uids: Sequence[str]) -> list[Study]:
    """The studies asked for, in that order, if the user may have every one of them.

    Patients get their own studies; records staff and administrators any study. A study that is
    not theirs answers exactly like one that does not exist (404), so nothing leaks about it.
    """
    wanted = list(dict.fromkeys(study_uids))
    if not wanted:
        raise Http404("no study")
    studies = Study.objects.filter(study_instance_uid__in=wanted, number_of_instances__gt=0)
    if not user.is_records_staff:
        studies = studies.filter(patient__user=user)
    found = {study.study_instance_uid: study for study in studies.select_related("patient")}
    if len(found) != len(wanted):
        raise Http404("no such study")
    return [found[uid] for uid in wanted]
