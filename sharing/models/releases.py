"""Release of information: facilities, PACS nodes, a patient's signed authorization, and the work
records staff do on it (timeline, retrievals from the PACS, the decision).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class PacsNode(models.Model):
    """A DICOM peer Lightbox queries (C-FIND) and asks to send studies (C-MOVE)."""

    name = models.CharField(max_length=100, unique=True)
    ae_title = models.CharField("AE title", max_length=16)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField()
    description = models.CharField(max_length=255, blank=True, default="")
    is_active = models.BooleanField(default=True)

    class Meta:
        verbose_name = "PACS node"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.ae_title}@{self.host}:{self.port})"


class Facility(models.Model):
    """A place that holds records: patients pick it on the form; its PatientIDs carry ``issuer``."""

    name = models.CharField(max_length=200, unique=True)
    issuer = models.CharField(
        "issuer of patient ID",
        max_length=64,
        blank=True,
        default="",
        help_text="The IssuerOfPatientID its studies carry (empty if they carry none).",
    )
    pacs = models.ForeignKey(
        PacsNode, null=True, blank=True, on_delete=models.SET_NULL, related_name="facilities"
    )
    address = models.TextField(blank=True, default="")
    records_contact = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="Where a patient sends a written revocation: address or email of the records office.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "facilities"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DenialTemplate(models.Model):
    """A reason for denial staff pick and may edit before sending."""

    title = models.CharField(max_length=100, unique=True)
    text = models.TextField()

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class ReleaseAuthorization(models.Model):
    """A patient's signed authorization to release records, and the request records staff work."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        IN_REVIEW = "in_review", "In review"
        AWAITING_IMAGES = "awaiting_images", "Awaiting images"
        ON_HOLD = "on_hold", "On hold, awaiting the patient"
        FULFILLED = "fulfilled", "Fulfilled"
        DENIED = "denied", "Denied"
        REVOKED = "revoked", "Revoked"

    OPEN_STATUSES = (
        Status.SUBMITTED,
        Status.IN_REVIEW,
        Status.AWAITING_IMAGES,
        Status.ON_HOLD,
    )

    class ScopeKind(models.TextChoices):
        EXAMS = "exams", "Specific exams"
        DATE_RANGE = "date_range", "A date range and modalities"

    class Content(models.TextChoices):
        IMAGES_AND_REPORTS = "both", "Images and reports"
        IMAGES = "images", "Images only"
        REPORTS = "reports", "Reports only"

    class Recipient(models.TextChoices):
        PATIENT = "patient", "Me, through Lightbox"
        PROVIDER = "provider", "A named provider"

    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="authorizations"
    )
    # The patient's identity as they state it.
    legal_name = models.CharField(max_length=200)
    birth_date = models.DateField()
    other_names = models.CharField(max_length=300, blank=True, default="")
    mrn = models.CharField("medical record number", max_length=64, blank=True, default="")
    phone = models.CharField(max_length=40, blank=True, default="")
    contact_email = models.EmailField()
    address = models.TextField(blank=True, default="")
    # What, from whom, to whom, why, until when.
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="authorizations")
    scope_kind = models.CharField(max_length=16, choices=ScopeKind.choices)
    exams = models.TextField(blank=True, default="")
    date_from = models.DateField(null=True, blank=True)
    date_to = models.DateField(null=True, blank=True)
    modalities = models.CharField(max_length=128, blank=True, default="")
    content = models.CharField(max_length=16, choices=Content.choices, default=Content.IMAGES_AND_REPORTS)
    recipient_kind = models.CharField(max_length=16, choices=Recipient.choices)
    provider_name = models.CharField(max_length=200, blank=True, default="")
    provider_organisation = models.CharField(max_length=200, blank=True, default="")
    provider_email = models.EmailField(blank=True, default="")
    purpose = models.CharField(max_length=300)
    expires_on = models.DateField(null=True, blank=True)
    expiry_event = models.CharField(max_length=300, blank=True, default="")
    representative_name = models.CharField(max_length=200, blank=True, default="")
    representative_authority = models.CharField(max_length=300, blank=True, default="")
    # The signature and the signed document.
    typed_signature = models.CharField(max_length=200)
    signature_key = models.CharField(max_length=255)
    signed_at = models.DateTimeField()
    signed_from = models.GenericIPAddressField(null=True, blank=True)
    pdf_key = models.CharField(max_length=255, blank=True, default="")
    pdf_sha256 = models.CharField(max_length=64, blank=True, default="")
    id_document_key = models.CharField(max_length=255, blank=True, default="")
    id_document_type = models.CharField(max_length=64, blank=True, default="")
    # The request as records staff work it.
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUBMITTED, db_index=True)
    received_at = models.DateTimeField(db_index=True)
    due_on = models.DateField()
    extension_reason = models.TextField(blank=True, default="")
    extended_at = models.DateTimeField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_authorizations",
    )
    identity_verified_at = models.DateTimeField(null=True, blank=True)
    identity_verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    identity_method = models.CharField(max_length=200, blank=True, default="")
    patient = models.ForeignKey(
        "sharing.Patient",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="authorizations",
        help_text="The DICOM identity (PatientID + issuer) staff matched this request to.",
    )
    studies = models.ManyToManyField("sharing.Study", blank=True, related_name="authorizations")
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_reason = models.TextField(blank=True, default="")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_on", "pk"]

    def __str__(self) -> str:
        return f"Request #{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class AuthorizationEvent(models.Model):
    """One line of a request's timeline: status changes, staff messages, patient replies."""

    class Kind(models.TextChoices):
        STATUS = "status", "Status changed"
        MESSAGE = "message", "Message"
        NOTE = "note", "Staff note"

    authorization = models.ForeignKey(ReleaseAuthorization, on_delete=models.CASCADE, related_name="events")
    occurred_at = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=ReleaseAuthorization.Status.choices, blank=True, default=""
    )
    text = models.TextField(blank=True, default="")
    visible_to_patient = models.BooleanField(default=True)

    class Meta:
        ordering = ["occurred_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.authorization_id}"


class RetrieveJob(models.Model):
    """A C-MOVE of one study from a PACS node to Lightbox's own SCP, with its progress."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Retrieving"
        DONE = "done", "Retrieved"
        PARTIAL = "partial", "Retrieved with failures"
        FAILED = "failed", "Failed"

    pacs = models.ForeignKey(PacsNode, on_delete=models.PROTECT, related_name="retrievals")
    authorization = models.ForeignKey(
        ReleaseAuthorization, null=True, blank=True, on_delete=models.CASCADE, related_name="retrievals"
    )
    study_instance_uid = models.CharField(max_length=64)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    remaining = models.PositiveIntegerField(null=True, blank=True)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    warning = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"retrieve {self.study_instance_uid} from {self.pacs_id}"
