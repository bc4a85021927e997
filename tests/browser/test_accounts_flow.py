"""Accounts and the library in a real browser: a visitor signs up and confirms their address from
the email; records staff sign in with their authenticator app; a patient downloads a study from
the library and the zip's DICOMDIR reads back."""

from __future__ import annotations

import io
import re
import time
import zipfile

import pytest
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.core import mail
from django.urls import reverse
from playwright.sync_api import expect
from pydicom import dcmread
from pydicom.fileset import FileSet

from sharing.models import Study, User
from tests.support.browser import with_verified_email
from tests.support.factories import PASSWORD, make_study, patient_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "a-long-passphrase-42"


def test_a_visitor_signs_up_confirms_by_email_and_reaches_their_library(new_context, watch, live_server):
    page = new_context().new_page()
    watcher = watch(page)
    page.goto(reverse("account_signup"))
    form = page.locator("form").filter(has=page.locator("input[name=password1]"))
    form.locator("input[name=email]").fill("new.patient@example.com")
    form.locator("input[name=password1]").fill(NEW_PASSWORD)
    form.locator("input[name=password2]").fill(NEW_PASSWORD)
    form.locator("button[type=submit]").click()
    expect(page.get_by_role("heading", name=re.compile("Verify|Confirm|Check", re.I))).to_be_visible()

    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/\s]+(/\S+)", str(mail.outbox[0].body))
    assert link is not None
    page.goto(link.group(1))
    page.get_by_role("button", name="Confirm").click()

    # Confirming signs the new patient in; their (empty) library is there.
    expect(page.locator("header").get_by_role("button", name="Sign out")).to_be_visible()
    page.goto(reverse("home"))
    expect(page.get_by_role("heading", name="Your images")).to_be_visible()
    assert User.objects.get(email="new.patient@example.com").role == User.Role.PATIENT
    watcher.assert_clean()


def test_records_staff_sign_in_with_their_authenticator_app(new_context, watch):
    staff = with_verified_email(
        User.objects.create_user("records@example.com", PASSWORD, role=User.Role.RECORDS)
    )
    secret = generate_totp_secret()
    TOTP.activate(staff, secret)
    page = new_context().new_page()
    watcher = watch(page)

    page.goto(reverse("account_login"))
    page.locator("input[name=login]").fill(staff.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form").filter(has=page.locator("input[name=password]")).locator(
        "button[type=submit]"
    ).click()
    page.locator("input[name=code]").fill("000000")
    page.locator("input[name=code]").press("Enter")
    expect(page.locator("input[name=code]")).to_be_visible()  # a wrong code: still asked
    page.locator("input[name=code]").fill(str(format_hotp_value(hotp_value(secret, int(time.time()) // 30))))
    page.locator("input[name=code]").press("Enter")

    expect(page.locator("header").get_by_role("button", name="Sign out")).to_be_visible()
    page.goto(reverse("unmatched-studies"))
    expect(page.get_by_role("heading", name=re.compile("waiting|Unmatched", re.I))).to_be_visible()
    watcher.assert_clean()


def test_a_patient_downloads_a_study_and_its_dicomdir_reads_back(
    new_context, watch, login, tmp_path, patient
):
    with_verified_email(patient_user("jane@example.com", "MRN-1001"))
    study: Study = make_study(tmp_path, patient, "jane")
    page = new_context(accept_downloads=True).new_page()
    watcher = watch(page)
    login(page, "jane@example.com")

    page.goto(reverse("home"))
    expect(page.get_by_role("link", name="CT CHEST W/O CONTRAST")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Download \\(DICOM")).first.click()
    archive = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))  # noqa: SIM115
    archive.extractall(tmp_path / "disc")
    file_set = FileSet(dcmread(tmp_path / "disc" / "DICOMDIR"))

    assert len(file_set) == study.number_of_instances
    assert {instance.StudyInstanceUID for instance in file_set} == {study.study_instance_uid}
    watcher.assert_clean()
