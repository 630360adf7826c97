"""`GET /api/config` names a Supabase project to the page only with both its address and key."""

from pathlib import Path

import httpx
import pytest

from pairpilot.testing import live_server, quick_settings

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("supabase", "expected"),
    [
        (
            {"supabase_url": "https://abc.supabase.co/", "supabase_anon_key": "anon"},
            {"supabase_url": "https://abc.supabase.co", "supabase_anon_key": "anon"},
        ),
        ({}, {"supabase_url": None, "supabase_anon_key": None}),
        # Without the anon key the page could not refresh a session: it takes none.
        (
            {"supabase_url": "https://abc.supabase.co"},
            {"supabase_url": None, "supabase_anon_key": None},
        ),
        ({"supabase_anon_key": "anon"}, {"supabase_url": None, "supabase_anon_key": None}),
    ],
)
async def test_the_page_is_told_the_supabase_project_only_when_fully_configured(
    tmp_path: Path, supabase: dict[str, str], expected: dict[str, str | None]
):
    async with live_server(quick_settings(tmp_path, **supabase)) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            response = await client.get("/api/config")
    assert response.status_code == 200
    assert {key: response.json()[key] for key in expected} == expected


def test_a_supabase_url_that_is_not_a_web_address_fails_at_start(tmp_path: Path):
    with pytest.raises(ValueError, match="http:// or https://"):
        quick_settings(tmp_path, supabase_url="abc.supabase.co")
