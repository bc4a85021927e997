"""Authentication backends that read the signed-in user from the cache.

Django loads the session's user from the database on every request, to check that the account is
still active and that the session was made with its current password. The viewer makes hundreds of
requests for one series, so the user row is kept in the cache for a few minutes and dropped the
moment the row is saved (``forget_user``, connected in ``SharingConfig.ready``). Every
change of role, password or activity goes through ``save``; the checks themselves (active,
password hash of the session) still run on every request, on the cached row.

Whether the account has an authenticator app, which every staff request asks, is kept with the
cached row, and both are dropped whenever one of its authenticators is saved or deleted.

The cache must be one that every process shares (Redis), or a change made in one process (an
account deactivated, a password changed) would go unseen by the others until the entry ran out:
without Redis ``LIGHTBOX_USER_CACHE_SECONDS`` is 0 and the row is read on every request.
"""

from __future__ import annotations

from typing import Any

from allauth.account.auth_backends import AuthenticationBackend as AllauthBackend
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.core.cache import cache

from sharing.models import User


def _key(user_id: Any) -> str:
    return f"lightbox:user:v1:{user_id}"


class CachedUserMixin:
    def get_user(self, user_id: Any) -> User | None:
        seconds = settings.LIGHTBOX_USER_CACHE_SECONDS
        user = cache.get(_key(user_id)) if seconds else None
        if not isinstance(user, User):
            user = super().get_user(user_id)  # type: ignore[misc]
            if not isinstance(user, User):
                return None
            if seconds:
                # Kept with the row: staff requests ask it every time (StaffMFAMiddleware).
                user.lightbox_has_totp = _has_totp_in_database(user)  # type: ignore[attr-defined]
                cache.set(_key(user_id), user, seconds)
        return user if self.user_can_authenticate(user) else None  # type: ignore[attr-defined]


class ModelBackend(CachedUserMixin, DjangoModelBackend):
    """Django's backend (the admin's sign-in), with the session's user cached."""


class AuthenticationBackend(CachedUserMixin, AllauthBackend):  # type: ignore[misc]  # allauth is untyped
    """allauth's backend (sign-in by email), with the session's user cached."""


def forget_user(sender: Any, instance: User, **kwargs: Any) -> None:
    cache.delete(_key(instance.pk))


def has_totp(user: User) -> bool:
    """Whether the account has an authenticator app (TOTP): read with the cached user, or from
    the database for a user that did not come through these backends (the owner of an API token, sharing.auth.tokens)."""
    enabled = getattr(user, "lightbox_has_totp", None)
    return enabled if isinstance(enabled, bool) else _has_totp_in_database(user)


def _has_totp_in_database(user: User) -> bool:
    return bool(is_mfa_enabled(user, [Authenticator.Type.TOTP]))


def forget_authenticators(sender: Any, instance: Authenticator, **kwargs: Any) -> None:
    cache.delete(_key(instance.user_id))
