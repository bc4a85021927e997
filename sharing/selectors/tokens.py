"""Reads for personal API tokens: a staff member's own, never anyone else's."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from sharing.models import ApiToken, User


def api_tokens_for_owner(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(owner=user).order_by("-created_at", "-pk")


def api_token_get_for_owner(*, user: User, token_id: int) -> ApiToken:
    """The user's token; another's answers 404 like one that does not exist."""
    token = api_tokens_for_owner(user=user).filter(pk=token_id).first()
    if token is None:
        raise Http404("no such token")
    return token
