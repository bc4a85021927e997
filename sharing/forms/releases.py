"""Forms for release requests: the patient's authorization, and the records staff's actions."""

from __future__ import annotations

import base64
import binascii
import datetime
import io
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import MaxValueValidator
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from sharing.models import Facility, ReleaseAuthorization, User
from sharing.services.releases import AuthorizationDetails, IdentityDocument

DEFAULT_EXPIRY_DAYS = 180
SIGNATURE_PREFIX = "data:image/png;base64,"
SIGNATURE_MAX_BYTES = 300 * 1024
SIGNATURE_MAX_SIDE = 2000
# A real signature darkens more than a stray click does.
SIGNATURE_MIN_INK_PIXELS = 30
ID_DOCUMENT_MAX_BYTES = 10 * 1024 * 1024
MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF-", "application/pdf"),
)
MODALITY_CHOICES = [
    ("CT", "CT"),
    ("MR", "MRI"),
    ("CR", "X-ray (CR)"),
    ("DX", "X-ray (DX)"),
    ("US", "Ultrasound"),
    ("MG", "Mammography"),
    ("NM", "Nuclear medicine"),
    ("PT", "PET"),
    ("XA", "Angiography"),
]
IDENTITY_METHODS = [
    ("photo_id", "Photo ID checked"),
    ("in_person", "In person"),
    ("knowledge", "Knowledge-based questions"),
    ("other", "Other (explain)"),
]


def _normalized_name(value: str) -> str:
    return " ".join(value.split()).casefold()


def signature_png_from_data_url(value: str) -> bytes:
    """The drawn signature, checked to be a real, bounded, non-blank PNG, re-encoded by Pillow."""
    if not value.startswith(SIGNATURE_PREFIX):
        raise ValidationError("Draw your signature in the box.", code="signature_missing")
    encoded = value[len(SIGNATURE_PREFIX) :]
    if len(encoded) > SIGNATURE_MAX_BYTES * 4 // 3 + 4:
        raise ValidationError("The signature image is too large.", code="signature_too_large")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(
            "The signature could not be read; please draw it again.", code="signature_bad"
        ) from None
    if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValidationError("The signature could not be read; please draw it again.", code="signature_bad")
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if image.format != "PNG":
                raise ValidationError("The signature could not be read.", code="signature_bad")
            width, height = image.size
            if not (0 < width <= SIGNATURE_MAX_SIDE and 0 < height <= SIGNATURE_MAX_SIDE):
                raise ValidationError("The signature image has an unexpected size.", code="signature_bad")
            image.load()
            rgba = image.convert("RGBA")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise ValidationError(
            "The signature could not be read; please draw it again.", code="signature_bad"
        ) from None
    # Flatten onto white: what prints is what counts as ink.
    flat = Image.new("RGBA", rgba.size, "white")
    flat.alpha_composite(rgba)
    gray = ImageOps.grayscale(flat)
    ink = sum(gray.histogram()[:160])
    if ink < SIGNATURE_MIN_INK_PIXELS:
        raise ValidationError("The signature box is empty: draw your signature.", code="signature_empty")
    out = io.BytesIO()
    flat.convert("RGB").save(out, format="PNG", optimize=True)
    return out.getvalue()


def identity_document_from_upload(upload: UploadedFile) -> IdentityDocument:
    if upload.size is None or upload.size > ID_DOCUMENT_MAX_BYTES:
        raise ValidationError("The document must be 10 MB or smaller.", code="too_large")
    head = upload.read(8)
    content_type = next((kind for magic, kind in MAGIC if head.startswith(magic)), None)
    if content_type is None:
        raise ValidationError("Upload a photo (JPEG or PNG) or a PDF of the document.", code="bad_type")
    upload.seek(0)
    data = upload.read(ID_DOCUMENT_MAX_BYTES + 1)
    if len(data) > ID_DOCUMENT_MAX_BYTES:
        raise ValidationError("The document must be 10 MB or smaller.", code="too_large")
    return IdentityDocument(data=data, content_type=content_type)


class PageForm(forms.Form):
    """A form that shares its page with others: its element ids carry a prefix so they stay unique
    (the field names, and so the posted data, do not change)."""

    id_prefix = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if self.id_prefix:
            kwargs.setdefault("auto_id", f"{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class AuthorizationForm(forms.Form):
    # The patient
    legal_name = forms.CharField(label="Legal name", max_length=200, help_text="As on your photo ID.")
    birth_date = forms.DateField(label="Date of birth", widget=DateInput())
    other_names = forms.CharField(
        label="Other names used (optional)",
        max_length=300,
        required=False,
        help_text="Maiden name, previous names.",
    )
    mrn = forms.CharField(
        label="Medical record number, if you know it (optional)", max_length=64, required=False
    )
    contact_email = forms.EmailField(label="Email")
    phone = forms.CharField(label="Telephone (optional)", max_length=40, required=False)
    address = forms.CharField(
        label="Postal address (optional)", required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    # Who holds the records
    facility = forms.ModelChoiceField(
        label="Facility", queryset=Facility.objects.none(), empty_label="Choose the facility"
    )
    # What to release
    scope_kind = forms.ChoiceField(
        label="What to release",
        choices=ReleaseAuthorization.ScopeKind.choices,
        widget=forms.RadioSelect,
        initial=ReleaseAuthorization.ScopeKind.EXAMS,
    )
    exams = forms.CharField(
        label="Which exams",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For example: “CT of the chest, March 2026”.",
    )
    date_from = forms.DateField(label="From", required=False, widget=DateInput())
    date_to = forms.DateField(label="To", required=False, widget=DateInput())
    modalities = forms.MultipleChoiceField(
        label="Kinds of exam (none chosen means all)",
        choices=MODALITY_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    content = forms.ChoiceField(
        label="Release",
        choices=ReleaseAuthorization.Content.choices,
        widget=forms.RadioSelect,
        initial=ReleaseAuthorization.Content.IMAGES_AND_REPORTS,
    )
    # Who receives them
    recipient_kind = forms.ChoiceField(
        label="Send them to",
        choices=ReleaseAuthorization.Recipient.choices,
        widget=forms.RadioSelect,
        initial=ReleaseAuthorization.Recipient.PATIENT,
    )
    provider_name = forms.CharField(label="Provider's name", max_length=200, required=False)
    provider_organisation = forms.CharField(label="Organisation", max_length=200, required=False)
    provider_email = forms.EmailField(label="Provider's email", required=False)
    # Why, until when
    purpose = forms.CharField(
        label="Purpose",
        max_length=300,
        help_text="For example: continuing care, second opinion, personal records.",
    )
    expires_on = forms.DateField(
        label="This authorization expires on",
        required=False,
        widget=DateInput(),
        help_text="Leave empty only if you give an expiry event instead.",
    )
    expiry_event = forms.CharField(
        label="…or when this event happens (optional)",
        max_length=300,
        required=False,
        help_text="For example: “when my treatment at the clinic ends”.",
    )
    # Statements
    ack_revoke = forms.BooleanField(
        label="I understand I may revoke this authorization in writing at any time, as described above."
    )
    ack_not_conditioned = forms.BooleanField(
        label="I understand my treatment does not depend on signing this authorization."
    )
    ack_redisclosure = forms.BooleanField(
        label="I understand the recipient may redisclose the information, and it may then no longer be protected."
    )
    # Representative
    is_representative = forms.BooleanField(
        label="I am signing as the patient's personal representative", required=False
    )
    representative_name = forms.CharField(label="Representative's full name", max_length=200, required=False)
    representative_authority = forms.CharField(
        label="Authority to act for the patient",
        max_length=300,
        required=False,
        help_text="For example: parent of a minor, legal guardian, health care power of attorney.",
    )
    # Signature
    signature = forms.CharField(
        widget=forms.HiddenInput,
        required=False,
        error_messages={"required": "Draw your signature in the box."},
    )
    typed_signature = forms.CharField(
        label="Type your full name",
        max_length=200,
        help_text="The patient's legal name, or the representative's name if you sign for them.",
    )
    id_document = forms.FileField(
        label="Identity document (optional)",
        required=False,
        help_text="A photo or scan of your ID: JPEG, PNG or PDF, up to 10 MB. You can also add it later.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        facilities = Facility.objects.filter(is_active=True).order_by("name")
        self.fields["facility"].queryset = facilities  # type: ignore[attr-defined]
        if facilities.count() == 1:
            self.fields["facility"].initial = facilities.first()
        self.fields["expires_on"].initial = timezone.localdate() + datetime.timedelta(
            days=DEFAULT_EXPIRY_DAYS
        )

    def clean_birth_date(self) -> datetime.date:
        value: datetime.date = self.cleaned_data["birth_date"]
        if value > timezone.localdate():
            raise ValidationError("The date of birth cannot be in the future.")
        return value

    def clean_expires_on(self) -> datetime.date | None:
        value: datetime.date | None = self.cleaned_data.get("expires_on")
        if value is not None and value <= timezone.localdate():
            raise ValidationError("The expiry date must be in the future.")
        return value

    def clean_signature(self) -> bytes:
        return signature_png_from_data_url(self.cleaned_data.get("signature") or "")

    def clean_id_document(self) -> IdentityDocument | None:
        upload = self.cleaned_data.get("id_document")
        return identity_document_from_upload(upload) if upload else None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        scope = data.get("scope_kind")
        if scope == ReleaseAuthorization.ScopeKind.EXAMS and not data.get("exams", "").strip():
            self.add_error("exams", "Say which exams to release.")
        if scope == ReleaseAuthorization.ScopeKind.DATE_RANGE:
            start, end = data.get("date_from"), data.get("date_to")
            if start is None and end is None:
                self.add_error("date_from", "Give at least the start or the end of the period.")
            elif start and end and start > end:
                self.add_error("date_to", "The end of the period is before its start.")
        if data.get("recipient_kind") == ReleaseAuthorization.Recipient.PROVIDER:
            if not data.get("provider_name", "").strip():
                self.add_error("provider_name", "Name the provider who receives the records.")
            if not data.get("provider_email"):
                self.add_error("provider_email", "Give the provider's email: the secure link is sent there.")
        if (
            not data.get("expires_on")
            and not data.get("expiry_event", "").strip()
            and "expires_on" not in self.errors
        ):
            self.add_error("expires_on", "Give an expiry date, or an event that ends the authorization.")
        representative = data.get("is_representative")
        if representative:
            if not data.get("representative_name", "").strip():
                self.add_error("representative_name", "Give the representative's name.")
            if not data.get("representative_authority", "").strip():
                self.add_error("representative_authority", "Say what authority the representative has.")
        typed = _normalized_name(data.get("typed_signature", ""))
        allowed = {_normalized_name(data.get("legal_name", ""))}
        if representative:
            allowed.add(_normalized_name(data.get("representative_name", "")))
        if typed and typed not in allowed - {""}:
            who = (
                "the patient's legal name or the representative's name"
                if representative
                else "your legal name above"
            )
            self.add_error("typed_signature", f"The typed name must match {who}.")
        return data

    def details(self) -> AuthorizationDetails:
        d = self.cleaned_data
        exams_scope = d["scope_kind"] == ReleaseAuthorization.ScopeKind.EXAMS
        provider = d["recipient_kind"] == ReleaseAuthorization.Recipient.PROVIDER
        representative = bool(d.get("is_representative"))
        return AuthorizationDetails(
            legal_name=d["legal_name"].strip(),
            birth_date=d["birth_date"],
            other_names=d["other_names"].strip(),
            mrn=d["mrn"].strip(),
            contact_email=d["contact_email"],
            phone=d["phone"].strip(),
            address=d["address"].strip(),
            facility=d["facility"],
            scope_kind=d["scope_kind"],
            exams=d["exams"].strip() if exams_scope else "",
            date_from=None if exams_scope else d.get("date_from"),
            date_to=None if exams_scope else d.get("date_to"),
            modalities="" if exams_scope else ",".join(d.get("modalities") or []),
            content=d["content"],
            recipient_kind=d["recipient_kind"],
            provider_name=d["provider_name"].strip() if provider else "",
            provider_organisation=d["provider_organisation"].strip() if provider else "",
            provider_email=d["provider_email"] if provider else "",
            purpose=d["purpose"].strip(),
            expires_on=d.get("expires_on"),
            expiry_event=d["expiry_event"].strip(),
            representative_name=d["representative_name"].strip() if representative else "",
            representative_authority=d["representative_authority"].strip() if representative else "",
            typed_signature=d["typed_signature"].strip(),
        )


class IdentityDocumentForm(PageForm):
    id_prefix = "document"

    id_document = forms.FileField(
        label="Identity document", help_text="A photo or scan of your ID: JPEG, PNG or PDF, up to 10 MB."
    )

    def clean_id_document(self) -> IdentityDocument:
        return identity_document_from_upload(self.cleaned_data["id_document"])


class MessageForm(PageForm):
    id_prefix = "reply"

    text = forms.CharField(label="Message", max_length=4000, widget=forms.Textarea(attrs={"rows": 4}))


class RevokeForm(PageForm):
    id_prefix = "revoke"

    confirm = forms.BooleanField(label="Yes, revoke this authorization and stop all disclosure under it")


# --- Records staff -------------------------------------------------------------------------------


class QueueFilterForm(PageForm):
    id_prefix = "queue"

    STATUS_CHOICES = [("open", "Open"), ("", "All"), *ReleaseAuthorization.Status.choices]
    SORT_CHOICES = [
        ("due", "Due date, soonest first"),
        ("-due", "Due date, latest first"),
        ("received", "Received, oldest first"),
        ("-received", "Received, newest first"),
    ]
    status = forms.ChoiceField(label="Status", choices=STATUS_CHOICES, required=False)
    assignee = forms.ChoiceField(label="Assignee", required=False)
    facility = forms.ModelChoiceField(
        label="Facility", queryset=Facility.objects.none(), required=False, empty_label="All"
    )
    overdue = forms.BooleanField(label="Overdue only", required=False)
    sort = forms.ChoiceField(label="Sort by", choices=SORT_CHOICES, required=False)

    def __init__(self, *args: Any, staff: list[User], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = [  # type: ignore[attr-defined]
            ("", "Anyone"),
            ("mine", "Me"),
            ("unassigned", "Unassigned"),
            *[(str(u.pk), u.email) for u in staff],
        ]
        self.fields["facility"].queryset = Facility.objects.order_by("name")  # type: ignore[attr-defined]


class AssignForm(PageForm):
    id_prefix = "assign"

    assignee = forms.ChoiceField(label="Assign to")

    def __init__(self, *args: Any, staff: list[User], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.staff = {str(u.pk): u for u in staff}
        self.fields["assignee"].choices = [("", "Nobody"), *[(pk, u.email) for pk, u in self.staff.items()]]  # type: ignore[attr-defined]
        self.fields["assignee"].required = False

    def assignee_user(self) -> User | None:
        return self.staff.get(self.cleaned_data.get("assignee") or "")


class IdentityVerifyForm(PageForm):
    id_prefix = "verify"

    method = forms.ChoiceField(label="How was the identity verified?", choices=IDENTITY_METHODS)
    note = forms.CharField(label="Note (required for “Other”)", max_length=150, required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("method") == "other" and not data.get("note", "").strip():
            self.add_error("note", "Describe how the identity was verified.")
        return data

    def method_text(self) -> str:
        label = dict(IDENTITY_METHODS)[self.cleaned_data["method"]]
        note = self.cleaned_data.get("note", "").strip()
        if self.cleaned_data["method"] == "other":
            return f"Other: {note}"
        return f"{label} ({note})" if note else label


class PatientLinkForm(PageForm):
    id_prefix = "link"

    patient_id = forms.CharField(
        label="Patient ID at the facility",
        max_length=64,
        help_text="The PatientID the facility's studies carry; the facility's issuer is added.",
    )


class StudySearchForm(PageForm):
    id_prefix = "search"

    patient_id = forms.CharField(label="Patient ID", max_length=64, required=False)
    name = forms.CharField(label="Name contains", max_length=100, required=False)
    birth_date = forms.DateField(label="Date of birth", required=False, widget=DateInput())
    date_from = forms.DateField(label="Studies from", required=False, widget=DateInput())
    date_to = forms.DateField(label="Studies to", required=False, widget=DateInput())
    modality = forms.CharField(label="Modality", max_length=16, required=False)


class StudyPickForm(PageForm):
    id_prefix = "pick"

    studies = forms.TypedMultipleChoiceField(label="Studies", coerce=int, choices=[])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Any integer: the view loads them through the staff selector.
        raw = self.data.getlist("studies") if hasattr(self.data, "getlist") else []
        self.fields["studies"].choices = [(v, v) for v in raw if str(v).isdigit()]  # type: ignore[attr-defined]


class HoldForm(PageForm):
    id_prefix = "hold"

    message = forms.CharField(
        label="Message to the patient",
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Say what you need from them. They see this when they sign in.",
    )


class ExtendForm(PageForm):
    id_prefix = "extend"

    days = forms.IntegerField(label="Extra days", min_value=1)
    reason = forms.CharField(
        label="Reason (shown to the patient)", max_length=1000, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args: Any, max_days: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["days"].validators.append(MaxValueValidator(max_days))
        self.fields["days"].initial = max_days
        self.fields["days"].widget.attrs["max"] = str(max_days)


class NoteForm(PageForm):
    id_prefix = "note"

    text = forms.CharField(
        label="Internal note (staff only)", max_length=4000, widget=forms.Textarea(attrs={"rows": 3})
    )


class DenyForm(PageForm):
    id_prefix = "deny"

    template = forms.ChoiceField(label="Reason template", required=False)
    reason = forms.CharField(
        label="Reason (shown to the patient)",
        max_length=4000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Leave empty to use the template's text as it is.",
    )

    def __init__(self, *args: Any, reasons: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reasons = dict(reasons)
        self.fields["template"].choices = [("", "Write my own"), *[(t, t) for t, _ in reasons]]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        text = (data.get("reason") or "").strip() or self.reasons.get(data.get("template") or "", "")
        if not text:
            self.add_error("reason", "Choose a template or write the reason.")
        data["reason_text"] = text
        return data


class ConfirmForm(PageForm):
    id_prefix = "release"

    confirm = forms.BooleanField(
        label="I release the attached studies to the recipient this authorization names"
    )


class PatientSearchForm(PageForm):
    id_prefix = "patient"

    q = forms.CharField(label="Patient ID, name or account email", max_length=200, required=False)


class ReconcileAssignForm(PageForm):
    id_prefix = "assign"

    patient = forms.IntegerField(widget=forms.HiddenInput)


class ReconcileRejectForm(PageForm):
    id_prefix = "reject"

    reason = forms.CharField(
        label="Reason for rejecting", max_length=1000, widget=forms.Textarea(attrs={"rows": 3})
    )
