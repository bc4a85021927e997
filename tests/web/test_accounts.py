from __future__ import annotations

import re
import time
from http import HTTPStatus
from importlib import import_module
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    SECRET_SESSION_KEY,
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.conf import settings
from django.contrib.messages import get_messages
from django.core import mail
from django.urls import reverse

from sharing.middleware import LOGIN_AT_KEY, MFA_REQUIRED_MESSAGE, SEEN_AT_KEY
from sharing.models import User
from tests.support.clients import Client

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-42"


def totp_code(secret: str) -> str:
    return str(format_hotp_value(hotp_value(secret, int(time.time()) // 30)))


def sign_in(client: Client, email: str, password: str = PASSWORD) -> Any:
    return client.post(reverse("account_login"), {"login": email, "password": password})


def session_exists(session_key: str) -> bool:
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    return bool(store.exists(session_key))


def link_in_last_mail() -> str:
    match = re.search(r"https?://[^/\s]+(/\S+)", str(mail.outbox[-1].body))
    assert match is not None, mail.outbox[-1].body
    return match.group(1)


def message_texts(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def make_user(email: str, **extra: Any) -> User:
    """An account whose address is confirmed, as sign-in requires."""
    user = User.objects.create_user(email, PASSWORD, **extra)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    return user


@pytest.fixture
def patient() -> User:
    return make_user("pat@example.com")


@pytest.fixture
def staff() -> User:
    return make_user("records@example.com", role=User.Role.RECORDS)


@pytest.fixture
def staff_with_totp(staff: User) -> tuple[User, str]:
    secret = generate_totp_secret()
    TOTP.activate(staff, secret)
    return staff, secret


# --- Sign-up, sign-in, password reset ---------------------------------------------------------


def test_a_visitor_signs_up_confirms_their_email_and_signs_in(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("account_email_verification_sent")
    assert len(mail.outbox) == 1
    confirm_url = link_in_last_mail()

    assert client.get(confirm_url).status_code == HTTPStatus.OK
    response = client.post(confirm_url)
    assert response.status_code == HTTPStatus.FOUND
    assert EmailAddress.objects.get(email="new@example.com").verified

    client.logout()
    response = sign_in(client, "new@example.com")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == settings.LOGIN_REDIRECT_URL
    assert client.get(reverse("home")).status_code == HTTPStatus.OK


def test_an_unconfirmed_account_cannot_sign_in(client):
    client.post(
        reverse("account_signup"),
        {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    client.logout()

    sign_in(client, "new@example.com")

    assert client.get(reverse("home"))["Location"].startswith(reverse("account_login"))


def test_a_patient_signs_in_and_out(client, patient):
    response = sign_in(client, patient.email)
    assert response.status_code == HTTPStatus.FOUND
    assert client.get(reverse("home")).status_code == HTTPStatus.OK

    response = client.post(reverse("account_logout"))

    assert response.status_code == HTTPStatus.FOUND
    assert client.get(reverse("home"))["Location"].startswith(reverse("account_login"))


def test_a_wrong_password_is_refused_next_to_the_form(client, patient):
    response = sign_in(client, patient.email, "not-the-password")

    assert response.status_code == HTTPStatus.OK
    assert response.context["form"].errors
    assert "_auth_user_id" not in client.session


def test_a_forgotten_password_is_reset_through_the_emailed_link(client, patient):
    response = client.post(reverse("account_reset_password"), {"email": patient.email})
    assert response.status_code == HTTPStatus.FOUND
    assert len(mail.outbox) == 1
    response = client.get(link_in_last_mail())
    assert response.status_code == HTTPStatus.FOUND  # to the same page without the key in the URL
    set_password_url = response["Location"]

    response = client.post(
        set_password_url, {"password1": "another-passphrase-7", "password2": "another-passphrase-7"}
    )

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("account_reset_password_from_key_done")
    patient.refresh_from_db()
    assert patient.check_password("another-passphrase-7")
    assert sign_in(client, patient.email, "another-passphrase-7").status_code == HTTPStatus.FOUND
    assert client.get(reverse("home")).status_code == HTTPStatus.OK


# --- Two-factor authentication for staff ------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/staff/unmatched/", "/admin/", "/upload/"])
def test_staff_without_an_authenticator_are_sent_to_set_one_up(client, staff, path):
    client.force_login(staff)

    response = client.get(path)

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("mfa_activate_totp")
    assert MFA_REQUIRED_MESSAGE in message_texts(response)


@pytest.mark.parametrize(
    "extra",
    [{"role": User.Role.ADMIN, "is_staff": True}, {"is_staff": True}, {"is_superuser": True}],
)
def test_administrators_and_django_staff_need_an_authenticator_too(client, extra):
    client.force_login(make_user("boss@example.com", **extra))

    response = client.get("/admin/")

    assert response["Location"] == reverse("mfa_activate_totp")


def test_staff_without_an_authenticator_cannot_use_the_api(client, staff):
    client.force_login(staff)

    response = client.post(reverse("stow"), b"", content_type="multipart/related")

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert "set up two-factor authentication" in response.json()["error"]


def test_staff_without_an_authenticator_can_still_reach_static_files_and_the_favicon(client, staff):
    client.force_login(staff)

    for path in (settings.STATIC_URL + "css/lightbox.css", "/favicon.ico"):
        assert client.get(path).status_code != HTTPStatus.FOUND


# Without a test transaction around it, as in production: allauth announces the new authenticator
# once its row is committed, and that is what counts it as the browser session's second factor.
@pytest.mark.django_db(transaction=True)
def test_staff_set_up_an_authenticator_and_then_reach_staff_pages(client, staff):
    sign_in(client, staff.email)
    assert client.get(reverse("home"))["Location"] == reverse("mfa_activate_totp")

    # allauth asks for the password again before anything changes an account's sign-in methods.
    response = client.get(reverse("mfa_activate_totp"))
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    response = client.post(response["Location"], {"password": PASSWORD})
    assert response["Location"] == reverse("mfa_activate_totp")

    response = client.get(reverse("mfa_activate_totp"))
    assert response.status_code == HTTPStatus.OK
    secret = client.session[SECRET_SESSION_KEY]
    response = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})

    assert response.status_code == HTTPStatus.FOUND
    assert Authenticator.objects.filter(user=staff, type=Authenticator.Type.TOTP).exists()
    assert client.get(reverse("unmatched-studies")).status_code == HTTPStatus.OK


def test_staff_without_an_authenticator_can_sign_out(client, staff):
    sign_in(client, staff.email)
    session_key = client.session.session_key

    response = client.post(reverse("account_logout"))

    assert response.status_code == HTTPStatus.FOUND
    assert not session_exists(session_key)


def test_staff_sign_in_asks_for_a_code_from_their_authenticator(client, staff_with_totp):
    staff, secret = staff_with_totp

    response = sign_in(client, staff.email)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("mfa_authenticate")
    assert "_auth_user_id" not in client.session

    response = client.post(reverse("mfa_authenticate"), {"code": "000000"})
    assert response.status_code == HTTPStatus.OK
    assert response.context["form"].errors

    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert response.status_code == HTTPStatus.FOUND
    assert client.get(reverse("unmatched-studies")).status_code == HTTPStatus.OK


def test_patients_are_never_asked_for_a_second_factor(client, patient):
    response = sign_in(client, patient.email)
    assert response["Location"] == settings.LOGIN_REDIRECT_URL

    for name in ("home", "upload"):
        assert client.get(reverse(name)).status_code == HTTPStatus.OK


# --- Sessions -------------------------------------------------------------------------------


def age_session(client: Client, *, signed_in_ago: int, last_seen_ago: int) -> str:
    session = client.session
    now = int(time.time())
    session[LOGIN_AT_KEY] = now - signed_in_ago
    session[SEEN_AT_KEY] = now - last_seen_ago
    session.save()
    return str(session.session_key)


def test_a_session_idle_too_long_is_ended(client, patient, settings):
    settings.LIGHTBOX_SESSION_IDLE_SECONDS = 1800
    sign_in(client, patient.email)
    session_key = age_session(client, signed_in_ago=1900, last_seen_ago=1801)

    response = client.get(reverse("upload") + "?x=1")

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("account_login") + "?next=%2Fupload%2F%3Fx%3D1"
    assert not session_exists(session_key)
    assert "_auth_user_id" not in client.session
    assert "You were signed out after 30 minutes without activity. Please sign in again." in (
        message_texts(response)
    )


def test_a_session_is_ended_some_hours_after_sign_in_however_active(client, patient, settings):
    settings.LIGHTBOX_SESSION_ABSOLUTE_SECONDS = 43200
    sign_in(client, patient.email)
    session_key = age_session(client, signed_in_ago=43200, last_seen_ago=5)

    response = client.get(reverse("home"))

    assert response["Location"] == reverse("account_login") + "?next=%2F"
    assert not session_exists(session_key)
    assert "You were signed out 12 hours after signing in. Please sign in again." in message_texts(response)


def test_an_active_session_is_kept_and_its_activity_recorded(client, patient):
    sign_in(client, patient.email)
    age_session(client, signed_in_ago=40000, last_seen_ago=1700)

    response = client.get(reverse("home"))

    assert response.status_code == HTTPStatus.OK
    assert int(time.time()) - client.session[SEEN_AT_KEY] < 5
    assert int(time.time()) - client.session[LOGIN_AT_KEY] >= 40000


def test_reading_pages_saves_last_activity_at_most_once_a_minute(client, patient):
    sign_in(client, patient.email)
    age_session(client, signed_in_ago=100, last_seen_ago=30)
    seen_at = client.session[SEEN_AT_KEY]

    client.get(reverse("home"))

    assert client.session[SEEN_AT_KEY] == seen_at


def test_an_expired_session_on_the_api_gets_the_apis_own_401(client, staff_with_totp):
    staff, _ = staff_with_totp
    client.force_login(staff)
    age_session(client, signed_in_ago=10, last_seen_ago=settings.LIGHTBOX_SESSION_IDLE_SECONDS)

    response = client.post(reverse("stow"), b"", content_type="multipart/related")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert "_auth_user_id" not in client.session


def test_signing_in_starts_a_new_session(client, patient):
    session = client.session
    session["before"] = "sign-in"
    session.save()
    anonymous_key = session.session_key

    sign_in(client, patient.email)

    assert client.session.session_key != anonymous_key
    assert not session_exists(anonymous_key)


def test_signing_out_deletes_the_session_from_the_store(client, patient):
    sign_in(client, patient.email)
    session_key = client.session.session_key
    assert session_exists(session_key)

    client.post(reverse("account_logout"))

    assert not session_exists(session_key)
    assert client.get(reverse("home"))["Location"].startswith(reverse("account_login"))


def test_session_settings_follow_the_absolute_limit():
    assert settings.SESSION_COOKIE_AGE == settings.LIGHTBOX_SESSION_ABSOLUTE_SECONDS
    assert settings.SESSION_SAVE_EVERY_REQUEST is False


# --- Account pages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["account_login", "account_signup", "account_reset_password", "account_reset_password_done"]
)
def test_account_pages_use_the_site_layout_without_inline_scripts_or_styles(client, name):
    response = client.get(reverse(name))

    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert 'class="card narrow account-card"' in html
    assert "<script" not in html
    assert "style=" not in html
    assert "<style" not in html


def test_every_field_on_the_sign_up_form_has_a_label(client):
    html = client.get(reverse("account_signup")).content.decode()

    for field_id in ("id_email", "id_password1", "id_password2"):
        assert f'<label for="{field_id}">' in html


def test_a_field_error_is_shown_right_after_its_field(client):
    response = client.post(
        reverse("account_signup"), {"email": "not-an-address", "password1": "x", "password2": "x"}
    )

    html = response.content.decode()
    email_input = html.index('id="id_email"')
    email_error = html.index("Enter a valid email address.")
    assert email_input < email_error < html.index('id="id_password1"')
    assert 'aria-invalid="true"' in html[html.rindex("<input", 0, email_input) : email_error]


# --- The signed-in user is read from the cache (sharing.auth_backends) --------------------------


def test_without_a_shared_cache_the_signed_in_user_is_read_on_every_request(client, patient, settings):
    settings.LIGHTBOX_USER_CACHE_SECONDS = 0  # the default without REDIS_URL
    sign_in(client, patient.email)
    user_queries(client)

    assert user_queries(client) == 1


def user_queries(client: Client) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse("access-history")).status_code == HTTPStatus.OK
    return sum('FROM "sharing_user"' in query["sql"] for query in captured.captured_queries)


def test_the_signed_in_user_is_read_from_the_database_once(client, patient, settings):
    settings.LIGHTBOX_USER_CACHE_SECONDS = 300  # as with Redis, which every process shares
    sign_in(client, patient.email)
    user_queries(client)

    assert user_queries(client) == 0


def test_a_deactivated_account_is_signed_out_at_its_next_request(client, patient):
    sign_in(client, patient.email)
    assert client.get(reverse("home")).status_code == HTTPStatus.OK

    patient.is_active = False
    patient.save()

    assert client.get(reverse("home"))["Location"].startswith(reverse("account_login"))


def test_a_new_password_ends_other_sessions_at_once(client, patient):
    sign_in(client, patient.email)
    assert client.get(reverse("home")).status_code == HTTPStatus.OK

    patient.set_password("another-long-passphrase-7")
    patient.save()

    assert client.get(reverse("home"))["Location"].startswith(reverse("account_login"))


def test_a_change_of_role_applies_at_the_next_request(client, patient):
    sign_in(client, patient.email)
    assert client.get(reverse("workspace-queue")).status_code == HTTPStatus.FORBIDDEN

    patient.role = User.Role.RECORDS
    patient.save()

    # Staff now: sent to set up an authenticator, which patients never are.
    assert client.get(reverse("workspace-queue"))["Location"] == reverse("mfa_activate_totp")


def authenticator_queries(client: Client) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse("unmatched-studies")).status_code == HTTPStatus.OK
    return sum('FROM "mfa_authenticator"' in query["sql"] for query in captured.captured_queries)


def test_whether_staff_have_an_authenticator_is_read_from_the_database_once(
    client, staff_with_totp, settings
):
    settings.LIGHTBOX_USER_CACHE_SECONDS = 300
    staff, _ = staff_with_totp
    client.force_login(staff)
    authenticator_queries(client)

    assert authenticator_queries(client) == 0


def test_staff_who_remove_their_authenticator_are_sent_to_set_one_up_at_once(client, staff_with_totp):
    staff, _ = staff_with_totp
    client.force_login(staff)
    assert client.get(reverse("unmatched-studies")).status_code == HTTPStatus.OK

    Authenticator.objects.filter(user=staff).delete()

    assert client.get(reverse("unmatched-studies"))["Location"] == reverse("mfa_activate_totp")
