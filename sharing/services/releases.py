"""Release of information: the patient signs, revokes and replies; records staff verify, link,
attach, hold, extend, release and deny; and they reconcile studies that match no patient.

Every function owns one change, writes its audit event and its timeline line in the same
transaction, and sends email only once that transaction commits. Emails to the patient say what
happened to which request number and nothing else: the details are behind sign-in.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from sharing.conf import app_settings
from sharing.models import (
    AuditEvent,
    AuthorizationEvent,
    Facility,
    Patient,
    ReleaseAuthorization,
    Share,
    Study,
    User,
)
from sharing.services.audit import Client, audit_event_record
from sharing.services.authorization_pdf import authorization_pdf_render
from sharing.services.shares import MAX_LIFETIME, share_create, share_revoke
from sharing.storage import get_store, new_key

Status = ReleaseAuthorization.Status
Kind = AuthorizationEvent.Kind

SIGNATURE_PREFIX = "authorizations/signatures"
PDF_PREFIX = "authorizations/pdf"
ID_DOCUMENT_PREFIX = "authorizations/identity"
ID_DOCUMENT_SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "application/pdf": ".pdf"}


@dataclass(frozen=True)
class AuthorizationDetails:
    """What the patient states on the form, already validated."""

    legal_name: str
    birth_date: datetime.date
    contact_email: str
    facility: Facility
    scope_kind: str
    recipient_kind: str
    purpose: str
    typed_signature: str
    other_names: str = ""
    mrn: str = ""
    phone: str = ""
    address: str = ""
    exams: str = ""
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    modalities: str = ""
    content: str = ReleaseAuthorization.Content.IMAGES_AND_REPORTS
    provider_name: str = ""
    provider_organisation: str = ""
    provider_email: str = ""
    expires_on: datetime.date | None = None
    expiry_event: str = ""
    representative_name: str = ""
    representative_authority: str = ""

    def as_model_fields(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


@dataclass(frozen=True)
class IdentityDocument:
    data: bytes
    content_type: str  # from the file's magic bytes, one of ID_DOCUMENT_SUFFIXES


@dataclass(frozen=True)
class ReleaseOutcome:
    authorization: ReleaseAuthorization
    share: Share | None = None
    code: str = ""  # the access code of a provider share: shown to staff once


def studies_count(count: int) -> str:
    return f"{count} study" if count == 1 else f"{count} studies"


def _audit(
    auth: ReleaseAuthorization,
    action: AuditEvent.Action,
    *,
    actor: User,
    client: Client,
    detail: dict[str, Any] | None = None,
    patient: Patient | None = None,
    study_instance_uid: str = "",
    outcome: AuditEvent.Outcome = AuditEvent.Outcome.SUCCESS,
) -> None:
    audit_event_record(
        action=action,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_user=actor,
        client=client,
        patient=patient if patient is not None else auth.patient,
        study_instance_uid=study_instance_uid,
        outcome=outcome,
        detail={"authorization": auth.pk, **(detail or {})},
    )


def _event(
    auth: ReleaseAuthorization,
    kind: AuthorizationEvent.Kind,
    *,
    actor: User | None,
    text: str = "",
    status: str = "",
    visible_to_patient: bool = True,
) -> AuthorizationEvent:
    return AuthorizationEvent.objects.create(
        authorization=auth,
        occurred_at=timezone.now(),
        kind=kind,
        actor=actor,
        status=status,
        text=text,
        visible_to_patient=visible_to_patient,
    )


def _set_status(auth: ReleaseAuthorization, status: Status, *, actor: User | None, text: str = "") -> None:
    auth.status = status
    auth.save(update_fields=["status"])
    _event(auth, Kind.STATUS, actor=actor, status=status, text=text)


def _notify_patient(auth: ReleaseAuthorization, what: str) -> None:
    """No PHI: the request number and what happened to it."""
    pk, email = auth.pk, auth.requester.email

    def send() -> None:
        send_mail(
            f"Your Lightbox request #{pk}",
            f"Your records request #{pk} {what}.\n\nSign in to Lightbox to see the details.",
            None,
            [email],
        )

    transaction.on_commit(send)


def _require_open(auth: ReleaseAuthorization) -> None:
    if not auth.is_open:
        raise ValidationError(
            f"This request is {auth.get_status_display().lower()}; it can no longer change."
        )


def _locked(auth: ReleaseAuthorization) -> ReleaseAuthorization:
    """The row, locked for this transaction, so two staff members cannot decide it at once."""
    return (
        ReleaseAuthorization.objects.select_for_update()
        .select_related("facility", "requester")
        .get(pk=auth.pk)
    )


# --- The patient ---------------------------------------------------------------------------------


def _store_id_document(document: IdentityDocument) -> str:
    suffix = ID_DOCUMENT_SUFFIXES.get(document.content_type)
    if suffix is None:
        raise ValidationError("An identity document must be a JPEG, PNG or PDF file.")
    key = new_key(ID_DOCUMENT_PREFIX, suffix)
    get_store().put_bytes(key, document.data, content_type=document.content_type)
    return key


@transaction.atomic
def authorization_sign(
    *,
    requester: User,
    details: AuthorizationDetails,
    signature_png: bytes,
    client: Client,
    id_document: IdentityDocument | None = None,
) -> ReleaseAuthorization:
    """Record a signed authorization, render it as a PDF, store both, and open the request."""
    now = timezone.now()
    store = get_store()
    signature_key = new_key(SIGNATURE_PREFIX, ".png")
    store.put_bytes(signature_key, signature_png, content_type="image/png")
    auth = ReleaseAuthorization.objects.create(
        requester=requester,
        **details.as_model_fields(),
        signature_key=signature_key,
        signed_at=now,
        signed_from=client.address,
        status=Status.SUBMITTED,
        received_at=now,
        due_on=timezone.localdate(now) + datetime.timedelta(days=app_settings.RELEASE_DUE_DAYS),
    )
    pdf = authorization_pdf_render(authorization=auth, signature_png=signature_png)
    auth.pdf_key = new_key(PDF_PREFIX, ".pdf")
    store.put_bytes(auth.pdf_key, pdf, content_type="application/pdf")
    auth.pdf_sha256 = hashlib.sha256(pdf).hexdigest()
    if id_document is not None:
        auth.id_document_key = _store_id_document(id_document)
        auth.id_document_type = id_document.content_type
    auth.save(update_fields=["pdf_key", "pdf_sha256", "id_document_key", "id_document_type"])
    _event(
        auth,
        Kind.STATUS,
        actor=requester,
        status=Status.SUBMITTED,
        text="Authorization signed and submitted.",
    )
    _audit(
        auth,
        AuditEvent.Action.AUTHORIZATION_SIGN,
        actor=requester,
        client=client,
        detail={
            "pdf_sha256": auth.pdf_sha256,
            "facility": auth.facility_id,
            "recipient": auth.recipient_kind,
        },
    )
    return auth


@transaction.atomic
def authorization_id_document_attach(
    *, authorization: ReleaseAuthorization, actor: User, document: IdentityDocument, client: Client
) -> None:
    """The patient adds (or replaces) a copy of their identity document while the request is open."""
    auth = _locked(authorization)
    _require_open(auth)
    auth.id_document_key = _store_id_document(document)
    auth.id_document_type = document.content_type
    auth.save(update_fields=["id_document_key", "id_document_type"])
    _event(auth, Kind.MESSAGE, actor=actor, text="Identity document added.")
    _audit(
        auth,
        AuditEvent.Action.AUTHORIZATION_UPDATE,
        actor=actor,
        client=client,
        detail={"change": "identity document", "type": document.content_type},
    )
    authorization.refresh_from_db()


@transaction.atomic
def authorization_revoke(*, authorization: ReleaseAuthorization, actor: User, client: Client) -> int:
    """Stop all disclosure under the authorization; revokes the shares made under it. Returns how many."""
    auth = _locked(authorization)
    if auth.status in (Status.REVOKED, Status.DENIED):
        raise ValidationError(f"This request is already {auth.get_status_display().lower()}.")
    auth.revoked_at = timezone.now()
    auth.save(update_fields=["revoked_at"])
    _set_status(auth, Status.REVOKED, actor=actor, text="Authorization revoked by the patient.")
    revoked = 0
    for share in Share.objects.filter(authorization=auth):
        revoked += share_revoke(share=share, actor=actor, client=client, reason="authorization revoked")
    _audit(
        auth,
        AuditEvent.Action.AUTHORIZATION_REVOKE,
        actor=actor,
        client=client,
        detail={"shares_revoked": revoked},
    )
    authorization.refresh_from_db()
    return revoked


@transaction.atomic
def authorization_reply(
    *, authorization: ReleaseAuthorization, actor: User, text: str, client: Client
) -> None:
    """The patient answers staff; a request on hold goes back to review."""
    auth = _locked(authorization)
    _require_open(auth)
    _event(auth, Kind.MESSAGE, actor=actor, text=text)
    if auth.status == Status.ON_HOLD:
        _set_status(auth, Status.IN_REVIEW, actor=actor, text="The patient replied.")
    _audit(
        auth,
        AuditEvent.Action.AUTHORIZATION_UPDATE,
        actor=actor,
        client=client,
        detail={"change": "reply"},
    )
    authorization.refresh_from_db()


# --- Records staff -------------------------------------------------------------------------------


def _require_staff(actor: User) -> None:
    if not actor.is_records_staff:
        raise ValidationError("Only records staff can do this.")


def _start_review(auth: ReleaseAuthorization, actor: User) -> None:
    if auth.status == Status.SUBMITTED:
        _set_status(auth, Status.IN_REVIEW, actor=actor, text="Records staff started reviewing the request.")


@transaction.atomic
def authorization_assign(
    *, authorization: ReleaseAuthorization, actor: User, assignee: User | None, client: Client
) -> None:
    _require_staff(actor)
    if assignee is not None and not assignee.is_records_staff:
        raise ValidationError("Requests can only be assigned to records staff.")
    auth = _locked(authorization)
    _require_open(auth)
    auth.assignee = assignee
    auth.save(update_fields=["assignee"])
    label = assignee.email if assignee else "nobody"
    _event(auth, Kind.NOTE, actor=actor, text=f"Assigned to {label}.", visible_to_patient=False)
    _start_review(auth, actor)
    _audit(
        auth,
        AuditEvent.Action.AUTHORIZATION_UPDATE,
        actor=actor,
        client=client,
        detail={"change": "assign", "assignee": assignee.pk if assignee else None},
    )
    authorization.refresh_from_db()


@transaction.atomic
def authorization_note(
    *, authorization: ReleaseAuthorization, actor: User, text: str, client: Client
) -> None:
    """An internal note: never shown to the patient."""
    _require_staff(actor)
    auth = _locked(authorization)
    _event(auth, Kind.NOTE, actor=actor, text=text, visible_to_patient=False)
    _audit(
        auth,
        AuditEvent.Action.AUTHORIZATION_UPDATE,
        actor=actor,
        client=client,
        detail={"change": "note"},
    )


@transaction.atomic
def authorization_hold(
    *, authorization: ReleaseAuthorization, actor: User, message: str, client: Client
) -> None:
    """Ask the patient for something; the request waits for their reply."""
    _require_staff(actor)
    auth = _locked(authorization)
    _require_open(auth)
    _event(auth, Kind.MESSAGE, actor=actor, text=message)
    if auth.status != Status.ON_HOLD:
        _set_status(auth, Status.ON_HOLD, actor=actor, text="Waiting for your reply.")
    _audit(
        auth,
        AuditEvent.Action.AUTHORIZATION_UPDATE,
        actor=actor,
        client=client,
        detail={"change": "hold"},
    )
    _notify_patient(auth, "needs something from you")
    authorization.refresh_from_db()


@transaction.atomic
def authorization_extend(
    *, authorization: ReleaseAuthorization, actor: User, days: int, reason: str, client: Client
) -> None:
    """Move the due date once, by at most LIGHTBOX_RELEASE_EXTENSION_DAYS, with a reason."""
    _require_staff(actor)
    auth = _locked(authorization)
    _require_open(auth)
    if auth.extended_at is not None:
        raise ValidationError("The due date has already been extended once.")
    if not 1 <= days <= app_settings.RELEASE_EXTENSION_DAYS:
        raise ValidationError(f"An extension is 1 to {app_settings.RELEASE_EXTENSION_DAYS} days.")
    if not reason.strip():
        raise ValidationError("Give the reason for the extension.")
    previous = auth.due_on
    auth.due_on = previous + datetime.timedelta(days=days)
    auth.extension_reason = reason.strip()
    auth.extended_at = timezone.now()
    auth.save(update_fields=["due_on", "extension_reason", "extended_at"])
    _event(
        auth,
        Kind.MESSAGE,
        actor=actor,
        text=f"We need more time: the new due date is {auth.due_on:%d %B %Y}. {auth.extension_reason}",
    )
    _audit(
        auth,
        AuditEvent.Action.AUTHORIZATION_UPDATE,
        actor=actor,
        client=client,
        detail={
            "change": "extend",
            "from": previous.isoformat(),
            "to": auth.due_on.isoformat(),
            "reason": auth.extension_reason,
        },
    )
    _notify_patient(auth, "has a new due date")
    authorization.refresh_from_db()


@transaction.atomic
def identity_verify(*, authorization: ReleaseAuthorization, actor: User, method: str, client: Client) -> None:
    _require_staff(actor)
    if not method.strip():
        raise ValidationError("Say how the identity was verified.")
    auth = _locked(authorization)
    _require_open(auth)
    auth.identity_verified_at = timezone.now()
    auth.identity_verified_by = actor
    auth.identity_method = method.strip()[:200]
    auth.save(update_fields=["identity_verified_at", "identity_verified_by", "identity_method"])
    _event(
        auth,
        Kind.NOTE,
        actor=actor,
        text=f"Identity verified: {auth.identity_method}.",
        visible_to_patient=False,
    )
    _event(auth, Kind.MESSAGE, actor=actor, text="Your identity has been verified.")
    _start_review(auth, actor)
    _audit(
        auth,
        AuditEvent.Action.IDENTITY_VERIFY,
        actor=actor,
        client=client,
        detail={"method": auth.identity_method},
    )
    authorization.refresh_from_db()


@transaction.atomic
def authorization_patient_link(
    *, authorization: ReleaseAuthorization, actor: User, patient_id: str, client: Client
) -> Patient:
    """Link the requester's account to their DICOM identity (PatientID + the facility's issuer).

    From this moment the studies of that Patient appear in the requester's library.
    """
    _require_staff(actor)
    patient_id = patient_id.strip()
    if not patient_id:
        raise ValidationError("Enter the patient ID.")
    auth = _locked(authorization)
    _require_open(auth)
    if auth.identity_verified_at is None:
        raise ValidationError("Verify the patient's identity before linking their records.")
    patient, created = Patient.objects.select_for_update().get_or_create(
        patient_id=patient_id,
        issuer=auth.facility.issuer,
        upload_owner=None,  # the hospital's record, not a patient's upload nor a clash set apart
        clash_of=None,
        defaults={"birth_date": auth.birth_date, "user": auth.requester},
    )
    if patient.user_id not in (None, auth.requester_id):
        raise ValidationError("This patient ID is already linked to another account.")
    if patient.user_id is None:
        patient.user = auth.requester
        patient.save(update_fields=["user", "updated_at"])
    auth.patient = patient
    auth.save(update_fields=["patient"])
    _event(
        auth,
        Kind.NOTE,
        actor=actor,
        text=f"Linked to patient ID {patient.patient_id}.",
        visible_to_patient=False,
    )
    _start_review(auth, actor)
    _audit(
        auth,
        AuditEvent.Action.PATIENT_LINK,
        actor=actor,
        client=client,
        patient=patient,
        detail={
            "user": auth.requester_id,
            "patient_id": patient.patient_id,
            "issuer": patient.issuer,
            "created": created,
        },
    )
    authorization.refresh_from_db()
    return patient


@transaction.atomic
def authorization_studies_attach(
    *, authorization: ReleaseAuthorization, actor: User, studies: Sequence[Study], client: Client
) -> int:
    """Attach studies found for the request; returns how many were new to it."""
    _require_staff(actor)
    auth = _locked(authorization)
    _require_open(auth)
    already = set(auth.studies.values_list("pk", flat=True))
    new = [study for study in studies if study.pk not in already]
    auth.studies.add(*new)
    for study in new:
        _audit(
            auth,
            AuditEvent.Action.AUTHORIZATION_UPDATE,
            actor=actor,
            client=client,
            patient=study.patient,
            study_instance_uid=study.study_instance_uid,
            detail={"change": "attach study"},
        )
    if new:
        _event(
            auth,
            Kind.NOTE,
            actor=actor,
            text=f"{studies_count(len(new))} attached.",
            visible_to_patient=False,
        )
        _start_review(auth, actor)
    return len(new)


@transaction.atomic
def authorization_studies_detach(
    *, authorization: ReleaseAuthorization, actor: User, studies: Sequence[Study], client: Client
) -> None:
    _require_staff(actor)
    auth = _locked(authorization)
    _require_open(auth)
    auth.studies.remove(*studies)
    for study in studies:
        _audit(
            auth,
            AuditEvent.Action.AUTHORIZATION_UPDATE,
            actor=actor,
            client=client,
            patient=study.patient,
            study_instance_uid=study.study_instance_uid,
            detail={"change": "detach study"},
        )


@transaction.atomic
def authorization_awaiting_images(
    *, authorization: ReleaseAuthorization, actor: User, client: Client
) -> None:
    """The studies are being retrieved from the PACS."""
    _require_staff(actor)
    auth = _locked(authorization)
    _require_open(auth)
    if auth.status != Status.AWAITING_IMAGES:
        _set_status(auth, Status.AWAITING_IMAGES, actor=actor, text="Your images are being retrieved.")
        _audit(
            auth,
            AuditEvent.Action.AUTHORIZATION_UPDATE,
            actor=actor,
            client=client,
            detail={"change": "awaiting images"},
        )


def share_expiry_for(auth: ReleaseAuthorization, *, now: datetime.datetime) -> datetime.datetime:
    """The end of the authorization's expiry day, but never more than a share may last."""
    cap = now + MAX_LIFETIME
    if auth.expires_on is None:
        return cap
    end_of_day = datetime.datetime.combine(
        auth.expires_on, datetime.time.max, tzinfo=timezone.get_current_timezone()
    )
    return min(end_of_day, cap)


def _release_checks(auth: ReleaseAuthorization, studies: list[Study], now: datetime.datetime) -> None:
    if auth.identity_verified_at is None:
        raise ValidationError("Verify the patient's identity before releasing.")
    if auth.patient is None:
        raise ValidationError("Link the account to the patient's records before releasing.")
    if not studies:
        raise ValidationError("Attach at least one study before releasing.")
    if auth.expires_on is not None and auth.expires_on < timezone.localdate(now):
        raise ValidationError("The authorization has expired; the patient must sign a new one.")
    strangers = [s for s in studies if s.patient.user_id != auth.requester_id]
    if strangers:
        raise ValidationError(
            "Some attached studies belong to a patient record not linked to this account "
            f"({', '.join(sorted({s.patient.patient_id for s in strangers}))}). Reconcile them to the "
            "requester's patient record, or detach them, before releasing."
        )


@transaction.atomic
def authorization_release(
    *,
    authorization: ReleaseAuthorization,
    actor: User,
    client: Client,
    link_for: Callable[[str], str] | None = None,
) -> ReleaseOutcome:
    """Release the attached studies to the recipient.

    To the patient: the studies already show in their library (their Patient record is linked);
    the request is marked fulfilled. To a provider: a share link protected by an access code,
    lasting as long as the authorization (90 days at most). The link goes to the provider by
    email; the code goes to the patient in a separate email and is returned once for staff.
    ``link_for(token)`` builds the absolute share URL (the view knows the host).
    """
    _require_staff(actor)
    auth = _locked(authorization)
    _require_open(auth)
    now = timezone.now()
    studies = list(auth.studies.select_related("patient").order_by("study_date", "pk"))
    _release_checks(auth, studies, now)
    share: Share | None = None
    code = ""
    if auth.recipient_kind == ReleaseAuthorization.Recipient.PROVIDER:
        if not auth.provider_email:
            raise ValidationError("The authorization names no provider email to send the link to.")
        created = share_create(
            owner=auth.requester,
            studies=studies,
            expires_at=share_expiry_for(auth, now=now),
            protection=Share.Protection.CODE,
            allow_download=True,
            recipient_name=auth.provider_name,
            recipient_email=auth.provider_email,
            authorization=auth,
            client=client,
            link_for=link_for,
        )
        share, code = created.share, created.code
        _email_patient_code(auth, code)
    auth.decided_at = now
    auth.decided_by = actor
    auth.save(update_fields=["decided_at", "decided_by"])
    recipient = "you, in your Lightbox library" if share is None else f"{auth.provider_name} by a secure link"
    _set_status(auth, Status.FULFILLED, actor=actor, text=f"Released to {recipient}.")
    for study in studies:
        _audit(
            auth,
            AuditEvent.Action.RELEASE,
            actor=actor,
            client=client,
            patient=study.patient,
            study_instance_uid=study.study_instance_uid,
            detail={"recipient": auth.recipient_kind, "share": share.pk if share else None},
        )
    _notify_patient(auth, "was fulfilled")
    authorization.refresh_from_db()
    return ReleaseOutcome(authorization=authorization, share=share, code=code)


def _email_patient_code(auth: ReleaseAuthorization, code: str) -> None:
    pk, email, provider = auth.pk, auth.requester.email, auth.provider_name

    def send() -> None:
        send_mail(
            f"The access code for your request #{pk}",
            (
                f"Your records request #{pk} was released to {provider} by a secure link, sent to them "
                "by email. They need this access code to open it; please give it to them yourself, "
                f"by phone or a message separate from the link:\n\n{code}\n\n"
                "Sign in to Lightbox to see the details, or to revoke the authorization."
            ),
            None,
            [email],
        )

    transaction.on_commit(send)


@transaction.atomic
def authorization_deny(
    *, authorization: ReleaseAuthorization, actor: User, reason: str, client: Client
) -> None:
    _require_staff(actor)
    if not reason.strip():
        raise ValidationError("Give the reason for the denial.")
    auth = _locked(authorization)
    _require_open(auth)
    auth.decided_at = timezone.now()
    auth.decided_by = actor
    auth.decision_reason = reason.strip()
    auth.save(update_fields=["decided_at", "decided_by", "decision_reason"])
    _set_status(auth, Status.DENIED, actor=actor, text=auth.decision_reason)
    _audit(
        auth,
        AuditEvent.Action.DENY,
        actor=actor,
        client=client,
        detail={"reason": auth.decision_reason},
    )
    _notify_patient(auth, "was denied")
    authorization.refresh_from_db()


def record_access(
    *,
    authorization: ReleaseAuthorization,
    actor: User,
    action: AuditEvent.Action,
    what: str,
    client: Client,
) -> None:
    """Someone looked at or downloaded part of a request (the PDF, the identity document, the page)."""
    _audit(authorization, action, actor=actor, client=client, detail={"document": what})


# --- Reconciliation ------------------------------------------------------------------------------


def _demographics(patient: Patient) -> dict[str, Any]:
    return {
        "patient_id": patient.patient_id,
        "issuer": patient.issuer,
        "name": patient.name,
        "birth_date": patient.birth_date.isoformat() if patient.birth_date else None,
        "sex": patient.sex,
    }


@transaction.atomic
def study_reconcile_assign(*, study: Study, patient: Patient, actor: User, client: Client) -> None:
    """Move a study to the right Patient record. The stored DICOM objects are never modified: the
    original demographics stay in them and in this audit event."""
    _require_staff(actor)
    study = Study.objects.select_for_update().select_related("patient").get(pk=study.pk)
    original = study.patient
    same_uid = Study.objects.filter(patient=patient, study_instance_uid=study.study_instance_uid)
    if same_uid.exclude(pk=study.pk).exists():
        raise ValidationError(
            "This patient already has a study with this Study Instance UID: compare the two, and "
            "reject this one if it is a copy."
        )
    held_reason = study.held_reason
    study.patient = patient
    study.held_reason = ""  # a person has decided whose it is
    study.save(update_fields=["patient", "held_reason"])
    audit_event_record(
        action=AuditEvent.Action.RECONCILE,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_user=actor,
        client=client,
        patient=patient,
        study_instance_uid=study.study_instance_uid,
        detail={
            "decision": "assigned",
            "study": study.pk,
            "original": _demographics(original),
            "original_patient": original.pk,
            "assigned_patient": patient.pk,
            "was_outside": study.is_outside,
            **({"was_held": held_reason} if held_reason else {}),
        },
    )


@transaction.atomic
def study_reconcile_reject(*, study: Study, actor: User, reason: str, client: Client) -> None:
    """Take a study out of the reconciliation queue without assigning it (it matches nobody, or is
    not a study the hospital accepts). Recorded in the audit trail, which the queue reads."""
    _require_staff(actor)
    if not reason.strip():
        raise ValidationError("Give the reason for rejecting the study.")
    audit_event_record(
        action=AuditEvent.Action.RECONCILE,
        actor_kind=AuditEvent.ActorKind.USER,
        actor_user=actor,
        client=client,
        patient=study.patient,
        study_instance_uid=study.study_instance_uid,
        detail={
            "decision": "rejected",
            "study": study.pk,
            "reason": reason.strip(),
            "original": _demographics(study.patient),
        },
    )
