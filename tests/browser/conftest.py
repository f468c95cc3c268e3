"""Browser fixtures: Debian's headless Chromium driven by Playwright, against a real worker on the real broker.

The worker, its fresh deployment (app id, topics, catalog) and the broker check are the integration
fixtures themselves. Requests that leave the worker (the catalog's product photos live on a CDN) are
recorded and aborted, so the pages are exercised as they behave offline.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.integration.conftest import Env, Worker, broker, deployment, worker  # noqa: F401  (fixtures)

CHROMIUM = os.environ.get("PERSONA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".local" / "screenshots"
NOT_LOCAL = re.compile(r"^(?!https?://(127\.0\.0\.1|localhost)(:\d+)?/)")


def chromium_missing() -> str | None:
    """Why there is no browser to drive here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Tab:
    """A browser context with one page, the requests that tried to leave the machine, and page errors."""

    def __init__(self, context, base: str):
        self.context, self.base = context, base
        self.external: list[tuple[str, str]] = []
        self.errors: list[str] = []
        context.route(NOT_LOCAL, self._offline)
        self.page = self.new_page()

    def _offline(self, route) -> None:
        self.external.append((route.request.resource_type, route.request.url))
        route.abort()

    def new_page(self):
        page = self.context.new_page()
        page.on("pageerror", lambda err: self.errors.append(f"pageerror: {err}"))
        page.on("console", lambda msg: msg.type == "error" and "Failed to load resource" not in msg.text
                and self.errors.append(f"console: {msg.text}"))
        return page

    def open(self, path: str, page=None):
        page = page or self.page
        page.goto(self.base + path)
        return page

    def screenshot(self, name: str, page=None) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / name
        (page or self.page).screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def tab(browser, worker):  # noqa: F811  (the integration fixture)
    context = browser.new_context(viewport={"width": 1360, "height": 1000}, locale="en-GB")
    context.set_default_timeout(20_000)
    t = Tab(context, worker.url)
    yield t
    context.close()
