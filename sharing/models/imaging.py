"""Patients, studies, series and instances as Lightbox knows them.

An ``Instance`` row is written by the receiver the moment its bytes are durably in object storage
(state RECEIVED); the ingest worker then reads its header, attaches it to a ``Series``/``Study``/
``Patient`` and marks it INDEXED. Aggregates on ``Study`` and ``Series`` are what the study list
shows, so they are recomputed by the indexer rather than counted per page view.

Identifiers are not trusted across sources. What a patient uploads lives in rows of its own
(``upload_owner``), matched only against that patient's earlier uploads, so a reused PatientID or
UID never joins someone else's record. A Study Instance UID is unique per Patient row, not
globally: the hospital's study and a patient's copy of it, or two patients a PACS sent under one
Study Instance UID, are separate rows. A study that clashes with another patient's identity is
held (``held_reason``) until records staff decide.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Patient(models.Model):
    """A patient as identified by a DICOM issuer: PatientID + IssuerOfPatientID.

    One portal user may have several (an MRN at each hospital); records staff make the link.
    A patient's own upload gets Patient rows of its own (``upload_owner``), whatever the files say.
    """

    patient_id = models.CharField(max_length=64)
    issuer = models.CharField(max_length=64, blank=True, default="")
    name = models.CharField(max_length=324, blank=True, default="")
    birth_date = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=16, blank=True, default="")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="patients",
    )
    # The patient account whose upload named this identity: the row is theirs alone until records
    # staff reconcile its studies. Empty for the hospital's records (PACS, STOW-RS, staff uploads).
    upload_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Set apart from this linked record: images named its PatientID (with no issuer to tell the
    # two apart) but another name or birth date. Linked to no account until staff decide.
    clash_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient_id", "issuer"],
                condition=models.Q(upload_owner__isnull=True, clash_of__isnull=True),
                name="patient_identity_unique",
            ),
            models.UniqueConstraint(
                fields=["clash_of", "name", "birth_date"],
                condition=models.Q(clash_of__isnull=False),
                name="patient_clash_unique",
            ),
            models.UniqueConstraint(
                fields=["patient_id", "issuer", "upload_owner"],
                condition=models.Q(upload_owner__isnull=False),
                name="patient_upload_identity_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id}@{self.issuer}" if self.issuer else self.patient_id


class Study(models.Model):
    class Source(models.TextChoices):
        DIMSE = "dimse", "Received from a DICOM peer"
        STOW = "stow", "STOW-RS"
        UPLOAD = "upload", "Uploaded in the browser"

    study_instance_uid = models.CharField(max_length=64, db_index=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    study_date = models.DateField(null=True, blank=True, db_index=True)
    study_time = models.CharField(max_length=16, blank=True, default="")
    accession_number = models.CharField(max_length=16, blank=True, default="")
    study_id = models.CharField(max_length=16, blank=True, default="")
    description = models.CharField(max_length=64, blank=True, default="")
    referring_physician = models.CharField(max_length=324, blank=True, default="")
    institution = models.CharField(max_length=64, blank=True, default="")
    # Aggregates for the study list, kept by the indexer.
    modalities = models.CharField(max_length=128, blank=True, default="")
    body_parts = models.CharField(max_length=256, blank=True, default="")
    number_of_series = models.PositiveIntegerField(default=0)
    number_of_instances = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    has_report = models.BooleanField(default=False)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.DIMSE)
    # A study a patient uploaded themselves: shown as "outside images" until staff reconcile it.
    is_outside = models.BooleanField(default=False)
    # Why records staff must look before any account sees this study (its identity clashes with
    # another patient's); empty when nothing holds it. Cleared when staff assign it.
    held_reason = models.CharField(max_length=255, blank=True, default="")
    first_received_at = models.DateTimeField()
    last_received_at = models.DateTimeField(db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # The series whose thumbnail stands for the study in lists: its first image series with a
    # thumbnail, kept by the thumbnail task, so a list of studies needs no query for them.
    preview_series = models.ForeignKey(
        "Series", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "studies"
        indexes = [
            models.Index(fields=["patient", "-study_date"], name="study_patient_date"),
            models.Index(fields=["completed_at", "last_received_at"], name="study_completion"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["patient", "study_instance_uid"], name="study_uid_per_patient")
        ]

    def __str__(self) -> str:
        return self.study_instance_uid

    @property
    def modality_list(self) -> list[str]:
        return [m for m in self.modalities.split("\\") if m]


class Series(models.Model):
    series_instance_uid = models.CharField(max_length=64, db_index=True)
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="series")
    modality = models.CharField(max_length=16, blank=True, default="")
    series_number = models.IntegerField(null=True, blank=True)
    description = models.CharField(max_length=64, blank=True, default="")
    body_part = models.CharField(max_length=64, blank=True, default="")
    number_of_instances = models.PositiveIntegerField(default=0)
    # The thumbnail: rendered from one instance (the middle image) by the thumbnail task.
    thumbnail_key = models.CharField(max_length=255, blank=True, default="")
    thumbnail_kind = models.CharField(max_length=16, blank=True, default="")
    thumbnail_instance = models.ForeignKey(
        "Instance", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "series"
        ordering = ["series_number", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["study", "series_instance_uid"], name="series_uid_per_study")
        ]

    def __str__(self) -> str:
        return self.series_instance_uid


class Instance(models.Model):
    class State(models.TextChoices):
        RECEIVED = "received", "Received, waiting to be indexed"
        INDEXED = "indexed", "Indexed"
        FAILED = "failed", "Could not be indexed"

    sop_instance_uid = models.CharField(max_length=64, db_index=True)
    sop_class_uid = models.CharField(max_length=64)
    transfer_syntax_uid = models.CharField(max_length=64)
    # As received; the indexer resolves them to rows.
    study_instance_uid = models.CharField(max_length=64, db_index=True)
    series_instance_uid = models.CharField(max_length=64)
    # Whose instance the header says it is, so that an instance joins a known series only if it
    # names the same patient.
    patient_identifier = models.CharField(max_length=64, blank=True, default="")
    patient_issuer = models.CharField(max_length=64, blank=True, default="")
    patient_name = models.CharField(max_length=324, blank=True, default="")
    patient_birth_date = models.DateField(null=True, blank=True)
    series = models.ForeignKey(
        Series, null=True, blank=True, on_delete=models.PROTECT, related_name="instances"
    )
    instance_number = models.IntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(default=1)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    # Of the bytes after the file meta group, which every receiver writes for itself: the same
    # instance by C-STORE and by upload has the same one.
    dataset_sha256 = models.CharField(max_length=64, blank=True, default="")
    object_key = models.CharField(max_length=255, unique=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVED)
    state_detail = models.CharField(max_length=255, blank=True, default="")
    source = models.CharField(max_length=16, choices=Study.Source.choices, default=Study.Source.DIMSE)
    sender = models.CharField(max_length=128, blank=True, default="")  # AE title@address, or user
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A patient's own upload (see ``Patient.upload_owner``): its SOP Instance UID is theirs alone.
    upload_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    received_at = models.DateTimeField()
    indexed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["study_instance_uid", "state"], name="instance_study_state"),
            models.Index(fields=["series", "instance_number"], name="instance_series_order"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["sop_instance_uid"],
                condition=models.Q(upload_owner__isnull=True),
                name="instance_sop_unique",
            ),
            models.UniqueConstraint(
                fields=["sop_instance_uid", "upload_owner"],
                condition=models.Q(upload_owner__isnull=False),
                name="instance_upload_sop_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.sop_instance_uid


class InstanceConflict(models.Model):
    """A second copy of a known SOP Instance UID with different bytes.

    The original is kept; the new copy is kept beside it for records staff to compare.
    """

    instance = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="conflicts")
    object_key = models.CharField(max_length=255, unique=True)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    sender = models.CharField(max_length=128, blank=True, default="")
    received_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"conflict on {self.instance.sop_instance_uid}"
