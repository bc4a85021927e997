"""Signing up answers alike whether or not the address already has an account: the same redirect,
one email, and the same expensive work (a password hash), so neither the page nor the time it
takes tells an address apart."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core import mail
from django.urls import reverse

from sharing.models import User
from tests.support.clients import Client

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-passphrase-42"


class CountingHasher(MD5PasswordHasher):
    """The test suite's fast hasher, counting the passwords it hashes."""

    algorithm = "counting_md5"
    hashed = 0

    def encode(self, password: str, salt: str) -> str:
        CountingHasher.hashed += 1
        return super().encode(password, salt)


@pytest.fixture(autouse=True)
def counting_hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.web.test_signup_enumeration.CountingHasher"]
    CountingHasher.hashed = 0


@pytest.fixture
def known() -> str:
    User.objects.create_user("known@example.com", "an-older-passphrase-7")
    CountingHasher.hashed = 0
    return "known@example.com"


def sign_up(email: str):
    return Client().post(
        reverse("account_signup"), {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    )


def test_a_new_address_hashes_one_password_and_gets_one_email():
    response = sign_up("new@example.com")

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("account_email_verification_sent")
    assert CountingHasher.hashed == 1
    assert len(mail.outbox) == 1


def test_a_known_address_hashes_one_password_and_gets_one_email_too(known):
    response = sign_up(known)

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("account_email_verification_sent")
    assert CountingHasher.hashed == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [known]
    assert User.objects.filter(email=known).count() == 1


def test_a_known_address_hashes_a_password_even_while_its_emails_are_rate_limited(known):
    sign_up(known)
    CountingHasher.hashed = 0

    response = sign_up(known)

    assert response["Location"] == reverse("account_email_verification_sent")
    assert len(mail.outbox) == 1  # the second email was held back
    assert CountingHasher.hashed == 1


def test_the_known_address_keeps_its_own_password(known):
    sign_up(known)

    assert not User.objects.get(email=known).check_password(PASSWORD)
