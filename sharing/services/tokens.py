"""Personal API tokens: create, revoke, authenticate a request's secret, and record each use.

Each write owns its audit event in the same transaction. The secret exists only in the return
value of ``api_token_create``; the database keeps its SHA-256, and nothing here logs it.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from sharing.auth_backends import has_totp
from sharing.models import ApiToken, AuditEvent, User
from sharing.services.audit import NO_CLIENT, Client, audit_event_record

SECRET_PREFIX = "lbx_"  # noqa: S105 - what every token starts with, so scanners and people know it
# 32 bytes = 256 bits from the OS CSPRNG, 43 URL-safe characters.
SECRET_BYTES = 32
SECRET_PATTERN = re.compile(rf"{SECRET_PREFIX}[A-Za-z0-9_-]{{43}}")
PREFIX_LENGTH = len(SECRET_PREFIX) + 8
DEFAULT_LIFETIME = datetime.timedelta(days=90)
MAX_LIFETIME = datetime.timedelta(days=365)
# Last use is written at most this often per token, so that reading does not write each time.
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def may_hold_tokens(user: User) -> bool:
    """Staff, the same people StaffMFAMiddleware holds to two-factor sign-in."""
    return user.is_active and (user.is_records_staff or user.is_staff or user.is_superuser)


@dataclass(frozen=True)
class ApiTokenCreated:
    token: ApiToken
    secret: str  # shown once to its owner; never stored


def api_token_create(
    *,
    owner: User,
    name: str,
    scopes: Sequence[ApiToken.Scope],
    expires_at: datetime.datetime,
    client: Client = NO_CLIENT,
) -> ApiTokenCreated:
    now = timezone.now()
    name = name.strip()
    if not may_hold_tokens(owner):
        raise ValidationError("Only staff may create API tokens.")
    if not has_totp(owner):
        raise ValidationError("Set up two-factor authentication before creating API tokens.")
    if not name:
        raise ValidationError("Name the token after the script or machine that will use it.")
    if not scopes:
        raise ValidationError("Choose at least one scope.")
    if not now < expires_at <= now + MAX_LIFETIME + datetime.timedelta(minutes=1):
        raise ValidationError("A token lasts from a moment to a year.")
    secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    with transaction.atomic():
        token = ApiToken.objects.create(
            owner=owner,
            name=name,
            prefix=secret[:PREFIX_LENGTH],
            secret_hash=secret_hash(secret),
            can_store=ApiToken.Scope.STORE in scopes,
            can_read=ApiToken.Scope.READ in scopes,
            created_at=now,
            expires_at=expires_at,
        )
        _token_audit(
            token,
            AuditEvent.Action.API_TOKEN_CREATE,
            actor=owner,
            client=client,
            detail={"expires_at": expires_at.isoformat(), "scopes": [str(s) for s in token.scopes]},
        )
    return ApiTokenCreated(token=token, secret=secret)


def api_token_revoke(*, token: ApiToken, actor: User, client: Client = NO_CLIENT) -> bool:
    """Revoke at once: the next request with it, on any process, is refused. False if it already was."""
    with transaction.atomic():
        revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if revoked:
            token.refresh_from_db(fields=["revoked_at"])
            _token_audit(token, AuditEvent.Action.API_TOKEN_REVOKE, actor=actor, client=client)
    return bool(revoked)


class Refusal(Enum):
    UNKNOWN = "this token is not known: check that it was copied whole"
    EXPIRED = "this token has expired: create a new one under API tokens in Lightbox"
    REVOKED = "this token was revoked: create a new one under API tokens in Lightbox"
    OWNER = "this token's owner may no longer use the API"
    NO_TWO_FACTOR = "this token's owner has no two-factor authentication any more: set it up on the website"


@dataclass(frozen=True)
class Authenticated:
    token: ApiToken | None  # None when refused as UNKNOWN
    refusal: Refusal | None


def api_token_authenticate(*, secret: str) -> Authenticated:
    """The token a secret names and whether it works now: one indexed query, on every request,
    so that a revocation on any process is seen by the next request on every other."""
    if not SECRET_PATTERN.fullmatch(secret):
        return Authenticated(None, Refusal.UNKNOWN)
    token = ApiToken.objects.filter(secret_hash=secret_hash(secret)).select_related("owner").first()
    if token is None:
        return Authenticated(None, Refusal.UNKNOWN)
    state = token.state_at(timezone.now())
    if state == ApiToken.State.REVOKED:
        return Authenticated(token, Refusal.REVOKED)
    if state == ApiToken.State.EXPIRED:
        return Authenticated(token, Refusal.EXPIRED)
    if not may_hold_tokens(token.owner):
        return Authenticated(token, Refusal.OWNER)
    # Staff without two-factor authentication reach no patient data by any door, tokens included.
    if not has_totp(token.owner):
        return Authenticated(token, Refusal.NO_TWO_FACTOR)
    return Authenticated(token, None)


def api_token_use_record(
    *,
    token: ApiToken,
    method: str,
    path: str,
    status: int,
    client: Client,
    study_instance_uid: str = "",
    refused: str = "",
) -> None:
    """One audit event per request made with a token (never its secret), and its last use.
    ``refused`` names why the request was turned away (expired, revoked, owner, scope), if it was."""
    now = timezone.now()
    with transaction.atomic():
        last = token.last_used_at
        if not refused and (last is None or now - last >= LAST_USED_RESOLUTION):
            # Conditional, so that of the processes racing to note the same minute one writes.
            ApiToken.objects.filter(pk=token.pk).filter(
                Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
            ).update(last_used_at=now, last_used_from=client.address)
        _token_audit(
            token,
            AuditEvent.Action.API_TOKEN_USE,
            actor=token.owner,
            client=client,
            study_instance_uid=study_instance_uid,
            outcome=AuditEvent.Outcome.MINOR_FAILURE if refused else AuditEvent.Outcome.SUCCESS,
            detail={
                "method": method,
                "path": path,
                "status": status,
                **({"refused": refused} if refused else {}),
            },
        )


def _token_audit(
    token: ApiToken,
    action: AuditEvent.Action,
    *,
    actor: User,
    client: Client,
    study_instance_uid: str = "",
    outcome: AuditEvent.Outcome = AuditEvent.Outcome.SUCCESS,
    detail: dict[str, object] | None = None,
) -> None:
    audit_event_record(
        action=action,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_user=actor,
        client=client,
        study_instance_uid=study_instance_uid,
        outcome=outcome,
        detail={"api_token": token.pk, "api_token_name": token.name, **(detail or {})},
    )
