"""A real Chromium (Debian's package) driven by Playwright, for the storefront and the admin."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import require_service

CHROMIUM = "/usr/bin/chromium"
# Screenshots are kept as test artefacts: CI collects this folder (BROWSER_SCREENSHOTS overrides it).
SCREENSHOTS = Path(
    os.environ.get("BROWSER_SCREENSHOTS")
    or Path(__file__).resolve().parents[2] / "test-artefacts" / "browser"
)
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


@pytest.fixture
def screenshot(request) -> Callable[..., Path]:
    """``screenshot(page, "home")`` saves the whole page as ``<test name>-home.png`` in ``SCREENSHOTS``."""

    def take(page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', request.node.name)}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
