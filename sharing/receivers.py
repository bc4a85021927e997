"""Signal receivers: signing in, failing to and signing out are audited; a saved account is
dropped from the cache of signed-in users.

Connected in ``SharingConfig.ready``. Django sends these signals for allauth's sign-in too (allauth
authenticates and logs in through ``django.contrib.auth``).
"""

from __future__ import annotations

from typing import Any

from allauth.account.internal.flows.login import record_authentication
from allauth.mfa.models import Authenticator
from allauth.mfa.signals import authenticator_added
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest

from sharing.auth_backends import forget_authenticators, forget_user
from sharing.models import AuditEvent, User
from sharing.services.audit import NO_CLIENT, Client, audit_event_record


def _client(request: HttpRequest | None) -> Client:
    return NO_CLIENT if request is None else Client.of(request)


def _attempted_email(credentials: dict[str, Any]) -> str:
    """The address someone tried to sign in as. People sometimes type a password into the email
    box, so anything that does not look like an address is not kept."""
    value = credentials.get("email") or credentials.get("username") or ""
    value = str(value).strip().lower()
    if "@" in value and " " not in value and len(value) <= 254:
        return value
    return "(not an email address)" if value else ""


def on_user_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if isinstance(user, User):
        audit_event_record(action=AuditEvent.Action.LOGIN, client=_client(request), actor_user=user)


def on_user_logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if isinstance(user, User):  # None when the session had no signed-in user
        audit_event_record(action=AuditEvent.Action.LOGOUT, client=_client(request), actor_user=user)


def on_user_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Django has already masked the password in ``credentials``; only the address is read.
    email = _attempted_email(credentials)
    audit_event_record(
        action=AuditEvent.Action.LOGIN_FAILED,
        client=_client(request),
        actor_kind=AuditEvent.ActorKind.USER,
        outcome=AuditEvent.Outcome.MINOR_FAILURE,
        detail={"email": email} if email else {},
    )


def on_authenticator_added(
    sender: Any, request: HttpRequest | None, user: Any, authenticator: Authenticator, **kwargs: Any
) -> None:
    """Setting up an authenticator app proves it with a code: this session has passed the second
    factor (sharing.middleware.StaffMFAMiddleware), as if it had signed in with it."""
    if request is not None and authenticator.type == Authenticator.Type.TOTP:
        record_authentication(request, user, "mfa", id=authenticator.pk, type=authenticator.type)


def connect() -> None:
    # A saved account, and whether it has an authenticator app, are read afresh by the next
    # request (sharing.auth_backends). Accounts are never deleted: their audit events protect them.
    post_save.connect(forget_user, sender=User, dispatch_uid="lightbox.user_cache.save")
    post_save.connect(forget_authenticators, sender=Authenticator, dispatch_uid="lightbox.totp_cache.save")
    post_delete.connect(
        forget_authenticators, sender=Authenticator, dispatch_uid="lightbox.totp_cache.delete"
    )
    authenticator_added.connect(on_authenticator_added, dispatch_uid="lightbox.mfa.added")
    user_logged_in.connect(on_user_logged_in, dispatch_uid="lightbox.audit.login")
    user_logged_out.connect(on_user_logged_out, dispatch_uid="lightbox.audit.logout")
    user_login_failed.connect(on_user_login_failed, dispatch_uid="lightbox.audit.login_failed")
