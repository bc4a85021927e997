"""Reads for share links: a patient's own shares, one share's accesses, a share's studies."""

from __future__ import annotations

from django.db.models import Count, Prefetch, QuerySet
from django.http import Http404

from sharing.access.rules import own_studies
from sharing.models import AuditEvent, Share, Study, User


def shares_for_owner(*, user: User) -> QuerySet[Share]:
    """The user's shares, newest first, with their studies in one more query."""
    return (
        Share.objects.filter(owner=user)
        .annotate(study_count=Count("studies", distinct=True))
        .prefetch_related(Prefetch("studies", queryset=Study.objects.order_by("-study_date", "pk")))
        .order_by("-created_at", "-pk")
    )


def share_get_for_owner(*, user: User, share_id: int) -> Share:
    share = shares_for_owner(user=user).filter(pk=share_id).first()
    if share is None:
        raise Http404("no such share")
    return share


def share_access_history(*, share: Share) -> QuerySet[AuditEvent]:
    """Everything done through (or to) a share, newest first. One row per share event, not per
    study: events written for each shared study are folded by the page."""
    return AuditEvent.objects.filter(share=share).order_by("-occurred_at", "-pk")


def owner_studies_for_sharing(*, user: User) -> QuerySet[Study]:
    """The studies a patient may share: their own, never another patient's, even for staff."""
    return own_studies(user).order_by("-study_date", "-pk")
