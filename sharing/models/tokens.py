"""Personal API tokens: how a staff member's scripts reach DICOMweb without their password.

A token is made by a signed-in staff member (who has passed two-factor authentication), carries
scopes (store, read) and an expiry of at most a year, and is stored only as the SHA-256 of its
secret (256 random bits, so a plain hash is enough) beside a short prefix that names it in lists.
Whether a token still works is decided by ``ApiToken.state_at`` on every request, so revoking and
expiry take effect at once on every web process.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    class Scope(models.TextChoices):
        STORE = "store", "Store (STOW-RS)"
        READ = "read", "Read (QIDO-RS, WADO-RS)"

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters of the secret (``lbx_`` and eight more): enough to tell tokens apart.
    prefix = models.CharField(max_length=16)
    secret_hash = models.CharField(max_length=64, unique=True)
    can_store = models.BooleanField(default=False)
    can_read = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_from = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(can_store=True) | models.Q(can_read=True), name="api_token_has_a_scope"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def scopes(self) -> list[ApiToken.Scope]:
        return [
            scope
            for scope, held in ((self.Scope.STORE, self.can_store), (self.Scope.READ, self.can_read))
            if held
        ]

    def allows(self, scope: ApiToken.Scope) -> bool:
        return scope in self.scopes

    def state_at(self, now: datetime) -> ApiToken.State:
        if self.revoked_at is not None:
            return self.State.REVOKED
        if now >= self.expires_at:
            return self.State.EXPIRED
        return self.State.ACTIVE
