"""Staff reach patient data only through a session that passed their second factor, whichever way
in they tried: allauth's sign-in, Django's admin sign-in, an email confirmation link, or a session
made some other way with the password alone."""

from __future__ import annotations

import re
import time
from http import HTTPStatus
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.core import mail
from django.test import Client as PasswordOnlyClient
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from sharing.models import User
from tests.support.clients import Client

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-42"
# What a staff session must not reach before its second factor: patient data of every kind.
PROTECTED = [
    ("audit export", "/staff/audit/export.csv"),
    ("audit search", "/staff/audit/"),
    ("request queue", "/staff/requests/"),
    ("unmatched studies", "/staff/unmatched/"),
    ("QIDO over every patient", "/dicomweb/studies"),
    ("the admin", "/admin/"),
    ("the admin's users", "/admin/sharing/user/"),
]


def totp_code(secret: str) -> str:
    return str(format_hotp_value(hotp_value(secret, int(time.time()) // 30)))


@pytest.fixture
def staff() -> tuple[User, str]:
    user = User.objects.create_user(
        "records@example.com", PASSWORD, role=User.Role.RECORDS, is_staff=True, is_superuser=True
    )
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return user, secret


def reached(client: Any) -> list[str]:
    """The protected places this client's session opens."""
    opened = []
    for what, path in PROTECTED:
        response = client.get(path, HTTP_ACCEPT="application/dicom+json, text/html")
        if response.status_code == HTTPStatus.OK:
            opened.append(what)
    return opened


def sign_in_routes() -> list[str]:
    """Every route of the site whose name or path says it signs people in."""
    found: list[str] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and "login" in f"{prefix}{pattern.pattern} {pattern.name}":
                found.append(prefix + str(pattern.pattern))

    walk(get_resolver().url_patterns, "")
    return sorted(found)


def test_the_sign_in_routes_are_the_ones_tested_here():
    # A new way to sign in must be added to the tests below before it ships.
    assert sign_in_routes() == ["accounts/login/", "accounts/login/code/confirm/", "admin/login/"]


def test_the_admin_s_sign_in_sends_people_to_the_sign_in_with_a_second_factor(client, staff):
    user, _ = staff

    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))

    response = client.post("/admin/login/?next=/admin/", {"username": user.email, "password": PASSWORD})

    assert "_auth_user_id" not in client.session
    assert reached(client) == []


def test_the_admin_s_sign_in_checks_no_password_at_all(client, staff):
    user, _ = staff
    for attempt in range(25):
        client.post("/admin/login/", {"username": user.email, "password": f"wrong-{attempt}"})

    client.post("/admin/login/", {"username": user.email, "password": PASSWORD})

    assert reached(client) == []


def test_allauth_s_sign_in_opens_nothing_until_the_code_is_given(client, staff):
    user, secret = staff

    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    assert response["Location"] == reverse("mfa_authenticate")
    assert reached(client) == []

    client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})

    assert reached(client) == [what for what, _ in PROTECTED]


def test_signing_in_by_a_code_sent_by_email_is_not_offered(client, staff):
    client.post(reverse("account_confirm_login_code"), {"code": "ABCDEF"})

    assert reached(client) == []


@pytest.mark.parametrize("same_browser", [True, False])
def test_an_email_confirmation_link_signs_nobody_in_without_the_second_factor(client, staff, same_browser):
    user, _ = staff
    address = EmailAddress.objects.get(user=user)
    address.verified = False
    address.save()
    client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    link = re.search(r"https?://[^/\s]+(/\S+)", str(mail.outbox[-1].body))
    assert link is not None
    browser = client if same_browser else Client()

    response = browser.post(link.group(1))

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] in (reverse("mfa_authenticate"), reverse("account_login"))
    assert "_auth_user_id" not in browser.session
    assert reached(browser) == []


def test_a_staff_session_made_with_the_password_alone_is_signed_out(staff):
    user, _ = staff
    browser = PasswordOnlyClient()
    browser.force_login(user)  # a session that never saw the second factor

    response = browser.get("/staff/requests/")

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith(reverse("account_login"))
    assert "_auth_user_id" not in browser.session
    assert reached(browser) == []


def test_the_api_answers_a_password_only_staff_session_with_a_401(staff):
    user, _ = staff
    browser = PasswordOnlyClient()
    browser.force_login(user)

    response = browser.get("/dicomweb/studies", HTTP_ACCEPT="application/dicom+json")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["error"] == "this session did not pass two-factor authentication"


def test_a_patient_without_an_authenticator_signs_in_with_the_password(client):
    user = User.objects.create_user("pat@example.com", PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)

    client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})

    assert client.get(reverse("home")).status_code == HTTPStatus.OK
