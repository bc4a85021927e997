"""A release request end to end in a real browser: the patient fills the authorization and draws
their signature; records staff verify, link, attach a local study and release; the patient then
finds the study in their library."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from sharing.models import Patient, ReleaseAuthorization, User
from tests.support.browser import staff_context, with_verified_email
from tests.support.factories import PASSWORD, records_staff
from tests.support.releases import make_facility, quick_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def draw_signature(page: Page) -> None:
    pad = page.locator("#signature-pad")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    assert box is not None
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + w * 0.1, y + h * 0.7)
    page.mouse.down()
    for step in range(1, 25):
        page.mouse.move(x + w * (0.1 + 0.03 * step), y + h * (0.3 if step % 2 else 0.7), steps=3)
    page.mouse.up()


def test_a_patient_signs_staff_release_and_the_study_reaches_the_library(
    new_context, live_server, watch, login
):
    make_facility()
    mary = with_verified_email(User.objects.create_user("mary@example.com", PASSWORD))
    record = Patient.objects.create(patient_id="MRN-5005", issuer="GENERAL", name="MAJOR^MARY")
    study = quick_study(record, "1.2.826.0.5005")
    staff = records_staff()

    patient_page = new_context().new_page()
    watched = watch(patient_page)
    login(patient_page, "mary@example.com")
    patient_page.goto(reverse("request-new"))
    patient_page.get_by_label("Legal name").fill("Mary Major")
    patient_page.get_by_label("Date of birth").fill("1980-01-01")
    patient_page.get_by_label("Facility").select_option(label="General Hospital")
    patient_page.get_by_label("Which exams").fill("CT chest, January 2026")
    patient_page.get_by_label("Purpose").fill("Personal records")
    patient_page.get_by_label("I understand I may revoke").check()
    patient_page.get_by_label("I understand my treatment").check()
    patient_page.get_by_label("I understand the recipient").check()
    draw_signature(patient_page)
    expect(patient_page.locator("#signature-status")).to_have_text("Signature captured.")
    patient_page.get_by_label("Type your full name").fill("Mary Major")
    patient_page.get_by_role("button", name="Sign and send").click()

    expect(patient_page).to_have_url(re.compile(r"/requests/\d+/$"))
    expect(patient_page.locator("h1")).to_contain_text("Submitted")
    auth = ReleaseAuthorization.objects.get()
    assert auth.pdf_sha256
    watched.assert_clean()

    staff_page = staff_context(new_context, live_server, staff).new_page()
    staff_watch = watch(staff_page)
    staff_page.goto(reverse("workspace-queue"))
    staff_page.get_by_role("link", name=f"#{auth.pk}").click()
    staff_page.get_by_label("How was the identity verified?").select_option(label="Photo ID checked")
    staff_page.get_by_role("button", name="Mark identity verified").click()
    expect(staff_page.locator(".messages")).to_contain_text("Identity verified.")
    staff_page.get_by_label("Patient ID at the facility").fill("MRN-5005")
    staff_page.get_by_role("button", name="Link the account to this patient ID").click()
    expect(staff_page.locator(".messages")).to_contain_text("their studies now show in their library")
    staff_page.get_by_label("Patient ID:", exact=True).fill("MRN-5005")
    staff_page.get_by_role("button", name="Search", exact=True).click()
    staff_page.locator(f"#found-{study.pk}").check()
    staff_page.get_by_role("button", name="Attach the selected studies").click()
    expect(staff_page.locator(".messages")).to_contain_text("1 study attached.")
    staff_page.get_by_label("I release the attached studies").check()
    staff_page.get_by_role("button", name="Release", exact=True).click()
    expect(staff_page.locator("h1")).to_contain_text("released")
    staff_watch.assert_clean()
    record.refresh_from_db()
    assert record.user == mary

    patient_page.goto(reverse("home"))
    expect(patient_page.get_by_text("CT CHEST").first).to_be_visible()
    patient_page.goto(reverse("request-detail", args=[auth.pk]))
    expect(patient_page.locator("h1")).to_contain_text("Fulfilled")
    watched.assert_clean()
