"""The recipient of a share sees, in a real browser, whose images these are: on the shared list,
and on the viewer's image itself, beside the series' description and clear of it, on a desktop
and on a phone."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, expect

from sharing.dicom.synthetic import SyntheticPatient, ct_series, write_study
from sharing.models import Share, Study, User
from sharing.services.shares import share_create
from tests.support.browser import PageWatch
from tests.support.factories import ingest, patient_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLICES = 4


@pytest.fixture
def patient() -> SyntheticPatient:
    return SyntheticPatient(patient_id="MRN-1001", name="DOE^JANE", birth_date="19800102", sex="F")


@pytest.fixture
def jane() -> User:
    return patient_user("jane@example.com", "MRN-1001", issuer="")


@pytest.fixture
def study(tmp_path, patient: SyntheticPatient, jane: User) -> Study:
    ct = ct_series(patient, slices=SLICES, size=128, description="CT CHEST WITH A LONG SERIES DESCRIPTION")
    ingest(write_study(ct, tmp_path / "ct"))
    return Study.objects.get(study_instance_uid=str(ct[0].StudyInstanceUID))


@pytest.fixture
def share_link(jane: User, study: Study) -> tuple[str, str]:
    created = share_create(
        owner=jane,
        studies=[study],
        expires_at=timezone.now() + datetime.timedelta(days=3),
        protection=Share.Protection.CODE,
        # With download allowed the viewer gets each series in one request; a view-only share
        # refuses that request (403) and the browser reports it, which is not what this is about.
        allow_download=True,
    )
    return f"/s/{created.token}", created.code


def open_share(page: Page, share_link: tuple[str, str]) -> None:
    link, code = share_link
    page.goto(link)
    page.get_by_label("Access code").fill(code)
    page.get_by_role("button", name="View the images").click()
    expect(page.get_by_role("heading", name="Images shared with you")).to_be_visible()


def assert_overlay_names_the_patient_clear_of_the_description(page: Page) -> None:
    expect(page.locator("[data-overlay-image]")).to_have_text(f"Image 1 / {SLICES}", timeout=20_000)
    patient = page.locator("[data-overlay-patient]")
    expect(patient).to_be_visible()
    expect(patient).to_contain_text("DOE, Jane")
    expect(patient).to_contain_text("Born 2 Jan 1980 · Female")
    expect(patient).to_contain_text("ID MRN-1001")
    stage = page.locator("[data-stage]").bounding_box()
    box = patient.bounding_box()
    description = page.locator("[data-overlay-description]").bounding_box()
    assert stage is not None
    assert box is not None
    assert description is not None
    assert stage["x"] <= box["x"]
    assert box["x"] + box["width"] <= stage["x"] + stage["width"] + 0.5
    assert stage["y"] <= box["y"]
    assert box["y"] + box["height"] <= stage["y"] + stage["height"] + 0.5
    assert box["x"] >= description["x"] + description["width"] - 0.5, "the two top corners do not overlap"


def test_a_recipient_sees_whose_images_these_are(
    new_context: Callable[..., BrowserContext],
    watch: Callable[[Page], PageWatch],
    viewer_bundle,
    study: Study,
    share_link: tuple[str, str],
):
    page = new_context().new_page()
    watcher = watch(page)
    open_share(page, share_link)

    expect(page.locator(".patient-banner")).to_contain_text("DOE, Jane")
    expect(page.locator("main")).to_contain_text("Shared by jane@example.com until")
    page.get_by_role("link", name="CT CHEST").click()
    page.get_by_role("link", name="View images").click()
    assert_overlay_names_the_patient_clear_of_the_description(page)
    watcher.assert_clean()


def test_on_a_phone_the_overlay_names_the_patient_too(
    new_context: Callable[..., BrowserContext],
    viewer_bundle,
    study: Study,
    share_link: tuple[str, str],
):
    page = new_context(viewport={"width": 360, "height": 740}, has_touch=True, is_mobile=True).new_page()
    open_share(page, share_link)
    page.goto(f"/s/studies/{study.study_instance_uid}/view")

    assert_overlay_names_the_patient_clear_of_the_description(page)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
