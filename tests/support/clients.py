"""A test client whose ``force_login`` stands for a complete sign-in.

Staff reach nothing until their session has passed the second factor (sharing.middleware). A test
that signs someone in with ``force_login`` means "signed in as they normally would": for an account
with an authenticator that includes it, recorded in the session as allauth records it. Tests of the
sign-in itself go through the real pages instead.
"""

from __future__ import annotations

from typing import Any

from allauth.account.internal.flows.login import record_authentication
from allauth.mfa.utils import is_mfa_enabled
from django.http import HttpRequest
from django.test import Client as DjangoClient


class Client(DjangoClient):
    def force_login(self, user: Any, backend: str | None = None) -> None:
        super().force_login(user, backend)
        if is_mfa_enabled(user):
            session_passed_mfa(self, user)


def session_passed_mfa(client: DjangoClient, user: Any) -> None:
    """Record in the client's session that its sign-in included the second factor."""
    request = HttpRequest()
    request.session = client.session
    record_authentication(request, user, "mfa", type="totp")
    request.session.save()
