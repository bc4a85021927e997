"""How Lightbox customises django-allauth: through its adapter, never by copying its views."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.hashers import make_password
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.crypto import get_random_string


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]  # allauth is untyped
    def respond_email_verification_sent(
        self, request: HttpRequest, user: AbstractBaseUser | None
    ) -> HttpResponseBase:
        """The "check your email" answer to a sign-up, the same whether the address is known or not.

        allauth answers a sign-up for a known address alike (ACCOUNT_PREVENT_ENUMERATION): one email
        sent through ``send_mail``, the same redirect. A new account also costs a password hash,
        by far the slowest step (a third of a second), which told an address apart by the time
        the answer took. Without a user (the address is known, or a bot filled the honeypot) a
        password is hashed here too. Here rather than in ``send_account_already_exists_mail``,
        which is skipped while that address's emails are rate-limited. The hash is of a random
        string: it costs the same, and the submitted password is not handled any further.
        """
        if user is None:
            make_password(get_random_string(32))
        response: HttpResponseBase = super().respond_email_verification_sent(request, user)
        return response
