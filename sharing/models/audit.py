"""The append-only audit trail of every touch of patient data.

Rows are written by the service that makes the change, in the same transaction, and are never
updated or deleted: the model and its queryset refuse both.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditTrailIsAppendOnly(Exception):
    pass


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AuditTrailIsAppendOnly("audit events cannot be updated")

    def delete(self) -> NoReturn:
        raise AuditTrailIsAppendOnly("audit events cannot be deleted")


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        INGEST = "ingest", "Images received"
        INGEST_CONFLICT = "ingest.conflict", "Conflicting copy received"
        STUDY_COMPLETE = "study.complete", "Study complete"
        QUERY = "query", "Search"
        VIEW = "view", "Viewed"
        FRAMES = "frames", "Viewed images"
        DOWNLOAD = "download", "Downloaded"
        LOGIN = "login", "Signed in"
        LOGIN_FAILED = "login.failed", "Failed sign-in"
        LOGOUT = "logout", "Signed out"
        SHARE_CREATE = "share.create", "Share created"
        SHARE_OPEN = "share.open", "Share opened"
        SHARE_VERIFY_FAIL = "share.verify_fail", "Wrong share code"
        SHARE_LOCK = "share.lock", "Share locked"
        SHARE_REVOKE = "share.revoke", "Share revoked"
        SHARE_EXTEND = "share.extend", "Share extended"
        SHARE_EXPIRE = "share.expire", "Share expired"
        AUTHORIZATION_SIGN = "authorization.sign", "Authorization signed"
        AUTHORIZATION_REVOKE = "authorization.revoke", "Authorization revoked"
        AUTHORIZATION_UPDATE = "authorization.update", "Request updated"
        IDENTITY_VERIFY = "identity.verify", "Identity verified"
        PATIENT_LINK = "patient.link", "Account linked to patient"
        PACS_QUERY = "pacs.query", "PACS searched"
        PACS_RETRIEVE = "pacs.retrieve", "Retrieved from PACS"
        RELEASE = "release", "Released"
        DENY = "deny", "Denied"
        RECONCILE = "reconcile", "Study reconciled"
        EXPORT = "audit.export", "Audit trail exported"
        API_TOKEN_CREATE = "api_token.create", "API token created"
        API_TOKEN_REVOKE = "api_token.revoke", "API token revoked"
        API_TOKEN_USE = "api_token.use", "API token used"

    class Outcome(models.IntegerChoices):
        # DICOM/ATNA EventOutcomeIndicator values.
        SUCCESS = 0, "Success"
        MINOR_FAILURE = 4, "Minor failure"
        SERIOUS_FAILURE = 8, "Serious failure"
        MAJOR_FAILURE = 12, "Major failure"

    class ActorKind(models.TextChoices):
        USER = "user", "User"
        SHARE = "share", "Share link"
        PEER = "peer", "DICOM peer"
        SYSTEM = "system", "Lightbox"

    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    outcome = models.PositiveSmallIntegerField(choices=Outcome.choices, default=Outcome.SUCCESS)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # A snapshot that survives renames: email, AE title, share label.
    actor_label = models.CharField(max_length=255, blank=True, default="")
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True, default="")
    share = models.ForeignKey(
        "sharing.Share", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    patient = models.ForeignKey(
        "sharing.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    study_instance_uid = models.CharField(max_length=64, blank=True, default="", db_index=True)
    detail = models.JSONField(default=dict, blank=True)
    # The hash chain: each event's hash covers its content and the previous event's hash.
    prev_hash = models.CharField(max_length=64, blank=True, default="")
    entry_hash = models.CharField(max_length=64, blank=True, default="")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_label or self.actor_kind}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditTrailIsAppendOnly("audit events cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AuditTrailIsAppendOnly("audit events cannot be deleted")
