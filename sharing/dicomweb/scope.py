"""Who is looking, and which studies they may see: the one question every endpoint asks.

A viewer is either a signed-in user (``UserScope``) or the holder of an opened share link
(``ShareScope``). Pages, DICOMweb, thumbnails, reports and downloads take a scope and narrow its
``studies()``; a study outside it answers exactly like a study that does not exist (404), so
nothing leaks about it. A share's scope is re-checked on every request, so a revoked, expired or
locked share stops at once (``ShareGone``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.core.cache import cache
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from sharing.dicomweb.recall import Recall
from sharing.models import AuditEvent, Patient, Share, Study, User
from sharing.selectors import studies_visible_to
from sharing.services.audit import access_record, audit_record

SHARE_SESSION_KEY = "lightbox_share"
# What a viewer's software repeats (frames of a series, the same search) is audited once per
# viewer and this window, not once per request.
SUMMARY_SECONDS = 30 * 60
SHARE_SESSION_SECONDS = 12 * 3600


class ViewerScope(Protocol):
    @property
    def url_namespace(self) -> str:
        """Prefix of the URL names this viewer's links resolve to: "" or "share:"."""
        ...

    @property
    def can_download(self) -> bool: ...

    def studies(self) -> QuerySet[Study]:
        """Every study this viewer may see; endpoints narrow it, never widen it."""
        ...

    def describe(self) -> str:
        """Who is looking, for the audit trail."""
        ...

    def summary_key(self) -> str:
        """Identifies this viewer for summarised audit events (frames)."""
        ...

    def still_allowed(self) -> bool:
        """Asked again during a long response (a download): may this viewer still see it?"""
        ...

    def record_access(
        self,
        *,
        action: AuditEvent.Action,
        remote_addr: str | None,
        study_instance_uid: str = "",
        detail: dict[str, Any] | None = None,
        user_agent: str = "",
        patient: Patient | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class UserScope:
    user: User
    url_namespace: str = ""

    @property
    def can_download(self) -> bool:
        return True

    def studies(self) -> QuerySet[Study]:
        # The portal's one access rule, shared with the library, study pages and downloads.
        return studies_visible_to(self.user)

    def describe(self) -> str:
        return f"user:{self.user.email}"

    def summary_key(self) -> str:
        return f"user:{self.user.pk}"

    def still_allowed(self) -> bool:
        return User.objects.filter(pk=self.user.pk, is_active=True).exists()

    def record_access(
        self,
        *,
        action: AuditEvent.Action,
        remote_addr: str | None,
        study_instance_uid: str = "",
        detail: dict[str, Any] | None = None,
        user_agent: str = "",
        patient: Patient | None = None,
    ) -> None:
        access_record(
            user=self.user,
            action=action,
            remote_addr=remote_addr,
            study_instance_uid=study_instance_uid,
            detail=detail,
            user_agent=user_agent,
            patient=patient,
        )


@dataclass(frozen=True)
class ShareScope:
    share: Share
    # When this browser opened the share: part of the summary key, so each session is summarised.
    opened_at: str
    url_namespace: str = "share:"

    @property
    def can_download(self) -> bool:
        return self.share.allow_download

    def studies(self) -> QuerySet[Study]:
        return Study.objects.filter(shares=self.share, number_of_instances__gt=0)

    def describe(self) -> str:
        return f"share:{self.share.pk}"

    def summary_key(self) -> str:
        return f"share:{self.share.pk}:{self.opened_at}"

    def still_allowed(self) -> bool:
        share = Share.objects.filter(pk=self.share.pk).first()
        return share is not None and share.state_at(timezone.now()) == Share.State.ACTIVE

    def record_access(
        self,
        *,
        action: AuditEvent.Action,
        remote_addr: str | None,
        study_instance_uid: str = "",
        detail: dict[str, Any] | None = None,
        user_agent: str = "",
        patient: Patient | None = None,
    ) -> None:
        if patient is None and study_instance_uid:
            study = (
                self.studies().filter(study_instance_uid=study_instance_uid).select_related("patient").first()
            )
            patient = study.patient if study else None
        audit_record(
            action=action,
            actor_kind=AuditEvent.ActorKind.SHARE,
            actor_label=f"Share: {self.share.label}",
            remote_addr=remote_addr,
            user_agent=user_agent,
            share=self.share,
            patient=patient,
            study_instance_uid=study_instance_uid,
            detail={"share": self.share.pk, **(detail or {})},
        )


class NoViewer(Exception):
    """Nobody signed in, and no share opened in this browser."""


class ShareGone(Exception):
    """The share this browser opened no longer works: expired, revoked or locked."""

    def __init__(self, share: Share, state: Share.State) -> None:
        super().__init__(state.value)
        self.share = share
        self.state = state


def user_agent_of(request: HttpRequest) -> str:
    return request.headers.get("User-Agent", "")[:255]


def share_session_start(request: HttpRequest, *, share: Share) -> None:
    """Swap the token for a server-side grant in a fresh session of at most 12 hours.

    The session may outlive the share: every request checks the share itself, so a recipient of an
    expired or revoked share is told so (410) rather than asked to open the link again.
    """
    request.session.cycle_key()
    request.session[SHARE_SESSION_KEY] = {"share": share.pk, "opened_at": timezone.now().isoformat()}
    request.session.set_expiry(SHARE_SESSION_SECONDS)


def share_session_end(request: HttpRequest) -> None:
    request.session.pop(SHARE_SESSION_KEY, None)


def share_scope_for(request: HttpRequest) -> ShareScope:
    """The opened share of this browser; ``NoViewer`` without one, ``ShareGone`` if it stopped."""
    grant = request.session.get(SHARE_SESSION_KEY)
    if not isinstance(grant, dict) or not isinstance(grant.get("share"), int):
        raise NoViewer
    share = Share.objects.select_related("owner", "authorization__facility").filter(pk=grant["share"]).first()
    if share is None:
        raise NoViewer
    state = share.state_at(timezone.now())
    if state != Share.State.ACTIVE:
        raise ShareGone(share, state)
    return ShareScope(share=share, opened_at=str(grant.get("opened_at", "")))


def user_scope_for(request: HttpRequest) -> UserScope:
    user = request.user
    if isinstance(user, User) and user.is_authenticated and user.is_active:
        return UserScope(user)
    raise NoViewer


def viewer_scope_for(request: HttpRequest) -> ViewerScope:
    """The scope of the request's viewer: the share for URLs under the share namespace, else the
    signed-in user. Raises ``NoViewer`` or ``ShareGone``."""
    match = request.resolver_match
    if match is not None and "share" in match.namespaces:
        return share_scope_for(request)
    return user_scope_for(request)


def _record_once(
    scope: ViewerScope,
    what: str,
    *,
    action: AuditEvent.Action,
    study_instance_uid: str,
    remote_addr: str | None,
    user_agent: str,
    detail: dict[str, Any],
) -> None:
    """Audit ``what`` for this viewer unless it was audited within the summary window.

    The window's end is the cache entry's value. A process that has seen it keeps it (``_known``)
    and asks the cache nothing more until then: a viewer's next frame costs no round trip.
    """
    key = f"lightbox:audited:{scope.summary_key()}:{what}"
    now = _clock()
    if _known.get(key, now):
        return
    until = now + SUMMARY_SECONDS
    if cache.add(key, until, timeout=SUMMARY_SECONDS):
        scope.record_access(
            action=action,
            remote_addr=remote_addr,
            study_instance_uid=study_instance_uid,
            user_agent=user_agent,
            detail=detail,
        )
    else:
        until = cache.get(key)
    if isinstance(until, float):
        _known.keep(key, True, until)


# Summary windows this process knows to be open.
_known: Recall[bool] = Recall(20_000)
_clock = time.time


def frames_record(
    scope: ViewerScope,
    *,
    series_instance_uid: str,
    study_instance_uid: str,
    remote_addr: str | None,
    user_agent: str,
) -> None:
    """Audit a viewer's frames once per series and half hour, not once per frame."""
    _record_once(
        scope,
        f"frames:{series_instance_uid}",
        action=AuditEvent.Action.FRAMES,
        study_instance_uid=study_instance_uid,
        remote_addr=remote_addr,
        user_agent=user_agent,
        detail={"series_instance_uid": series_instance_uid},
    )


def search_record(
    scope: ViewerScope,
    *,
    path: str,
    query: Mapping[str, Sequence[str]],
    detail: dict[str, Any],
    study_instance_uid: str,
    remote_addr: str | None,
    user_agent: str,
) -> None:
    """Audit a QIDO search once per viewer, search and half hour.

    A viewer repeats its searches (every page load asks for the study's series again); the first
    of a run of identical searches is recorded, with its criteria. A different search, or the same
    one from another viewer, is recorded as it comes.
    """
    criteria = json.dumps([path, sorted((k, list(v)) for k, v in query.items())])
    _record_once(
        scope,
        "search:" + hashlib.sha256(criteria.encode()).hexdigest()[:32],
        action=AuditEvent.Action.QUERY,
        study_instance_uid=study_instance_uid,
        remote_addr=remote_addr,
        user_agent=user_agent,
        detail=detail,
    )
