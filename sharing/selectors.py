"""Reads. Every query for patient data goes through a selector that applies the access rule."""

from __future__ import annotations

from django.db.models import QuerySet

from sharing.models import Study, User


def study_list_for_user(*, user: User) -> QuerySet[Study]:
    """The studies a signed-in user may see: their own (through linked Patient records)."""
    return (
        Study.objects.filter(patient__user=user, number_of_instances__gt=0)
        .select_related("patient")
        .order_by("-study_date", "-pk")
    )
