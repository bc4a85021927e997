"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

Fixtures for any browser test:
    browser              one Chromium for the session (fails, never skips, when it is missing)
    new_context(**kw)    a fresh browser context (own cookies) whose base_url is the live server;
                         static files get the Content-Security-Policy production sends with them
    page                 a page in a fresh context, watched (see PageWatch)
    watch(page)          record console errors, CSP violations and requests to other hosts
    login(page, email)   sign in through the real login form (the address must be verified:
                         ``with_verified_email(user)``, as allauth requires here)

The Chromium launcher and the helpers tests import (PageWatch, with_verified_email, staff_context)
are in tests/support/browser.py.

Tests using them need the database in transactional mode (the live server runs in a thread):
``pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from playwright.sync_api import Browser, BrowserContext, Page, Route

from sharing.security import DEFAULT_POLICY, viewer_assets_policy
from tests.support.browser import CHROMIUM, PageWatch, launch_chromium
from tests.support.factories import PASSWORD

VIEWER_BUNDLE = Path(__file__).resolve().parents[2] / "static" / "viewer" / "viewer.js"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    # Playwright's sync API runs an event loop in this thread, which makes Django refuse ORM calls
    # from it; the tests' own ORM calls are still plain synchronous code, so allow them.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with launch_chromium() as chromium:
            yield chromium
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def viewer_bundle() -> Path:
    """The built viewer; `make` builds it (npm ci && npm run build)."""
    if not VIEWER_BUNDLE.exists():
        pytest.fail(f"{VIEWER_BUNDLE} is missing: run `make setup` (or `npm ci && npm run build`)")
    return VIEWER_BUNDLE


def static_like_production(route: Route) -> None:
    """The live server serves static files around the middleware, so without a policy; in
    production they pass through ContentSecurityPolicyMiddleware. Add what it would send, so that
    workers (which obey their own script's policy) run under the real one."""
    response = route.fetch()
    path = urlsplit(route.request.url).path
    policy = viewer_assets_policy(DEFAULT_POLICY) if path.startswith("/static/viewer/") else DEFAULT_POLICY
    route.fulfill(response=response, headers={**response.headers, "content-security-policy": policy})


@pytest.fixture
def new_context(browser: Browser, live_server: Any) -> Iterator[Callable[..., BrowserContext]]:
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        options.setdefault("base_url", live_server.url)
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        context.route("**/static/**", static_like_production)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        # A static file still in flight when the test ends must not fail its teardown.
        context.unroute_all(behavior="ignoreErrors")
        context.close()


@pytest.fixture
def watch(live_server: Any) -> Callable[[Page], PageWatch]:
    def attach(page: Page) -> PageWatch:
        parts = urlsplit(live_server.url)
        watcher = PageWatch(origin=f"{parts.scheme}://{parts.netloc}")
        page.on("console", watcher.on_console)
        page.on("request", watcher.on_request)
        page.on("pageerror", lambda error: watcher.console_errors.append(f"uncaught: {error}"))
        return watcher

    return attach


@pytest.fixture
def page(new_context: Callable[..., BrowserContext]) -> Page:
    return new_context().new_page()


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Sign in through the real login form; returns on the page the site sends the user to."""
    page.goto(reverse("account_login"))
    form = page.locator("form").filter(has=page.locator("input[name=password]"))
    form.locator("input[name=login]").fill(email)
    form.locator("input[name=password]").fill(password)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    signed_in = page.locator("header").get_by_role("button", name="Sign out")
    assert signed_in.count() == 1, f"sign-in failed for {email}: now on {page.url}"


@pytest.fixture
def login() -> Callable[..., None]:
    return sign_in
