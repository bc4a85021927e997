"""Share links: create, open, check the code, revoke, extend, and the expiry sweep.

Each function owns one change and writes its audit events in the same transaction. The raw token
and the access code exist only in the return value of ``share_create``; the database keeps their
hashes, and no function here logs either.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from django.contrib.auth.hashers import check_password, make_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from sharing.access.rules import own_studies
from sharing.conf import app_settings
from sharing.models import AuditEvent, Patient, ReleaseAuthorization, Share, Study, User
from sharing.services.audit import NO_CLIENT, Client, audit_event_record

# 24 bytes = 192 bits from the OS CSPRNG, 32 URL-safe characters.
TOKEN_BYTES = 24
TOKEN_PATTERN = r"[A-Za-z0-9_-]{32}"  # noqa: S105 - a pattern, not a secret
# Access codes avoid look-alike characters (0/O, 1/I/L) so they survive being read out on a phone.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10
MAX_LIFETIME = datetime.timedelta(days=90)
# A wrong-answer burst from one address is throttled across all shares (a scanner), and a burst on
# one share across all addresses (a distributed guess); the lock after N failures is the backstop.
CLIENT_WINDOW_SECONDS = 15 * 60
SHARE_WINDOW_SECONDS = 60


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def _normalized_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


@dataclass(frozen=True)
class ShareCreated:
    share: Share
    token: str  # shown once to the patient; never stored
    code: str  # the access code, shown once; "" unless protection is CODE


def _share_patients(studies: Sequence[Study]) -> list[Patient]:
    seen: dict[int, Patient] = {}
    for study in studies:
        seen.setdefault(study.patient_id, study.patient)
    return list(seen.values())


def share_create(
    *,
    owner: User,
    studies: Sequence[Study],
    expires_at: datetime.datetime,
    protection: Share.Protection,
    allow_download: bool,
    recipient_name: str = "",
    recipient_email: str = "",
    message: str = "",
    max_opens: int | None = None,
    notify_on_open: bool = True,
    authorization: ReleaseAuthorization | None = None,
    client: Client = NO_CLIENT,
    link_for: Callable[[str], str] | None = None,
) -> ShareCreated:
    """Share some of the owner's own studies. ``link_for(token)`` builds the absolute link for the
    recipient's email (the view knows the host); without it no email is sent."""
    now = timezone.now()
    if not studies:
        raise ValidationError("Choose at least one study to share.")
    if not now < expires_at <= now + MAX_LIFETIME + datetime.timedelta(minutes=1):
        raise ValidationError("A share lasts from a moment to 90 days.")
    if max_opens is not None and max_opens < 1:
        raise ValidationError("The number of opens must be at least 1.")
    uids = [study.study_instance_uid for study in studies]
    # Only the patient's own studies, even for staff (who deliver a release in the patient's name).
    own = own_studies(owner).filter(study_instance_uid__in=uids)
    if own.count() != len(set(uids)):
        raise ValidationError("You can only share your own studies.")
    patients = _share_patients(studies)
    if protection == Share.Protection.BIRTH_DATE and any(p.birth_date is None for p in patients):
        raise ValidationError("The date of birth is not on record for these studies; use an access code.")

    token = secrets.token_urlsafe(TOKEN_BYTES)
    code = _new_code() if protection == Share.Protection.CODE else ""
    with transaction.atomic():
        share = Share.objects.create(
            owner=owner,
            token_hash=token_hash(token),
            protection=protection,
            code_hash=make_password(_normalized_code(code)) if code else "",
            allow_download=allow_download,
            recipient_name=recipient_name.strip(),
            recipient_email=recipient_email.strip(),
            message=message.strip(),
            max_opens=max_opens,
            notify_on_open=notify_on_open,
            authorization=authorization,
            created_at=now,
            expires_at=expires_at,
        )
        share.studies.set(studies)
        for study in studies:
            audit_event_record(
                action=AuditEvent.Action.SHARE_CREATE,
                client=client,
                actor_user=owner,
                share=share,
                patient=study.patient,
                study_instance_uid=study.study_instance_uid,
                detail={
                    "share": share.pk,
                    "expires_at": expires_at.isoformat(),
                    "protection": protection,
                    "download": allow_download,
                    "recipient": share.recipient_name,
                },
            )
        if share.recipient_email and link_for is not None:
            link = link_for(token)
            transaction.on_commit(lambda: _email_recipient(share, link))
    return ShareCreated(share=share, token=token, code=code)


def _email_recipient(share: Share, link_url: str) -> None:
    """The link goes by email; the code never travels with it."""
    how = {
        Share.Protection.CODE: "You will need the access code, which the patient will give you separately.",
        Share.Protection.BIRTH_DATE: "You will be asked for the patient's date of birth.",
        Share.Protection.NONE: "",
    }[Share.Protection(share.protection)]
    lines = [
        f"Hello {share.recipient_name}," if share.recipient_name else "Hello,",
        "",
        "A patient has shared medical images with you through Lightbox.",
        f"Open them here: {link_url}",
        how,
        f"The link works until {timezone.localtime(share.expires_at):%d %B %Y, %H:%M}.",
    ]
    if share.message:
        lines += ["", "Their message:", share.message]
    send_mail(
        "Medical images shared with you",
        "\n".join(line for line in lines if line is not None),
        None,
        [share.recipient_email],
    )


def share_lookup(*, token: str) -> Share | None:
    """The share a token opens, whatever its state, or None. One indexed query either way."""
    return Share.objects.filter(token_hash=token_hash(token)).select_related("owner").first()


class Check(Enum):
    PASSED = "passed"
    WRONG = "wrong"
    LOCKED = "locked"  # this answer was wrong and locked the share
    THROTTLED = "throttled"
    GONE = "gone"


def _throttle_keys(share: Share, client: Client) -> tuple[str, str]:
    return (f"lightbox:share-fail:share:{share.pk}", f"lightbox:share-fail:addr:{client.address or '-'}")


def _throttled(share: Share, client: Client) -> bool:
    share_key, addr_key = _throttle_keys(share, client)
    counts: dict[str, int] = cache.get_many([share_key, addr_key])
    return (
        counts.get(share_key, 0) >= app_settings.SHARE_FAILURES_PER_MINUTE
        or counts.get(addr_key, 0) >= app_settings.SHARE_FAILURES_PER_CLIENT
    )


def _count_failure(share: Share, client: Client) -> None:
    share_key, addr_key = _throttle_keys(share, client)
    for key, window in ((share_key, SHARE_WINDOW_SECONDS), (addr_key, CLIENT_WINDOW_SECONDS)):
        if not cache.add(key, 1, timeout=window):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, timeout=window)


def _answer_matches(share: Share, answer: str) -> bool:
    if share.protection == Share.Protection.NONE:
        return True
    if share.protection == Share.Protection.CODE:
        # check_password compares in constant time; an empty answer still runs the hasher.
        return bool(check_password(_normalized_code(answer), share.code_hash))
    birth_dates = {
        p.birth_date.isoformat() for p in Patient.objects.filter(studies__shares=share) if p.birth_date
    }
    # compare_digest for every candidate, so the time does not depend on where a mismatch is.
    results = [hmac.compare_digest(answer.strip().encode(), known.encode()) for known in sorted(birth_dates)]
    return bool(results) and all(results)


def share_check(*, share: Share, answer: str, client: Client) -> Check:
    """Check the recipient's code or date of birth. A wrong answer counts towards the lock."""
    if share.state_at(timezone.now(), opening=True) != Share.State.ACTIVE:
        return Check.GONE
    if _throttled(share, client):
        return Check.THROTTLED
    if _answer_matches(share, answer):
        return Check.PASSED
    _count_failure(share, client)
    with transaction.atomic():
        Share.objects.filter(pk=share.pk).update(failed_attempts=F("failed_attempts") + 1)
        share.refresh_from_db(fields=["failed_attempts", "locked_at"])
        locks = share.locked_at is None and share.failed_attempts >= app_settings.SHARE_MAX_FAILURES
        _share_audit(
            share,
            AuditEvent.Action.SHARE_VERIFY_FAIL,
            client=client,
            outcome=AuditEvent.Outcome.MINOR_FAILURE,
            detail={"share": share.pk, "failures": share.failed_attempts},
        )
        if locks:
            locked = Share.objects.filter(pk=share.pk, locked_at__isnull=True).update(
                locked_at=timezone.now()
            )
            if locked:
                share.refresh_from_db(fields=["locked_at"])
                _share_audit(
                    share,
                    AuditEvent.Action.SHARE_LOCK,
                    client=client,
                    outcome=AuditEvent.Outcome.SERIOUS_FAILURE,
                    detail={"share": share.pk, "failures": share.failed_attempts},
                )
                transaction.on_commit(lambda: _email_owner_locked(share))
                return Check.LOCKED
    return Check.WRONG


def _share_audit(
    share: Share,
    action: AuditEvent.Action,
    *,
    client: Client,
    outcome: AuditEvent.Outcome = AuditEvent.Outcome.SUCCESS,
    detail: dict[str, object] | None = None,
    actor: User | None = None,
    by_lightbox: bool = False,
) -> None:
    """One event per shared study, so each patient's and each study's history shows it. The actor
    is the user who acted, Lightbox itself (expiry), or else whoever holds the link."""
    if actor is not None:
        kind, label = AuditEvent.ActorKind.USER, ""
    elif by_lightbox:
        kind, label = AuditEvent.ActorKind.SYSTEM, "Lightbox"
    else:
        kind, label = AuditEvent.ActorKind.SHARE, f"Share: {share.label}"
    for study in share.studies.select_related("patient"):
        audit_event_record(
            action=action,
            client=client,
            actor_kind=kind,
            actor_user=actor,
            actor_label=label,
            share=share,
            patient=study.patient,
            study_instance_uid=study.study_instance_uid,
            outcome=outcome,
            detail=detail,
        )


def _email_owner_locked(share: Share) -> None:
    send_mail(
        "A share link of yours was locked",
        (
            f"Someone entered the wrong access code too many times on your share “{share.label}”, "
            "so Lightbox locked it. Nobody can open it any more.\n\n"
            "If you still want to share those images, create a new share from your library and "
            "send the new code separately from the link."
        ),
        None,
        [share.owner.email],
    )


def share_open(*, share: Share, client: Client) -> bool:
    """Count one open, if the share can still be opened; False if it cannot (gone or used up)."""
    now = timezone.now()
    with transaction.atomic():
        opened = (
            Share.objects.filter(
                pk=share.pk, revoked_at__isnull=True, locked_at__isnull=True, expires_at__gt=now
            )
            .filter(Q(max_opens__isnull=True) | Q(open_count__lt=F("max_opens")))
            .update(open_count=F("open_count") + 1, last_opened_at=now)
        )
        if not opened:
            return False
        first = Share.objects.filter(pk=share.pk, first_opened_at__isnull=True).update(first_opened_at=now)
        share.refresh_from_db()
        _share_audit(
            share,
            AuditEvent.Action.SHARE_OPEN,
            client=client,
            detail={"share": share.pk, "open": share.open_count},
        )
        if first and share.notify_on_open:
            transaction.on_commit(lambda: _email_owner_opened(share))
    return True


def _email_owner_opened(share: Share) -> None:
    send_mail(
        "Your shared images were opened",
        (
            f"Your share “{share.label}” was opened for the first time on "
            f"{timezone.localtime(share.first_opened_at or timezone.now()):%d %B %Y at %H:%M}.\n\n"
            "You can see every access, and revoke the link, under “My shares” in Lightbox."
        ),
        None,
        [share.owner.email],
    )


def share_revoke(*, share: Share, actor: User, client: Client = NO_CLIENT, reason: str = "") -> bool:
    """Revoke at once; every later request through the share answers 410. False if it already was."""
    with transaction.atomic():
        revoked = Share.objects.filter(pk=share.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if revoked:
            share.refresh_from_db(fields=["revoked_at"])
            _share_audit(
                share,
                AuditEvent.Action.SHARE_REVOKE,
                client=client,
                actor=actor,
                detail={"share": share.pk, **({"reason": reason} if reason else {})},
            )
    return bool(revoked)


def share_extend(
    *, share: Share, actor: User, expires_at: datetime.datetime, client: Client = NO_CLIENT
) -> None:
    """Move the expiry, still no more than 90 days from the share's creation or from now."""
    now = timezone.now()
    if share.state_at(now) in (Share.State.REVOKED, Share.State.LOCKED):
        raise ValidationError("A revoked or locked share cannot be extended; create a new one.")
    if not now < expires_at <= now + MAX_LIFETIME + datetime.timedelta(minutes=1):
        raise ValidationError("A share lasts up to 90 days from today.")
    with transaction.atomic():
        previous = share.expires_at
        Share.objects.filter(pk=share.pk).update(expires_at=expires_at)
        share.refresh_from_db(fields=["expires_at"])
        _share_audit(
            share,
            AuditEvent.Action.SHARE_EXTEND,
            client=client,
            actor=actor,
            detail={"share": share.pk, "from": previous.isoformat(), "to": expires_at.isoformat()},
        )


def shares_expire_sweep(*, now: datetime.datetime | None = None) -> int:
    """Record SHARE_EXPIRE once for each share that has passed its expiry. Idempotent."""
    now = now or timezone.now()
    recorded = AuditEvent.objects.filter(share=OuterRef("pk"), action=AuditEvent.Action.SHARE_EXPIRE)
    count = 0
    for share in Share.objects.filter(expires_at__lte=now, revoked_at__isnull=True).filter(~Exists(recorded)):
        with transaction.atomic():
            _share_audit(
                share,
                AuditEvent.Action.SHARE_EXPIRE,
                client=NO_CLIENT,
                by_lightbox=True,
                detail={"share": share.pk, "expired_at": share.expires_at.isoformat()},
            )
        count += 1
    return count
