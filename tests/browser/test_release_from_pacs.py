"""Release requests against a real PACS, in real browsers: records staff verify the patient, search
Orthanc, retrieve the study into Lightbox by C-MOVE and release it, and the patient finds it in
their library; then a provider's share made under an authorization stops when the patient revokes
the authorization."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from sharing.dicom.synthetic import SyntheticPatient, ct_series, write_study
from sharing.models import AuditEvent, PacsNode, ReleaseAuthorization, Share, Study, User
from sharing.services.shares import share_create
from tests.support.browser import staff_context, with_verified_email
from tests.support.factories import PASSWORD, records_staff
from tests.support.network import free_port
from tests.support.orthanc import Orthanc, running_orthanc
from tests.support.pacs import authorization

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MARY = SyntheticPatient(patient_id="PACS-1001", issuer="HOSP", name="DOE^JANE", birth_date="19800101")


@pytest.fixture
def pacs(tmp_path, scp) -> Iterator[tuple[Orthanc, str]]:
    """Orthanc holding one CT of the patient, knowing this test's SCP as the move destination."""
    ct = ct_series(MARY, slices=4, size=32, study_date="20260115", description="CT FROM THE PACS")
    modalities = {"lightbox": (scp.ae_title, scp.host, scp.port)}
    with running_orthanc(
        tmp_path / "orthanc", http_port=free_port(), dicom_port=free_port(), modalities=modalities
    ) as running:
        running.upload_all(write_study(ct, tmp_path / "pacs-study"))
        yield running, str(ct[0].StudyInstanceUID)


def test_staff_retrieve_from_the_pacs_and_release_to_the_patient(
    new_context, live_server, watch, login, pacs
):
    orthanc, study_uid = pacs
    node = PacsNode.objects.create(
        name="Main PACS", ae_title=orthanc.ae_title, host="127.0.0.1", port=orthanc.dicom_port
    )
    mary = with_verified_email(User.objects.create_user("jane@example.com", PASSWORD))
    request = authorization(mary, node)
    staff = records_staff()

    page = staff_context(new_context, live_server, staff).new_page()
    watcher = watch(page)
    page.goto(reverse("workspace-request", args=[request.pk]))
    page.get_by_label("How was the identity verified?").select_option(label="Photo ID checked")
    page.get_by_role("button", name="Mark identity verified").click()
    page.get_by_label("Patient ID at the facility").fill("PACS-1001")
    page.get_by_role("button", name="Link the account to this patient ID").click()
    expect(page.locator(".messages")).to_contain_text("their studies now show in their library")

    page.get_by_role("link", name="Search PACS").click()
    page.get_by_label("Patient ID (MRN)").fill("PACS-1001")
    page.get_by_role("button", name="Search", exact=True).click()
    row = page.locator("tr", has_text="CT FROM THE PACS")
    expect(row).to_be_visible()
    row.get_by_role("button", name="Retrieve").click()
    expect(page.locator("#retrieval-status")).to_have_text(re.compile("Retrieved"), timeout=30_000)
    assert Study.objects.filter(study_instance_uid=study_uid).exists()

    page.goto(reverse("workspace-request", args=[request.pk]))
    expect(page.locator("main")).to_contain_text("CT FROM THE PACS")
    page.get_by_label("I release the attached studies").check()
    page.get_by_role("button", name="Release", exact=True).click()
    expect(page.locator("h1")).to_contain_text("released")
    watcher.assert_clean()

    patient_page = new_context().new_page()
    login(patient_page, "jane@example.com")
    patient_page.goto(reverse("home"))
    expect(patient_page.get_by_role("link", name="CT FROM THE PACS")).to_be_visible()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PACS_RETRIEVE).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.RELEASE).exists()


def test_revoking_the_authorization_stops_the_providers_share(new_context, login, tmp_path, patient, jane):
    from tests.support.factories import make_study

    with_verified_email(jane)
    study = make_study(tmp_path, patient, "jane")
    request = authorization(jane)
    ReleaseAuthorization.objects.filter(pk=request.pk).update(
        recipient_kind=ReleaseAuthorization.Recipient.PROVIDER,
        provider_name="Dr Provider",
        provider_email="provider@example.org",
        status=ReleaseAuthorization.Status.FULFILLED,
    )
    created = share_create(
        owner=jane,
        studies=[study],
        expires_at=timezone.now() + datetime.timedelta(days=30),
        protection=Share.Protection.CODE,
        allow_download=True,
        authorization=ReleaseAuthorization.objects.get(pk=request.pk),
    )
    provider = new_context().new_page()
    provider.goto(f"/s/{created.token}")
    provider.get_by_label("Access code").fill(created.code)
    provider.get_by_role("button", name="View the images").click()
    expect(provider.get_by_role("heading", name="Images shared with you")).to_be_visible()

    patient_page = new_context().new_page()
    login(patient_page, jane.email)
    patient_page.goto(reverse("request-detail", args=[request.pk]))
    patient_page.get_by_role("link", name=re.compile("Revoke")).first.click()
    patient_page.get_by_label(re.compile("Yes, revoke this authorization")).check()
    patient_page.get_by_role("button", name="Revoke", exact=True).click()
    expect(patient_page.locator("h1")).to_contain_text("Revoked")

    provider.reload()
    expect(provider.get_by_role("heading", name="This link no longer works")).to_be_visible()
    assert Share.objects.get(pk=created.share.pk).revoked_at is not None
