"""The viewer of a request, and the studies they may see.

A viewer is either a signed-in user (``UserScope``) or the holder of an opened share link
(``ShareScope``). Pages, DICOMweb, thumbnails, reports and downloads take a scope and narrow its
``studies()``; they never widen it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from sharing.access.rules import shared_studies, studies_visible_to
from sharing.models import AuditEvent, Share, Study, User


@dataclass(frozen=True)
class Actor:
    """A viewer as the audit trail records them."""

    kind: AuditEvent.ActorKind
    label: str
    user: User | None = None
    share: Share | None = None
    # Added to the detail of every event this viewer causes.
    detail: Mapping[str, Any] = field(default_factory=dict)


class ViewerScope(Protocol):
    @property
    def url_namespace(self) -> str:
        """Prefix of the URL names this viewer's links resolve to: "" or "share:"."""
        ...

    @property
    def can_download(self) -> bool: ...

    @property
    def actor(self) -> Actor: ...

    def studies(self) -> QuerySet[Study]:
        """Every study this viewer may see; endpoints narrow it, never widen it."""
        ...

    def describe(self) -> str:
        """Who is looking, in a word or two (logs, cache keys)."""
        ...

    def summary_key(self) -> str:
        """Identifies this viewer for summarised audit events (frames, repeated searches)."""
        ...

    def still_allowed(self) -> bool:
        """Asked again during a long response (a download): may this viewer still see it?"""
        ...


@dataclass(frozen=True)
class UserScope:
    user: User
    url_namespace: str = ""

    @property
    def can_download(self) -> bool:
        return True

    @property
    def actor(self) -> Actor:
        return Actor(kind=AuditEvent.ActorKind.USER, label=self.user.email, user=self.user)

    def studies(self) -> QuerySet[Study]:
        return studies_visible_to(self.user)

    def describe(self) -> str:
        return f"user:{self.user.email}"

    def summary_key(self) -> str:
        return f"user:{self.user.pk}"

    def still_allowed(self) -> bool:
        return User.objects.filter(pk=self.user.pk, is_active=True).exists()


@dataclass(frozen=True)
class ShareScope:
    share: Share
    # When this browser opened the share: part of the summary key, so each session is summarised.
    opened_at: str
    url_namespace: str = "share:"

    @property
    def can_download(self) -> bool:
        return self.share.allow_download

    @property
    def actor(self) -> Actor:
        return Actor(
            kind=AuditEvent.ActorKind.SHARE,
            label=f"Share: {self.share.label}",
            share=self.share,
            detail={"share": self.share.pk},
        )

    def studies(self) -> QuerySet[Study]:
        return shared_studies(self.share)

    def describe(self) -> str:
        return f"share:{self.share.pk}"

    def summary_key(self) -> str:
        return f"share:{self.share.pk}:{self.opened_at}"

    def still_allowed(self) -> bool:
        share = Share.objects.filter(pk=self.share.pk).first()
        return share is not None and share.state_at(timezone.now()) == Share.State.ACTIVE


class NoViewer(Exception):
    """Nobody signed in, and no share opened in this browser."""


class ShareGone(Exception):
    """The share this browser opened no longer works: expired, revoked or locked."""

    def __init__(self, share: Share, state: Share.State) -> None:
        super().__init__(state.value)
        self.share = share
        self.state = state


def user_scope_for(request: HttpRequest) -> UserScope:
    user = request.user
    if isinstance(user, User) and user.is_authenticated and user.is_active:
        return UserScope(user)
    raise NoViewer
