"""A patient's list of shares and a share's access history are laid out tables on a desktop, and
on a phone each row becomes a card of labelled lines rather than a table to scroll sideways."""

from __future__ import annotations

import datetime

import pytest
from allauth.account.models import EmailAddress
from django.utils import timezone

from sharing.models import Share
from sharing.services.shares import share_create
from tests.support.factories import make_study, patient_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def share(tmp_path, patient) -> Share:
    jane = patient_user("jane@example.com", "MRN-1001")
    EmailAddress.objects.create(user=jane, email=jane.email, primary=True, verified=True)
    study = make_study(tmp_path, patient, "ct", description="CT CHEST FOR THE LIST")
    created = share_create(
        owner=jane,
        studies=[study],
        expires_at=timezone.now() + datetime.timedelta(days=3),
        protection=Share.Protection.CODE,
        allow_download=False,
        recipient_email="dr.who@example.org",
    )
    return created.share


@pytest.mark.parametrize("path", ["/shares/", "detail"])
def test_share_tables_have_room_on_a_desktop_and_fit_a_phone(new_context, login, share, path):
    url = f"/shares/{share.pk}/" if path == "detail" else path
    desktop = new_context(viewport=DESKTOP).new_page()
    login(desktop, "jane@example.com")
    desktop.goto(url)
    cell = desktop.locator("table.data td").first
    header = desktop.locator("table.data th").first

    assert float(cell.evaluate("td => parseFloat(getComputedStyle(td).paddingLeft)")) >= 8
    assert header.evaluate("th => getComputedStyle(th).textAlign") in ("left", "start")

    phone = new_context(viewport=PHONE, is_mobile=True).new_page()
    login(phone, "jane@example.com")
    phone.goto(url)

    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    assert phone.locator("table.data thead").evaluate("h => h.getBoundingClientRect().height") <= 1
    first = phone.locator("table.data td").first
    label = first.evaluate("td => getComputedStyle(td, '::before').content")
    assert label.strip('"').rstrip(": ") == first.get_attribute("data-label")
