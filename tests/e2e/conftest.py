"""Browser fixtures: Debian's chromium under Playwright, one browser context per person."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from tests.support import unavailable

from pairpilot.settings import Settings
from pairpilot.testing import quick_settings

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
CLIENT_INDEX = REPO / "client" / "dist" / "index.html"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# A close that Chromium never answers must not hang the suite: after this long the test fails
# with that message, and the other closes still run (the browser's own close ends it all).
CLOSE_TIMEOUT_S = 30.0


async def closed_in_time(closing: Coroutine[object, object, None]) -> bool:
    """Await a Playwright close for at most CLOSE_TIMEOUT_S; False when it did not end."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await closing
    except TimeoutError:
        return False
    return True


NewPerson = Callable[[str], Awaitable[Page]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The suite's quick settings; the built client is required."""
    if not CLIENT_INDEX.is_file():
        unavailable(f"the built client ({CLIENT_INDEX}); run scripts/setup.sh")
    return quick_settings(tmp_path)


@pytest.fixture
def chromium() -> Path:
    """Debian's chromium (never a downloaded browser)."""
    if not CHROMIUM.is_file():
        unavailable(f"Debian's chromium at {CHROMIUM}; run scripts/setup.sh")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path, settings: Settings) -> AsyncIterator[Browser]:
    """Debian's chromium, headless, for a test with the built client."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            closed = await closed_in_time(launched.close())
        assert closed, f"the browser did not close in {CLOSE_TIMEOUT_S:g} s"


@pytest.fixture
async def person(browser: Browser) -> AsyncIterator[NewPerson]:
    """Makes a new person: a fresh browser context (own storage, own user) with a display name."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    async def new(name: str) -> Page:
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(30_000)
        await context.add_init_script(
            f"localStorage.getItem('pairpilot.name') || "
            f"localStorage.setItem('pairpilot.name', {json.dumps(name)});"
        )
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{name}: {exc}"))
        return page

    yield new
    hung = [context for context in contexts if not await closed_in_time(context.close())]
    assert not hung, f"{len(hung)} browser context(s) did not close in {CLOSE_TIMEOUT_S:g} s"
    assert not errors, f"uncaught errors in the pages: {errors}"
