"""A real Chromium (Debian's package) driven by Playwright, for the storefront and the admin."""

from __future__ import annotations

import os

import pytest

from tests.conftest import require_service

CHROMIUM = "/usr/bin/chromium"
# A desktop browser's User-Agent: the default "HeadlessChrome" one is (rightly) flagged as a bot.
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
)


@pytest.fixture
def browser_page(monkeypatch):
    """A fresh Chromium page (own cookies), closed with its browser after the test."""
    require_service("Chromium", os.path.exists(CHROMIUM))
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between page actions are safe (nothing else touches the connection concurrently).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(user_agent=USER_AGENT)
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()
