from __future__ import annotations

import datetime
import hashlib
import io

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone
from pypdf import PdfReader

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
from sharing.selectors.releases import studies_unreconciled
from sharing.services.releases import (
    authorization_deny,
    authorization_extend,
    authorization_hold,
    authorization_patient_link,
    authorization_release,
    authorization_reply,
    authorization_revoke,
    authorization_studies_attach,
    identity_verify,
    study_reconcile_assign,
    study_reconcile_reject,
)
from sharing.storage import get_store
from tests.support.factories import records_staff
from tests.support.releases import (
    ADDR,
    CLIENT,
    make_facility,
    quick_study,
    sign,
    signature_png,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def facility() -> Facility:
    return make_facility()


@pytest.fixture
def jane() -> User:
    return User.objects.create_user("jane@example.com", "pw-123456789")


@pytest.fixture
def staff() -> User:
    return records_staff()


def ready_to_release(auth: ReleaseAuthorization, staff: User, *, patient_id: str = "MRN-1001") -> Study:
    identity_verify(authorization=auth, actor=staff, method="Photo ID checked", client=CLIENT)
    patient = authorization_patient_link(
        authorization=auth, actor=staff, patient_id=patient_id, client=CLIENT
    )
    study = quick_study(patient, f"1.2.3.{auth.pk}")
    authorization_studies_attach(authorization=auth, actor=staff, studies=[study], client=CLIENT)
    return study


def actions(auth: ReleaseAuthorization) -> list[str]:
    return list(
        AuditEvent.objects.filter(detail__authorization=auth.pk)
        .order_by("pk")
        .values_list("action", flat=True)
    )


# --- Signing -------------------------------------------------------------------------------------


def test_signing_stores_a_pdf_whose_hash_matches_the_stored_bytes(jane, facility):
    auth = sign(jane, facility)

    with get_store().open(auth.pdf_key) as handle:
        stored = handle.read()
    assert stored.startswith(b"%PDF-")
    assert auth.pdf_sha256 == hashlib.sha256(stored).hexdigest()
    assert auth.status == ReleaseAuthorization.Status.SUBMITTED
    assert auth.due_on == timezone.localdate() + datetime.timedelta(days=30)
    assert str(auth.signed_from) == ADDR
    with get_store().open(auth.signature_key) as handle:
        assert handle.read() == signature_png()


def test_the_pdf_holds_the_form_the_statements_the_signature_and_the_typed_name(jane, facility):
    auth = sign(
        jane,
        facility,
        legal_name="Zoë Łukasiewicz",
        typed_signature="zoë łukasiewicz",
        other_names="Zoë Smith",
        recipient_kind=ReleaseAuthorization.Recipient.PROVIDER,
        provider_name="Dr Alan Grant",
        provider_organisation="Oncology Clinic",
        provider_email="grant@clinic.example",
    )

    with get_store().open(auth.pdf_key) as handle:
        reader = PdfReader(io.BytesIO(handle.read()))
    text = " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)
    for expected in [
        "Zoë Łukasiewicz",
        "zoë łukasiewicz",
        "Zoë Smith",
        "01 January 1980",
        "General Hospital",
        "CT chest, January 2026",
        "Dr Alan Grant",
        "Oncology Clinic",
        "grant@clinic.example",
        "Continuing care with my oncologist",
        "records@general.example",
        "not condition my treatment",
        "redisclosed",
        ADDR,
    ]:
        assert expected in text, expected
    assert sum(len(page.images) for page in reader.pages) >= 1


def test_signing_is_audited_with_the_pdf_hash_and_starts_the_timeline(jane, facility):
    auth = sign(jane, facility)

    event = AuditEvent.objects.get(action=AuditEvent.Action.AUTHORIZATION_SIGN)
    assert event.actor_user == jane
    assert event.detail["pdf_sha256"] == auth.pdf_sha256
    assert list(auth.events.values_list("status", flat=True)) == [ReleaseAuthorization.Status.SUBMITTED]


def test_the_due_date_follows_the_setting(settings, jane, facility):
    settings.LIGHTBOX_RELEASE_DUE_DAYS = 10

    auth = sign(jane, facility)

    assert auth.due_on == timezone.localdate() + datetime.timedelta(days=10)


# --- Linking and releasing -----------------------------------------------------------------------


def test_linking_creates_the_patient_with_the_facility_issuer_and_links_the_account(jane, staff, facility):
    auth = sign(jane, facility)
    identity_verify(authorization=auth, actor=staff, method="Photo ID checked", client=CLIENT)

    patient = authorization_patient_link(
        authorization=auth, actor=staff, patient_id="MRN-1001", client=CLIENT
    )

    assert (patient.patient_id, patient.issuer, patient.user) == ("MRN-1001", "GENERAL", jane)
    assert auth.patient == patient
    assert auth.status == ReleaseAuthorization.Status.IN_REVIEW
    assert AuditEvent.objects.get(action=AuditEvent.Action.PATIENT_LINK).patient == patient


def test_linking_refuses_a_patient_linked_to_another_account(jane, staff, facility):
    john = User.objects.create_user("john@example.com", "pw-123456789")
    Patient.objects.create(patient_id="MRN-2002", issuer="GENERAL", user=john)
    auth = sign(jane, facility)
    identity_verify(authorization=auth, actor=staff, method="Photo ID checked", client=CLIENT)

    with pytest.raises(ValidationError, match="another account"):
        authorization_patient_link(authorization=auth, actor=staff, patient_id="MRN-2002", client=CLIENT)

    assert Patient.objects.get(patient_id="MRN-2002").user == john
    auth.refresh_from_db()
    assert auth.patient is None
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PATIENT_LINK).exists()


def test_linking_needs_a_verified_identity(jane, staff, facility):
    auth = sign(jane, facility)

    with pytest.raises(ValidationError, match="Verify"):
        authorization_patient_link(authorization=auth, actor=staff, patient_id="MRN-1001", client=CLIENT)


def test_release_to_the_patient_fulfils_and_notifies_without_details(jane, staff, facility):
    auth = sign(jane, facility)
    study = ready_to_release(auth, staff)
    mail.outbox.clear()

    outcome = authorization_release(authorization=auth, actor=staff, client=CLIENT)

    assert outcome.share is None
    assert auth.status == ReleaseAuthorization.Status.FULFILLED
    assert auth.decided_by == staff
    assert [m.to for m in mail.outbox] == [["jane@example.com"]]
    assert f"#{auth.pk} was fulfilled" in mail.outbox[0].body
    assert "CT" not in mail.outbox[0].body
    release = AuditEvent.objects.get(action=AuditEvent.Action.RELEASE)
    assert release.study_instance_uid == study.study_instance_uid


def test_release_refuses_studies_of_a_patient_not_linked_to_the_requester(jane, staff, facility):
    auth = sign(jane, facility)
    ready_to_release(auth, staff)
    stranger = Patient.objects.create(patient_id="MRN-9999", issuer="GENERAL")
    authorization_studies_attach(
        authorization=auth, actor=staff, studies=[quick_study(stranger, "9.9.9")], client=CLIENT
    )

    with pytest.raises(ValidationError, match="MRN-9999"):
        authorization_release(authorization=auth, actor=staff, client=CLIENT)

    auth.refresh_from_db()
    assert auth.status == ReleaseAuthorization.Status.IN_REVIEW


def test_release_needs_identity_link_and_studies(jane, staff, facility):
    auth = sign(jane, facility)

    with pytest.raises(ValidationError, match="identity"):
        authorization_release(authorization=auth, actor=staff, client=CLIENT)


def test_release_to_a_provider_shares_until_the_authorization_expires_with_link_and_code_apart(
    jane, staff, facility
):
    expires_on = timezone.localdate() + datetime.timedelta(days=20)
    auth = sign(
        jane,
        facility,
        recipient_kind=ReleaseAuthorization.Recipient.PROVIDER,
        provider_name="Dr Alan Grant",
        provider_email="grant@clinic.example",
        expires_on=expires_on,
    )
    ready_to_release(auth, staff)
    mail.outbox.clear()

    outcome = authorization_release(
        authorization=auth,
        actor=staff,
        client=CLIENT,
        link_for=lambda token: f"https://lb.example/s/{token}",
    )

    share = outcome.share
    assert share is not None
    assert outcome.code
    assert share.authorization == auth
    assert share.owner == jane
    assert share.protection == Share.Protection.CODE
    assert timezone.localtime(share.expires_at).date() == expires_on
    to_provider = [m for m in mail.outbox if m.to == ["grant@clinic.example"]]
    to_patient = [m for m in mail.outbox if m.to == ["jane@example.com"]]
    assert len(to_provider) == 1
    assert "https://lb.example/s/" in to_provider[0].body
    assert outcome.code not in to_provider[0].body
    code_mails = [m for m in to_patient if outcome.code in m.body]
    assert len(code_mails) == 1
    assert "https://lb.example/s/" not in code_mails[0].body


def test_a_provider_share_lasts_at_most_90_days(jane, staff, facility):
    auth = sign(
        jane,
        facility,
        recipient_kind=ReleaseAuthorization.Recipient.PROVIDER,
        provider_name="Dr Grant",
        provider_email="grant@clinic.example",
        expires_on=timezone.localdate() + datetime.timedelta(days=300),
    )
    ready_to_release(auth, staff)

    outcome = authorization_release(authorization=auth, actor=staff, client=CLIENT)

    assert outcome.share is not None
    assert outcome.share.expires_at <= timezone.now() + datetime.timedelta(days=90)


def test_revoking_revokes_the_shares_made_under_the_authorization(jane, staff, facility):
    auth = sign(
        jane,
        facility,
        recipient_kind=ReleaseAuthorization.Recipient.PROVIDER,
        provider_name="Dr Grant",
        provider_email="grant@clinic.example",
    )
    ready_to_release(auth, staff)
    share = authorization_release(authorization=auth, actor=staff, client=CLIENT).share
    assert share is not None

    revoked = authorization_revoke(authorization=auth, actor=jane, client=CLIENT)

    share.refresh_from_db()
    assert revoked == 1
    assert share.revoked_at is not None
    assert auth.status == ReleaseAuthorization.Status.REVOKED
    assert auth.revoked_at is not None
    event = AuditEvent.objects.get(action=AuditEvent.Action.AUTHORIZATION_REVOKE)
    assert event.detail["shares_revoked"] == 1
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SHARE_REVOKE, actor_user=jane).exists()
    with pytest.raises(ValidationError):
        authorization_release(authorization=auth, actor=staff, client=CLIENT)


def test_a_denied_request_cannot_be_revoked(jane, staff, facility):
    auth = sign(jane, facility)
    authorization_deny(authorization=auth, actor=staff, reason="No records found.", client=CLIENT)

    with pytest.raises(ValidationError):
        authorization_revoke(authorization=auth, actor=jane, client=CLIENT)


# --- Deny, hold, reply, extend -------------------------------------------------------------------


def test_deny_records_the_reason_and_notifies_without_it(jane, staff, facility):
    auth = sign(jane, facility)
    mail.outbox.clear()

    authorization_deny(
        authorization=auth, actor=staff, reason="We found no imaging records matching.", client=CLIENT
    )

    assert auth.status == ReleaseAuthorization.Status.DENIED
    assert auth.decision_reason == "We found no imaging records matching."
    assert len(mail.outbox) == 1
    assert f"#{auth.pk} was denied" in mail.outbox[0].body
    assert "imaging records" not in mail.outbox[0].body
    deny = AuditEvent.objects.get(action=AuditEvent.Action.DENY)
    assert deny.detail["reason"] == auth.decision_reason
    assert auth.events.filter(status=ReleaseAuthorization.Status.DENIED, visible_to_patient=True).exists()


def test_hold_then_reply_goes_back_to_review(jane, staff, facility):
    auth = sign(jane, facility)

    authorization_hold(authorization=auth, actor=staff, message="Please upload a photo ID.", client=CLIENT)
    assert auth.status == ReleaseAuthorization.Status.ON_HOLD
    authorization_reply(authorization=auth, actor=jane, text="Done, uploaded.", client=CLIENT)

    assert auth.status == ReleaseAuthorization.Status.IN_REVIEW
    messages = list(auth.events.filter(kind=AuthorizationEvent.Kind.MESSAGE).values_list("text", flat=True))
    assert messages == ["Please upload a photo ID.", "Done, uploaded."]


def test_the_due_date_can_be_extended_once_with_a_reason(jane, staff, facility):
    auth = sign(jane, facility)
    due = auth.due_on

    authorization_extend(authorization=auth, actor=staff, days=30, reason="Archive retrieval", client=CLIENT)

    assert auth.due_on == due + datetime.timedelta(days=30)
    assert auth.extension_reason == "Archive retrieval"
    with pytest.raises(ValidationError, match="once"):
        authorization_extend(authorization=auth, actor=staff, days=5, reason="Again", client=CLIENT)


def test_an_extension_is_bounded(jane, staff, facility):
    auth = sign(jane, facility)

    with pytest.raises(ValidationError):
        authorization_extend(authorization=auth, actor=staff, days=31, reason="Long", client=CLIENT)


def test_every_step_is_audited(jane, staff, facility):
    auth = sign(jane, facility)
    authorization_hold(authorization=auth, actor=staff, message="ID please", client=CLIENT)
    authorization_reply(authorization=auth, actor=jane, text="Sent", client=CLIENT)
    ready_to_release(auth, staff)
    authorization_extend(authorization=auth, actor=staff, days=5, reason="Busy", client=CLIENT)
    authorization_release(authorization=auth, actor=staff, client=CLIENT)

    assert actions(auth) == [
        AuditEvent.Action.AUTHORIZATION_SIGN,
        AuditEvent.Action.AUTHORIZATION_UPDATE,  # hold
        AuditEvent.Action.AUTHORIZATION_UPDATE,  # reply
        AuditEvent.Action.IDENTITY_VERIFY,
        AuditEvent.Action.PATIENT_LINK,
        AuditEvent.Action.AUTHORIZATION_UPDATE,  # attach
        AuditEvent.Action.AUTHORIZATION_UPDATE,  # extend
        AuditEvent.Action.RELEASE,
    ]


def test_patients_cannot_act_as_staff(jane, facility):
    auth = sign(jane, facility)

    with pytest.raises(ValidationError):
        authorization_deny(authorization=auth, actor=jane, reason="no", client=CLIENT)


# --- Reconciliation ------------------------------------------------------------------------------


def test_assigning_a_study_moves_it_and_keeps_the_original_demographics_in_the_audit(jane, staff):
    mine = Patient.objects.create(patient_id="MRN-1001", issuer="GENERAL", user=jane)
    upload = Patient.objects.create(
        patient_id="OUTSIDE-7", name="DOE^JANE", birth_date=datetime.date(1980, 1, 1)
    )
    study = quick_study(upload, "5.5.5", outside=True)
    assert study in studies_unreconciled(user=staff)

    study_reconcile_assign(study=study, patient=mine, actor=staff, client=CLIENT)

    study.refresh_from_db()
    assert study.patient == mine
    event = AuditEvent.objects.get(action=AuditEvent.Action.RECONCILE)
    assert event.detail["decision"] == "assigned"
    assert event.detail["original"]["patient_id"] == "OUTSIDE-7"
    assert event.detail["original"]["name"] == "DOE^JANE"
    assert event.detail["original"]["birth_date"] == "1980-01-01"
    assert study not in studies_unreconciled(user=staff)


def test_rejecting_a_study_takes_it_out_of_the_queue_until_new_images_arrive(staff):
    stranger = Patient.objects.create(patient_id="UNKNOWN-1")
    study = quick_study(stranger, "6.6.6")

    study_reconcile_reject(study=study, actor=staff, reason="Not our patient", client=CLIENT)

    assert study not in studies_unreconciled(user=staff)
    Study.objects.filter(pk=study.pk).update(last_received_at=timezone.now() + datetime.timedelta(seconds=1))
    assert study in studies_unreconciled(user=staff)
