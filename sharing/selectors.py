"""Reads. Every query for patient data goes through a selector that applies the access rule."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet

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
