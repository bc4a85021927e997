"""The share session: what a share link is swapped for once its check passes.

The token leaves the URL; the browser holds a fresh server-side session of at most 12 hours that
names the share. The session may outlive the share: every request checks the share itself, so a
recipient of an expired or revoked share is told so (410) rather than asked to open the link again.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import ResolverMatch
from django.utils import timezone

from sharing.access.scope import NoViewer, ShareGone, ShareScope, ViewerScope, user_scope_for
from sharing.models import Share

SHARE_SESSION_KEY = "lightbox_share"
SHARE_SESSION_SECONDS = 12 * 3600


def share_session_start(request: HttpRequest, *, share: Share) -> None:
    """Swap the token for a server-side grant in a fresh session."""
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


def viewer_scope_for(request: HttpRequest) -> ViewerScope:
    """The scope of the request's viewer: the share for URLs under the share namespace, else the
    signed-in user. Raises ``NoViewer`` or ``ShareGone``."""
    match: ResolverMatch | None = request.resolver_match
    if match is not None and "share" in match.namespaces:
        return share_scope_for(request)
    return user_scope_for(request)
