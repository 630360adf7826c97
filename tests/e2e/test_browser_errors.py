"""A browser error reaches Sentry through the server's /monitoring tunnel."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from playwright.async_api import Browser
from tests.e2e.room_page import open_room

from pairpilot.testing import live_server, quick_settings, sentry_ingest, wait_until

pytestmark = pytest.mark.anyio


async def test_an_uncaught_browser_error_arrives_through_the_tunnel(
    browser: Browser, tmp_path: Path
) -> None:
    async with sentry_ingest() as ingest:
        settings = quick_settings(tmp_path, browser_sentry_dsn=ingest.dsn("77"))
        async with live_server(settings) as server:
            context = await browser.new_context()
            page = await context.new_page()
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            await open_room(page, server.http_url, "sentry-room")
            marker = f"browser boom {uuid.uuid4().hex}"
            await page.evaluate(
                "(marker) => setTimeout(() => { throw new Error(marker); }, 0)", marker
            )
            await wait_until(
                lambda: any(marker.encode() in envelope.raw for envelope in ingest.envelopes),
                timeout=30,
                what="the browser's event at the fake ingest",
            )
            await context.close()
    envelope = next(e for e in ingest.envelopes if marker.encode() in e.raw)
    assert envelope.project == "77"
    assert envelope.header["dsn"] == ingest.dsn("77")
    tunnelled = [url for url in requests if "/monitoring" in url]
    assert tunnelled, "the SDK must send through /monitoring"
    assert not [url for url in requests if f":{ingest.port}/" in url], "never straight to Sentry"
    event = json.loads(envelope.raw.split(b"\n")[2])
    assert event["exception"]["values"][0]["value"] == marker
