from __future__ import annotations

import base64
import datetime
import io
from http import HTTPStatus

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from sharing.models import AuditEvent, Facility, ReleaseAuthorization
from sharing.services.audit import NO_CLIENT
from sharing.storage import get_store
from tests.support.headers import assert_strict
from tests.support.releases import make_facility, sign, signature_data_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def facility() -> Facility:
    return make_facility()


def form_data(facility_: Facility, **extra: object) -> dict[str, object]:
    data: dict[str, object] = {
        "legal_name": "Jane Doe",
        "birth_date": "1980-01-01",
        "contact_email": "jane@example.com",
        "facility": str(facility_.pk),
        "scope_kind": "exams",
        "exams": "CT chest, January 2026",
        "content": "both",
        "recipient_kind": "patient",
        "purpose": "Personal records",
        "expires_on": (timezone.localdate() + datetime.timedelta(days=180)).isoformat(),
        "ack_revoke": "on",
        "ack_not_conditioned": "on",
        "ack_redisclosure": "on",
        "signature": signature_data_url(),
        "typed_signature": "jane doe",
    }
    data.update(extra)
    return {k: v for k, v in data.items() if v is not None}


def png_data_url(image: Image.Image) -> str:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def errors_of(response) -> dict[str, list[str]]:
    return {name: list(errors) for name, errors in response.context["form"].errors.items()}


def test_the_form_page_is_strict_and_labels_every_field(client, jane, facility):
    client.force_login(jane)

    response = client.get(reverse("request-new"))

    assert response.status_code == HTTPStatus.OK
    assert_strict(response)
    html = response.content.decode()
    assert "js/signature.js" in html
    assert facility.records_contact in html
    form = response.context["form"]
    for name, field in form.fields.items():
        if name != "signature":
            assert f'for="id_{name}' in html or "<legend" in html, name
            assert field.label


def test_a_patient_signs_and_lands_on_the_request(client, jane, facility):
    client.force_login(jane)

    response = client.post(reverse("request-new"), form_data(facility))

    auth = ReleaseAuthorization.objects.get()
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("request-detail", args=[auth.pk])
    assert auth.requester == jane
    assert auth.typed_signature == "jane doe"
    assert auth.pdf_sha256
    assert str(auth.signed_from) == "127.0.0.1"
    page = client.get(response["Location"])
    assert page.status_code == HTTPStatus.OK
    assert_strict(page)
    assert b"Submitted" in page.content


def test_the_identity_document_is_checked_by_its_bytes(client, jane, facility):
    client.force_login(jane)
    fake = SimpleUploadedFile("id.jpg", b"MZ\x90\x00 not an image", content_type="image/jpeg")

    response = client.post(reverse("request-new"), {**form_data(facility), "id_document": fake})

    assert response.status_code == HTTPStatus.OK
    assert "id_document" in errors_of(response)
    pdf = SimpleUploadedFile("id.txt", b"%PDF-1.4\n%fake but typed by magic\n", content_type="text/plain")
    response = client.post(reverse("request-new"), {**form_data(facility), "id_document": pdf})
    assert response.status_code == HTTPStatus.FOUND
    auth = ReleaseAuthorization.objects.get()
    assert auth.id_document_type == "application/pdf"
    with get_store().open(auth.id_document_key) as handle:
        assert handle.read().startswith(b"%PDF-1.4")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ack_revoke": None}, "ack_revoke"),
        ({"ack_redisclosure": None}, "ack_redisclosure"),
        ({"signature": ""}, "signature"),
        ({"signature": "data:image/png;base64,!!!notbase64"}, "signature"),
        ({"signature": "data:image/png;base64," + base64.b64encode(b"GIF89a....").decode()}, "signature"),
        ({"signature": "data:image/jpeg;base64,/9j/4AAQ"}, "signature"),
        ({"signature": png_data_url(Image.new("RGBA", (600, 200), (0, 0, 0, 0)))}, "signature"),
        ({"signature": png_data_url(Image.new("RGB", (600, 200), "white"))}, "signature"),
        ({"signature": png_data_url(Image.new("RGB", (4000, 10), "black"))}, "signature"),
        ({"typed_signature": "John Smith"}, "typed_signature"),
        ({"expires_on": "2001-01-01"}, "expires_on"),
        ({"expires_on": "", "expiry_event": ""}, "expires_on"),
        ({"recipient_kind": "provider", "provider_name": "Dr Grant", "provider_email": ""}, "provider_email"),
        ({"recipient_kind": "provider", "provider_email": "a@b.example"}, "provider_name"),
        ({"scope_kind": "exams", "exams": ""}, "exams"),
        ({"scope_kind": "date_range", "date_from": "2026-02-01", "date_to": "2026-01-01"}, "date_to"),
        ({"birth_date": "2999-01-01"}, "birth_date"),
        (
            {"is_representative": "on", "representative_name": "", "representative_authority": ""},
            "representative_name",
        ),
        ({"facility": "999999"}, "facility"),
    ],
)
def test_the_form_shows_each_error_on_its_field(client, jane, facility, change, field):
    client.force_login(jane)

    response = client.post(reverse("request-new"), form_data(facility, **change))

    assert response.status_code == HTTPStatus.OK
    assert field in errors_of(response), errors_of(response)
    assert not ReleaseAuthorization.objects.exists()
    assert_strict(response)


def test_an_oversized_signature_is_refused(client, jane, facility):
    client.force_login(jane)

    response = client.post(
        reverse("request-new"), form_data(facility, signature="data:image/png;base64," + "A" * 600_000)
    )

    assert "signature" in errors_of(response)


def test_a_representative_may_sign_in_their_own_name(client, jane, facility):
    client.force_login(jane)
    data = form_data(
        facility,
        is_representative="on",
        representative_name="Mary Doe",
        representative_authority="Mother of a minor",
        typed_signature="MARY  DOE",
    )

    response = client.post(reverse("request-new"), data)

    assert response.status_code == HTTPStatus.FOUND
    auth = ReleaseAuthorization.objects.get()
    assert (auth.representative_name, auth.representative_authority) == ("Mary Doe", "Mother of a minor")


def test_a_provider_request_keeps_the_provider(client, jane, facility):
    client.force_login(jane)
    data = form_data(
        facility,
        recipient_kind="provider",
        provider_name="Dr Alan Grant",
        provider_organisation="Clinic",
        provider_email="grant@clinic.example",
        scope_kind="date_range",
        date_from="2025-01-01",
        modalities=["CT", "MR"],
    )

    assert client.post(reverse("request-new"), data).status_code == HTTPStatus.FOUND

    auth = ReleaseAuthorization.objects.get()
    assert (auth.provider_email, auth.modalities, auth.exams) == ("grant@clinic.example", "CT,MR", "")


def test_another_patients_request_is_not_found(client, jane, john, facility):
    auth = sign(jane, facility)
    client.force_login(john)

    for name in ("request-detail", "request-pdf", "request-revoke"):
        assert client.get(reverse(name, args=[auth.pk])).status_code == HTTPStatus.NOT_FOUND
    assert (
        client.post(reverse("request-reply", args=[auth.pk]), {"text": "hi"}).status_code
        == HTTPStatus.NOT_FOUND
    )
    assert client.post(reverse("request-revoke", args=[auth.pk]), {"confirm": "on"}).status_code == 404
    auth.refresh_from_db()
    assert auth.status == ReleaseAuthorization.Status.SUBMITTED
    assert list(client.get(reverse("request-list")).context["authorizations"]) == []


def test_anonymous_visitors_are_sent_to_sign_in(client, jane, facility):
    auth = sign(jane, facility)

    for url in [
        reverse("request-list"),
        reverse("request-new"),
        reverse("request-detail", args=[auth.pk]),
        reverse("request-pdf", args=[auth.pk]),
    ]:
        response = client.get(url)
        assert response.status_code == HTTPStatus.FOUND
        assert response["Location"].startswith(reverse("account_login"))


def test_the_patient_downloads_their_signed_pdf_and_it_is_audited(client, jane, facility):
    auth = sign(jane, facility)
    client.force_login(jane)

    response = client.get(reverse("request-pdf", args=[auth.pk]))

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "application/pdf"
    assert response["Cache-Control"] == "private, no-store"
    assert response.content.startswith(b"%PDF-")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD, actor_user=jane).exists()


def test_revoking_needs_confirmation(client, jane, facility):
    auth = sign(jane, facility)
    client.force_login(jane)

    page = client.get(reverse("request-revoke", args=[auth.pk]))
    assert page.status_code == HTTPStatus.OK
    assert_strict(page)
    client.post(reverse("request-revoke", args=[auth.pk]), {})
    auth.refresh_from_db()
    assert auth.status == ReleaseAuthorization.Status.SUBMITTED

    response = client.post(reverse("request-revoke", args=[auth.pk]), {"confirm": "on"})

    assert response.status_code == HTTPStatus.FOUND
    auth.refresh_from_db()
    assert auth.status == ReleaseAuthorization.Status.REVOKED


def test_the_patient_sees_messages_but_not_staff_notes(client, jane, staff, facility):
    from sharing.services.releases import authorization_hold, authorization_note

    auth = sign(jane, facility)
    authorization_note(authorization=auth, actor=staff, text="SECRET internal note", client=NO_CLIENT)
    authorization_hold(authorization=auth, actor=staff, message="Please add your photo ID.", client=NO_CLIENT)
    client.force_login(jane)

    page = client.get(reverse("request-detail", args=[auth.pk]))

    assert b"Please add your photo ID." in page.content
    assert b"SECRET" not in page.content
    assert b"records@example.com" not in page.content


def test_replying_while_on_hold_puts_the_request_back_in_review(client, jane, staff, facility):
    from sharing.services.releases import authorization_hold

    auth = sign(jane, facility)
    authorization_hold(authorization=auth, actor=staff, message="ID please", client=NO_CLIENT)
    client.force_login(jane)

    response = client.post(reverse("request-reply", args=[auth.pk]), {"text": "Uploaded it."})

    assert response.status_code == HTTPStatus.FOUND
    auth.refresh_from_db()
    assert auth.status == ReleaseAuthorization.Status.IN_REVIEW


def test_the_patient_adds_an_identity_document_later(client, jane, facility):
    auth = sign(jane, facility)
    client.force_login(jane)
    out = io.BytesIO()
    Image.new("RGB", (20, 20), "gray").save(out, format="JPEG")
    upload = SimpleUploadedFile("passport.png", out.getvalue(), content_type="image/png")

    response = client.post(reverse("request-id-document", args=[auth.pk]), {"id_document": upload})

    assert response.status_code == HTTPStatus.FOUND
    auth.refresh_from_db()
    assert auth.id_document_type == "image/jpeg"  # from the bytes, not the name or the header


def test_an_oversized_identity_document_is_refused(client, jane, facility, settings):
    auth = sign(jane, facility)
    client.force_login(jane)
    big = SimpleUploadedFile("big.pdf", b"%PDF-" + b"0" * (10 * 1024 * 1024), content_type="application/pdf")

    response = client.post(reverse("request-id-document", args=[auth.pk]), {"id_document": big})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    auth.refresh_from_db()
    assert auth.id_document_key == ""
