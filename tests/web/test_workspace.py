from __future__ import annotations

import datetime
import io
from http import HTTPStatus

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from sharing.models import (
    AuditEvent,
    DenialTemplate,
    Facility,
    Patient,
    ReleaseAuthorization,
    Share,
    Study,
    User,
)
from sharing.selectors.releases import DEFAULT_DENIAL_REASONS
from sharing.services.audit import NO_CLIENT
from sharing.services.releases import IdentityDocument, authorization_id_document_attach, identity_verify
from tests.support.factories import PASSWORD
from tests.support.headers import assert_strict
from tests.support.releases import make_facility, quick_study, sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def facility() -> Facility:
    return make_facility()


@pytest.fixture
def mary() -> User:
    """A patient with no linked record yet: her request is what links her."""
    return User.objects.create_user("mary@example.com", PASSWORD)


@pytest.fixture
def request_(mary, facility) -> ReleaseAuthorization:
    return sign(mary, facility, legal_name="Mary Major", typed_signature="Mary Major")


def as_staff(client, staff) -> None:
    client.force_login(staff)


def url(name: str, auth: ReleaseAuthorization) -> str:
    return reverse(name, args=[auth.pk])


def set_received(auth: ReleaseAuthorization, days_ago: int) -> None:
    received = timezone.now() - datetime.timedelta(days=days_ago)
    ReleaseAuthorization.objects.filter(pk=auth.pk).update(
        received_at=received, due_on=timezone.localdate(received) + datetime.timedelta(days=30)
    )


# --- Access --------------------------------------------------------------------------------------

WORKSPACE_GETS = ["workspace-request", "workspace-pdf", "workspace-id-document"]
WORKSPACE_POSTS = [
    "workspace-assign",
    "workspace-verify",
    "workspace-link",
    "workspace-attach",
    "workspace-note",
    "workspace-hold",
    "workspace-extend",
    "workspace-deny",
    "workspace-release",
]


def test_patients_never_reach_the_workspace(client, mary, request_):
    client.force_login(mary)

    assert client.get(reverse("workspace-queue")).status_code == HTTPStatus.FORBIDDEN
    for name in WORKSPACE_GETS:
        assert client.get(url(name, request_)).status_code == HTTPStatus.FORBIDDEN
    for name in WORKSPACE_POSTS:
        assert client.post(url(name, request_), {"confirm": "on"}).status_code == HTTPStatus.FORBIDDEN
    study = quick_study(Patient.objects.create(patient_id="X"), "7.7.7")
    assert client.get(reverse("reconcile-study", args=[study.pk])).status_code == HTTPStatus.FORBIDDEN
    assert client.post(reverse("reconcile-reject", args=[study.pk]), {"reason": "x"}).status_code == 403
    request_.refresh_from_db()
    assert request_.status == ReleaseAuthorization.Status.SUBMITTED


def test_anonymous_visitors_are_sent_to_sign_in(client, request_):
    response = client.get(reverse("workspace-queue"))

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))


def test_staff_without_two_factor_are_stopped(client, request_):
    no_mfa = User.objects.create_user("new@example.com", PASSWORD, role=User.Role.RECORDS)
    client.force_login(no_mfa)

    for path in [
        reverse("workspace-queue"),
        url("workspace-request", request_),
        url("workspace-pdf", request_),
    ]:
        response = client.get(path)
        assert response.status_code == HTTPStatus.FOUND
        assert response["Location"] == reverse("mfa_activate_totp")
    response = client.post(url("workspace-deny", request_), {"reason": "x"})
    assert response["Location"] == reverse("mfa_activate_totp")
    request_.refresh_from_db()
    assert request_.status == ReleaseAuthorization.Status.SUBMITTED


# --- The queue -----------------------------------------------------------------------------------


@pytest.fixture
def queue(mary, staff, facility):
    other_facility = make_facility(name="Clinic North", issuer="NORTH")
    late = sign(mary, facility)
    set_received(late, 40)  # due ten days ago
    mine = sign(mary, other_facility)
    set_received(mine, 5)
    ReleaseAuthorization.objects.filter(pk=mine.pk).update(assignee=staff)
    done = sign(mary, facility)
    set_received(done, 50)
    ReleaseAuthorization.objects.filter(pk=done.pk).update(status=ReleaseAuthorization.Status.FULFILLED)
    fresh = sign(mary, facility)
    return {"late": late, "mine": mine, "done": done, "fresh": fresh, "north": other_facility}


def shown(response) -> list[ReleaseAuthorization]:
    return list(response.context["page"].object_list)


def test_the_queue_shows_open_requests_soonest_due_first_and_flags_the_overdue(client, staff, queue):
    as_staff(client, staff)

    response = client.get(reverse("workspace-queue"))

    assert response.status_code == HTTPStatus.OK
    assert_strict(response)
    assert response["Cache-Control"] == "private, no-store"
    assert shown(response) == [queue["late"], queue["mine"], queue["fresh"]]
    assert response.content.count(b'class="overdue"') == 1
    assert b"Overdue" in response.content


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": ""}, ["done", "late", "mine", "fresh"]),
        ({"status": "fulfilled"}, ["done"]),
        ({"assignee": "mine"}, ["mine"]),
        ({"assignee": "unassigned"}, ["late", "fresh"]),
        ({"overdue": "on"}, ["late"]),
        ({"sort": "-received"}, ["fresh", "mine", "late"]),
        ({"sort": "received", "status": ""}, ["done", "late", "mine", "fresh"]),
    ],
)
def test_the_queue_filters_and_sorts(client, staff, queue, params, expected):
    as_staff(client, staff)

    response = client.get(reverse("workspace-queue"), params)

    assert shown(response) == [queue[name] for name in expected]


def test_the_queue_filters_by_facility(client, staff, queue):
    as_staff(client, staff)

    response = client.get(reverse("workspace-queue"), {"facility": queue["north"].pk})

    assert shown(response) == [queue["mine"]]


def test_the_queue_costs_the_same_queries_whatever_its_length(client, staff, mary, facility):
    as_staff(client, staff)
    sign(mary, facility)
    client.get(reverse("home"))
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("workspace-queue"))
    for _ in range(5):
        ReleaseAuthorization.objects.filter(pk=sign(mary, facility).pk).update(assignee=staff)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("workspace-queue"))

    assert len(many) == len(few)


# --- A request -----------------------------------------------------------------------------------


def test_the_request_page_shows_the_authorization_and_is_audited(client, staff, request_):
    as_staff(client, staff)

    response = client.get(url("workspace-request", request_))

    assert response.status_code == HTTPStatus.OK
    assert_strict(response)
    assert response["Cache-Control"] == "private, no-store"
    assert b"Mary Major" in response.content
    assert request_.pdf_sha256.encode() in response.content
    assert b'href="/staff/pacs/?request=' in response.content
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.VIEW, actor_user=staff, detail__authorization=request_.pk
    ).exists()


def test_staff_download_the_signed_pdf_and_the_identity_document(client, staff, mary, request_):
    out = io.BytesIO()
    Image.new("RGB", (10, 10), "gray").save(out, format="PNG")
    authorization_id_document_attach(
        authorization=request_,
        actor=mary,
        document=IdentityDocument(data=out.getvalue(), content_type="image/png"),
        client=NO_CLIENT,
    )
    as_staff(client, staff)

    pdf = client.get(url("workspace-pdf", request_))
    document = client.get(url("workspace-id-document", request_))

    assert pdf.status_code == document.status_code == HTTPStatus.OK
    assert pdf["Content-Disposition"].startswith("inline")
    assert document["Content-Disposition"].startswith("attachment")
    assert document["Content-Type"] == "image/png"
    assert document.content == out.getvalue()
    for response in (pdf, document):
        assert response["Cache-Control"] == "private, no-store"
    downloads = AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD, actor_user=staff)
    assert sorted(e.detail["document"] for e in downloads) == ["authorization pdf", "identity document"]


def test_staff_verify_identity_with_a_method(client, staff, request_):
    as_staff(client, staff)

    refused = client.post(url("workspace-verify", request_), {"method": "other", "note": ""})
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert "note" in refused.context["verify_form"].errors

    response = client.post(url("workspace-verify", request_), {"method": "photo_id", "note": "Passport"})

    assert response.status_code == HTTPStatus.FOUND
    request_.refresh_from_db()
    assert request_.identity_verified_by == staff
    assert request_.identity_method == "Photo ID checked (Passport)"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.IDENTITY_VERIFY).exists()


def test_staff_link_the_account_and_its_studies_appear_in_the_library(client, staff, mary, request_):
    existing = Patient.objects.create(patient_id="MRN-3003", issuer="GENERAL", name="MAJOR^MARY")
    study = quick_study(existing, "3.3.3")
    identity_verify(authorization=request_, actor=staff, method="In person", client=NO_CLIENT)
    as_staff(client, staff)

    response = client.post(url("workspace-link", request_), {"patient_id": "MRN-3003"})

    assert response.status_code == HTTPStatus.FOUND
    existing.refresh_from_db()
    assert existing.user == mary
    client.force_login(mary)
    assert study in list(client.get(reverse("home")).context["studies"])


def test_linking_a_patient_of_another_account_is_refused_on_the_page(client, staff, jane, request_):
    identity_verify(authorization=request_, actor=staff, method="In person", client=NO_CLIENT)
    as_staff(client, staff)

    response = client.post(url("workspace-link", request_), {"patient_id": "MRN-1001"})  # jane's

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "another account" in str(response.context["link_form"].non_field_errors())
    assert Patient.objects.get(patient_id="MRN-1001").user == jane


def test_staff_search_local_studies_and_attach_them(client, staff, request_):
    patient = Patient.objects.create(
        patient_id="MRN-3003", issuer="GENERAL", name="MAJOR^MARY", birth_date=datetime.date(1980, 1, 1)
    )
    wanted = quick_study(patient, "3.3.1", study_date="2026-01-10")
    older = quick_study(patient, "3.3.2", study_date="2020-01-10")
    quick_study(Patient.objects.create(patient_id="OTHER", name="SOMEONE^ELSE"), "4.4.4")
    as_staff(client, staff)

    response = client.get(url("workspace-request", request_), {"name": "major", "date_from": "2025-01-01"})

    assert [study for study, _ in response.context["results"]] == [wanted]
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.QUERY, detail__authorization=request_.pk
    ).exists()
    by_birth = client.get(url("workspace-request", request_), {"birth_date": "1980-01-01"})
    assert {s for s, _ in by_birth.context["results"]} == {wanted, older}

    attach = client.post(url("workspace-attach", request_), {"studies": [wanted.pk]})

    assert attach.status_code == HTTPStatus.FOUND
    assert list(request_.studies.all()) == [wanted]
    page = client.get(url("workspace-request", request_))
    assert b"not this account" in page.content  # attached, but the patient is not linked yet


def test_retrievals_attached_to_the_request_are_listed(client, staff, request_):
    from sharing.models import PacsNode, RetrieveJob

    pacs = PacsNode.objects.create(name="Main PACS", ae_title="PACS", host="pacs.example", port=104)
    RetrieveJob.objects.create(
        pacs=pacs,
        authorization=request_,
        study_instance_uid="1.2.840.99",
        requested_by=staff,
        status=RetrieveJob.Status.RUNNING,
        completed=3,
        remaining=7,
        created_at=timezone.now(),
    )
    as_staff(client, staff)

    response = client.get(url("workspace-request", request_))

    assert b"1.2.840.99" in response.content
    assert b"Retrieving" in response.content


def prepare(request_: ReleaseAuthorization, staff: User, client) -> Study:
    """Verified, linked, with one of the requester's studies attached: ready to decide."""
    as_staff(client, staff)
    client.post(url("workspace-verify", request_), {"method": "photo_id"})
    client.post(url("workspace-link", request_), {"patient_id": "MRN-3003"})
    request_.refresh_from_db()
    assert request_.patient is not None
    study = quick_study(request_.patient, "3.3.3")
    client.post(url("workspace-attach", request_), {"studies": [study.pk]})
    return study


def test_releasing_to_the_patient_puts_the_study_in_their_library(client, staff, mary, request_):
    study = prepare(request_, staff, client)

    response = client.post(url("workspace-release", request_), {"confirm": "on"})

    assert response.status_code == HTTPStatus.OK
    assert_strict(response)
    request_.refresh_from_db()
    assert request_.status == ReleaseAuthorization.Status.FULFILLED
    client.force_login(mary)
    assert study in list(client.get(reverse("home")).context["studies"])
    detail = client.get(reverse("request-detail", args=[request_.pk]))
    assert b"Fulfilled" in detail.content


def test_releasing_needs_the_confirmation_box(client, staff, request_):
    prepare(request_, staff, client)

    response = client.post(url("workspace-release", request_), {})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    request_.refresh_from_db()
    assert request_.status == ReleaseAuthorization.Status.IN_REVIEW


def test_releasing_without_a_link_explains_why(client, staff, request_):
    as_staff(client, staff)

    response = client.post(url("workspace-release", request_), {"confirm": "on"})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "Verify" in str(response.context["release_form"].non_field_errors())


@pytest.mark.django_db(transaction=True)
def test_releasing_to_a_provider_shows_the_code_once_and_mails_link_and_code_apart(client, mary, facility):
    from tests.support.factories import records_staff

    staff = records_staff()
    auth = sign(
        mary,
        facility,
        legal_name="Mary Major",
        typed_signature="Mary Major",
        recipient_kind=ReleaseAuthorization.Recipient.PROVIDER,
        provider_name="Dr Grant",
        provider_email="grant@clinic.example",
    )
    prepare(auth, staff, client)
    mail.outbox.clear()

    response = client.post(url("workspace-release", auth), {"confirm": "on"})

    assert response.status_code == HTTPStatus.OK
    assert response["Cache-Control"] == "private, no-store"
    share = Share.objects.get(authorization=auth)
    code = response.context["outcome"].code
    assert code
    assert code.encode() in response.content
    link_mail = next(m for m in mail.outbox if m.to == ["grant@clinic.example"])
    assert "http://testserver/s/" in link_mail.body
    assert code not in link_mail.body
    assert any(code in m.body and m.to == ["mary@example.com"] for m in mail.outbox)
    assert share.recipient_email == "grant@clinic.example"
    # The request page never shows the code again.
    assert code.encode() not in client.get(url("workspace-request", auth)).content


def test_denying_with_a_default_template(client, staff, request_):
    assert not DenialTemplate.objects.exists()
    as_staff(client, staff)
    title, text = DEFAULT_DENIAL_REASONS[1]

    response = client.post(url("workspace-deny", request_), {"template": title, "reason": ""})

    assert response.status_code == HTTPStatus.FOUND
    request_.refresh_from_db()
    assert request_.status == ReleaseAuthorization.Status.DENIED
    assert request_.decision_reason == text


def test_denying_offers_the_admins_templates_and_needs_a_reason(client, staff, request_):
    DenialTemplate.objects.create(title="Duplicate", text="This duplicates request #1.")
    as_staff(client, staff)

    page = client.get(url("workspace-request", request_))
    assert b"Duplicate" in page.content
    assert DEFAULT_DENIAL_REASONS[0][0].encode() not in page.content
    refused = client.post(url("workspace-deny", request_), {"template": "", "reason": " "})
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    client.post(url("workspace-deny", request_), {"template": "Duplicate", "reason": "Edited reason."})

    request_.refresh_from_db()
    assert request_.decision_reason == "Edited reason."


def test_hold_assign_note_and_extend(client, staff, request_):
    as_staff(client, staff)

    client.post(url("workspace-assign", request_), {"assignee": "me"})
    client.post(url("workspace-note", request_), {"text": "Called the patient."})
    client.post(url("workspace-hold", request_), {"message": "Please upload your photo ID."})
    extended = client.post(url("workspace-extend", request_), {"days": "30", "reason": "Archive retrieval"})
    again = client.post(url("workspace-extend", request_), {"days": "5", "reason": "More"})
    too_long = client.post(url("workspace-extend", request_), {"days": "99", "reason": "x"})

    request_.refresh_from_db()
    assert request_.assignee == staff
    assert request_.status == ReleaseAuthorization.Status.ON_HOLD
    assert extended.status_code == HTTPStatus.FOUND
    assert again.status_code == too_long.status_code == HTTPStatus.BAD_REQUEST
    assert request_.extension_reason == "Archive retrieval"
    page = client.get(url("workspace-request", request_))
    assert b"Called the patient." in page.content


def test_a_decided_request_takes_no_more_actions(client, staff, request_):
    as_staff(client, staff)
    client.post(url("workspace-deny", request_), {"reason": "No records."})

    response = client.post(url("workspace-hold", request_), {"message": "Hello"})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    request_.refresh_from_db()
    assert request_.status == ReleaseAuthorization.Status.DENIED


# --- Reconciliation ------------------------------------------------------------------------------


@pytest.fixture
def outside_study(jane) -> Study:
    upload = Patient.objects.create(
        patient_id="CD-0042", name="DOE^JANE^M", birth_date=datetime.date(1980, 1, 1), sex="F"
    )
    return quick_study(upload, "8.8.8", outside=True)


def test_the_unmatched_list_links_to_reconciliation(client, staff, outside_study):
    as_staff(client, staff)

    response = client.get(reverse("unmatched-studies"))

    assert reverse("reconcile-study", args=[outside_study.pk]).encode() in response.content


def test_staff_compare_and_assign_a_study_to_a_patient(client, staff, jane, outside_study):
    janes = Patient.objects.get(patient_id="MRN-1001")
    as_staff(client, staff)

    page = client.get(reverse("reconcile-study", args=[outside_study.pk]), {"q": "jane@example.com"})
    assert page.status_code == HTTPStatus.OK
    assert_strict(page)
    assert page.context["candidates"] == [janes]
    compare = client.get(reverse("reconcile-study", args=[outside_study.pk]), {"patient": janes.pk})
    assert b"CD-0042" in compare.content
    assert b"MRN-1001" in compare.content

    response = client.post(reverse("reconcile-assign", args=[outside_study.pk]), {"patient": janes.pk})

    assert response.status_code == HTTPStatus.FOUND
    outside_study.refresh_from_db()
    assert outside_study.patient == janes
    event = AuditEvent.objects.get(action=AuditEvent.Action.RECONCILE)
    assert event.detail["original"]["patient_id"] == "CD-0042"
    assert outside_study not in client.get(reverse("unmatched-studies")).context["page"].object_list
    client.force_login(jane)
    assert outside_study in list(client.get(reverse("home")).context["studies"])


def test_staff_reject_a_study_with_a_reason(client, staff, outside_study):
    as_staff(client, staff)

    refused = client.post(reverse("reconcile-reject", args=[outside_study.pk]), {"reason": ""})
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    response = client.post(
        reverse("reconcile-reject", args=[outside_study.pk]), {"reason": "Not our patient"}
    )

    assert response.status_code == HTTPStatus.FOUND
    assert outside_study not in client.get(reverse("unmatched-studies")).context["page"].object_list
    event = AuditEvent.objects.get(action=AuditEvent.Action.RECONCILE)
    assert event.detail == {
        "decision": "rejected",
        "study": outside_study.pk,
        "reason": "Not our patient",
        "original": {
            "patient_id": "CD-0042",
            "issuer": "",
            "name": "DOE^JANE^M",
            "birth_date": "1980-01-01",
            "sex": "F",
        },
    }
