"""A share link end to end in real browsers: the patient creates coded shares; a recipient in a
fresh browser fails the code until the lock, opens another share with the right code, sees the
first image with no token in the URL, can or cannot download as set; the patient revokes and the
recipient's next frame request answers 410."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from http import HTTPStatus

import pytest
from django.urls import reverse
from playwright.sync_api import BrowserContext, Page, expect

from sharing.dicom.synthetic import SyntheticPatient, ct_series, write_study
from sharing.models import AuditEvent, Share, Study, User
from tests.support.browser import PageWatch, with_verified_email
from tests.support.factories import ingest, patient_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLICES = 12


@pytest.fixture
def jane() -> User:
    return with_verified_email(patient_user("jane@example.com", "MRN-1001"))


@pytest.fixture
def study(tmp_path, patient: SyntheticPatient, jane: User) -> Study:
    ct = ct_series(patient, slices=SLICES, size=128, description="CT CHEST SHARED")
    ingest(write_study(ct, tmp_path / "ct"))
    return Study.objects.get(study_instance_uid=str(ct[0].StudyInstanceUID))


def create_share(page: Page, study: Study, *, download: bool) -> tuple[str, str]:
    """Through the patient's form; returns the link and the code shown once."""
    page.goto(f"{reverse('share-create')}?study={study.study_instance_uid}")
    page.get_by_label("24 hours").check()
    page.get_by_label(re.compile("An access code")).check()
    download_box = page.get_by_label("Let the recipient download the images")
    if download:
        download_box.check()
    else:
        download_box.uncheck()
    page.get_by_role("button", name="Create the link").click()
    expect(page.get_by_role("heading", name="Your share link is ready")).to_be_visible()
    qr = page.get_by_role("img", name="QR code of the link")
    assert qr.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0, "the QR code is drawn"
    link = page.locator("#share-link").input_value()
    code = page.locator("#share-code").input_value()
    assert re.fullmatch(r"http://[^/]+/s/[A-Za-z0-9_-]{32}", link)
    return link, code


def enter(page: Page, code: str) -> None:
    page.get_by_label("Access code").fill(code)
    page.get_by_role("button", name="View the images").click()


def test_a_recipient_opens_a_coded_share_and_loses_it_when_revoked(
    new_context: Callable[..., BrowserContext],
    watch: Callable[[Page], PageWatch],
    login,
    viewer_bundle,
    study: Study,
    settings,
    caplog,
):
    caplog.set_level(logging.DEBUG)  # every logger, every thread (the live server's too)
    settings.LIGHTBOX_SHARE_MAX_FAILURES = 3
    patient_page = new_context().new_page()
    login(patient_page, "jane@example.com")
    locked_link, _locked_code = create_share(patient_page, study, download=False)
    link, code = create_share(patient_page, study, download=False)
    download_link, download_code = create_share(patient_page, study, download=True)

    # The recipient guesses until the first share locks.
    recipient = new_context().new_page()
    recipient.goto(locked_link)
    for _ in range(2):
        enter(recipient, "WRONG-CODE0")
        expect(recipient.get_by_role("alert")).to_contain_text("not right")
    enter(recipient, "WRONG-CODE0")
    expect(recipient.get_by_role("heading", name="This link no longer works")).to_be_visible()
    expect(recipient.locator("main")).to_contain_text("locked")
    assert "CT CHEST SHARED" not in recipient.content()

    # The right code on the second share: the study, then its images, with no token in the URL.
    watcher = watch(recipient)  # from here on, nothing may fail
    recipient.goto(link)
    assert "CT CHEST SHARED" not in recipient.content()
    enter(recipient, code)
    expect(recipient.get_by_role("heading", name="Images shared with you")).to_be_visible()
    token = link.rsplit("/", 1)[1]
    assert token not in recipient.url
    recipient.get_by_role("link", name="CT CHEST SHARED").click()
    assert recipient.get_by_role("link", name=re.compile("Download")).count() == 0
    recipient.get_by_role("link", name="View images").click()
    expect(recipient.locator("[data-overlay-image]")).to_have_text(f"Image 1 / {SLICES}", timeout=20_000)
    levels = recipient.evaluate(
        """() => { const c = document.querySelector('[data-viewport] canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const s = new Set(); for (let i = 0; i < d.length; i += 4) s.add(d[i]); return s.size; }"""
    )
    assert levels > 20, "the first image is drawn"
    # The whole series loads without asking for the files this view-only share does not hand out.
    recipient.wait_for_selector("[data-stack-loaded-ms]", state="attached", timeout=30_000)
    assert token not in recipient.url
    watcher.assert_clean()

    # Downloads: refused on this share, given on the share that allows them.
    uid = study.study_instance_uid
    refused = recipient.request.get(f"/s/studies/{uid}/download")
    assert refused.status == HTTPStatus.FORBIDDEN
    other = new_context().new_page()
    other.goto(download_link)
    enter(other, download_code)
    other.get_by_role("link", name="CT CHEST SHARED").click()
    with other.expect_download() as download:
        other.get_by_role("link", name="Download (DICOM disc)").click()
    assert download.value.suggested_filename.endswith(".zip")

    # The patient revokes; the recipient's next frame request answers 410.
    opened = Share.objects.get(allow_download=False, locked_at__isnull=True)
    patient_page.goto(reverse("share-list"))
    patient_page.get_by_role("link", name=f"Share #{opened.pk}").click()
    patient_page.get_by_role("button", name="Revoke this link now").click()
    expect(patient_page.locator(".messages")).to_contain_text("revoked")
    series = study.series.get()
    instance = series.instances.order_by("instance_number")[0]
    frame = recipient.request.get(
        f"/s/dicomweb/studies/{uid}/series/{series.series_instance_uid}/instances/"
        f"{instance.sop_instance_uid}/frames/1",
        headers={"Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"},
    )
    assert frame.status == HTTPStatus.GONE
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SHARE_LOCK).count() == 1
    # Nothing the whole run logged (requests, 4xx warnings, tasks) carries a token.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    tokens = [url.rsplit("/", 1)[1] for url in (locked_link, link, download_link)]
    assert "/s/[token]" in logged
    assert [token for token in tokens if token in logged] == []
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SHARE_REVOKE).count() == 1
