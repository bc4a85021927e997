"""Debian's Chromium driven by Playwright, and what browser tests check and set up with it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from allauth.account.models import EmailAddress
from django.conf import settings
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Request, sync_playwright

from sharing.models import User
from tests.support.clients import Client

CHROMIUM = Path(os.environ.get("LIGHTBOX_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """The one way tests start Chromium: headless, without a sandbox, GPU or network chatter."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class PageWatch:
    """What a page did that a patient's page must never do."""

    origin: str
    console_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.csp_violations.append(text)
        # Browsers ask for /favicon.ico on their own; the site has none, and that is no fault.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            self.console_errors.append(f"{text} ({message.location.get('url', '')})")

    def on_request(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob"):
            return
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign_requests.append(request.url)

    def assert_clean(self) -> None:
        assert self.csp_violations == [], self.csp_violations
        assert self.console_errors == [], self.console_errors
        assert self.foreign_requests == [], self.foreign_requests


def with_verified_email(user: User) -> User:
    """Mark the user's address verified (ACCOUNT_EMAIL_VERIFICATION is mandatory)."""
    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"primary": True, "verified": True}
    )
    return user


def staff_context(
    new_context: Callable[..., BrowserContext], live_server: Any, staff: User
) -> BrowserContext:
    """Staff signed in with two-factor already satisfied, through a session made by Django's client."""
    client = Client()
    client.force_login(staff)
    context = new_context()
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])
    return context
