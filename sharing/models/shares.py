"""Share links: a patient lets a specialist without an account see some studies for a while.

The token is shown once and stored only as its SHA-256 (it carries 192 random bits, so a plain hash
is enough); an access code is stored with Django's password hasher. Whether a share still works is
decided by ``Share.state_at`` on every request, so revoking, expiry and lockout take effect at once.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models


class Share(models.Model):
    class Protection(models.TextChoices):
        CODE = "code", "Access code"
        BIRTH_DATE = "birth_date", "Patient's date of birth"
        NONE = "none", "No check"

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"
        EXHAUSTED = "exhausted", "Used up"
        LOCKED = "locked", "Locked after wrong codes"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="shares")
    studies = models.ManyToManyField("sharing.Study", related_name="shares")
    token_hash = models.CharField(max_length=64, unique=True)
    protection = models.CharField(max_length=16, choices=Protection.choices)
    code_hash = models.CharField(max_length=128, blank=True, default="")
    allow_download = models.BooleanField(default=False)
    recipient_name = models.CharField(max_length=200, blank=True, default="")
    recipient_email = models.EmailField(blank=True, default="")
    message = models.TextField(blank=True, default="", max_length=2000)
    max_opens = models.PositiveIntegerField(null=True, blank=True)
    notify_on_open = models.BooleanField(default=True)
    # A share made by records staff to deliver a release to a provider ends with its authorization.
    authorization = models.ForeignKey(
        "sharing.ReleaseAuthorization",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="shares",
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True)
    open_count = models.PositiveIntegerField(default=0)
    failed_attempts = models.PositiveIntegerField(default=0)
    first_opened_at = models.DateTimeField(null=True, blank=True)
    last_opened_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"share {self.pk} by {self.owner_id}"

    @property
    def label(self) -> str:
        """How the share is named in lists and the audit trail; never the token."""
        return self.recipient_name or f"Share #{self.pk}"

    def state_at(self, now: datetime, *, opening: bool = False) -> Share.State:
        """The share's state; ``opening`` for a new open, which a used-up share refuses while
        the sessions already opened go on until expiry."""
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.locked_at is not None:
            return self.State.LOCKED
        if now >= self.expires_at:
            return self.State.EXPIRED
        if opening and self.max_opens is not None and self.open_count >= self.max_opens:
            return self.State.EXHAUSTED
        return self.State.ACTIVE
