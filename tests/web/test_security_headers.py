"""Every page carries a strict Content-Security-Policy, and no page needs it relaxed."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from http import HTTPStatus

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.urls import reverse

from sharing.models import User
from tests.support.factories import make_study, patient_user, records_staff

pytestmark = pytest.mark.django_db(transaction=True)


class InlineFinder(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self._in_script = True
        if tag == "style":
            self.problems.append("<style> element")
        if "style" in names:
            self.problems.append(f"style attribute on <{tag}>")
        self.problems += [f"{name} handler on <{tag}>" for name in names if name.startswith("on")]
        for name, value in attrs:
            if (
                name in ("href", "src", "action")
                and value
                and value.strip().lower().startswith("javascript:")
            ):
                self.problems.append(f"javascript: URL on <{tag}>")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline <script>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def assert_strict(response) -> None:
    policy = response["Content-Security-Policy"]
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert re.search(r"default-src 'self'", policy)
    assert "frame-ancestors 'none'" in policy
    finder = InlineFinder()
    finder.feed(response.content.decode())
    assert finder.problems == [], finder.problems


@pytest.mark.parametrize(
    "name", ["account_login", "account_signup", "account_reset_password", "account_email_verification_sent"]
)
def test_public_pages_are_strict(client, name):
    response = client.get(reverse(name))

    assert response.status_code == HTTPStatus.OK
    assert_strict(response)


def test_a_patients_pages_are_strict(client, tmp_path, patient):
    jane = patient_user("jane@example.com", "MRN-1001")
    study = make_study(tmp_path, patient, "jane")
    client.force_login(jane)

    for url in [
        reverse("home"),
        reverse("study", args=[study.study_instance_uid]),
        reverse("upload"),
        reverse("account_email"),
        reverse("account_change_password"),
        reverse("mfa_index"),
    ]:
        response = client.get(url)
        assert response.status_code == HTTPStatus.OK, url
        assert_strict(response)


def test_staff_and_admin_pages_are_strict(client):
    client.force_login(records_staff())
    assert_strict(client.get(reverse("unmatched-studies")))

    admin = User.objects.create_superuser("admin@example.com", "pw-123456789")
    TOTP.activate(admin, generate_totp_secret())
    client.force_login(admin)
    for url in [
        reverse("admin:index"),
        reverse("admin:sharing_study_changelist"),
        reverse("admin:sharing_user_add"),
    ]:
        response = client.get(url)
        assert response.status_code == HTTPStatus.OK, url
        assert_strict(response)


def test_a_staff_member_setting_up_two_factor_sees_a_strict_page(client):
    staff = User.objects.create_user("new@example.com", "pw-123456789", role=User.Role.RECORDS)
    client.force_login(staff)

    response = client.get(reverse("mfa_activate_totp"), follow=True)

    assert response.status_code == HTTPStatus.OK
    assert_strict(response)
