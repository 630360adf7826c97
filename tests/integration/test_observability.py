"""The error trail: Sentry (server and tunnel), metrics, request ids, readiness."""

import asyncio
import contextlib
import io
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pycrdt import Text
from tests.support import new_user

from pairpilot.errors import StorageError
from pairpilot.testing import (
    LiveServer,
    free_port,
    live_server,
    quick_settings,
    sentry_ingest,
    synced_client,
    wait_until,
)

pytestmark = pytest.mark.anyio


async def test_an_http_handler_crash_reaches_sentry_with_room_and_user_tags(tmp_path: Path):
    async with sentry_ingest() as ingest:
        settings = quick_settings(tmp_path, sentry_dsn=ingest.dsn())
        async with live_server(settings) as server:
            ada = await new_user(server.http_url)
            await ada.join("crashy")

            async def broken(*_args: object) -> None:
                raise RuntimeError("members query exploded")

            server.services.directory.members = broken  # type: ignore[method-assign]
            response = await ada.call("GET", "/api/rooms/crashy/members")
            assert response.status_code == 500
            await wait_until(lambda: bool(ingest.events()), what="the event")
        event = ingest.events()[0]
        assert event["exception"]["values"][-1]["value"] == "members query exploded"
        assert event["tags"]["room_id"] == "crashy"
        assert event["tags"]["user_id"] == ada.id
        assert event["release"].startswith("pairpilot@")
        assert event["environment"] == "production"
        assert ada.token not in json.dumps(event)


async def test_a_websocket_handler_crash_is_reported_without_token_or_content(tmp_path: Path):
    async with sentry_ingest() as ingest:
        settings = quick_settings(tmp_path, sentry_dsn=ingest.dsn())
        async with live_server(settings) as server:
            ada = await new_user(server.http_url)
            await ada.join("wsroom")
            async with synced_client(server.ws_url("wsroom", ada.token)) as doc:
                room = server.services.registry.rooms["wsroom"]

                def explode(*_args: object) -> None:
                    raise RuntimeError("room blew up")

                room.receive = explode  # type: ignore[method-assign]
                # Built at run time: source lines around a frame do travel with events.
                secret = f"confidential-{uuid.uuid4().hex}"
                doc.get("code", type=Text).insert(0, secret)
                await wait_until(lambda: bool(ingest.events()), what="the event")
        raw = b"".join(envelope.raw for envelope in ingest.envelopes)
        event = ingest.events()[0]
        assert event["tags"]["room_id"] == "wsroom"
        assert event["tags"]["user_id"] == ada.id
        assert ada.token.encode() not in raw
        assert secret.encode() not in raw


async def test_a_failing_flush_is_reported_once_per_outage(tmp_path: Path):
    async with sentry_ingest() as ingest:
        settings = quick_settings(tmp_path, sentry_dsn=ingest.dsn())
        async with live_server(settings) as server:
            store = server.services.store

            async def failing(_batch: object) -> None:
                raise StorageError("disk gone")

            store.append = failing  # type: ignore[method-assign]
            async with synced_client(await server.member_url("flushy")) as doc:
                doc.get("code", type=Text).insert(0, "x")
                await wait_until(lambda: server.services.flusher.failures >= 3, what="retries")
                await wait_until(lambda: bool(ingest.events()), what="the event")
                await asyncio.sleep(0.3)
                events = ingest.events()
                assert len(events) == 1
                assert events[0]["tags"]["task"] == "flush"
                assert events[0]["tags"]["room_id"] == "flushy"
                del store.append  # the real method again
                await wait_until(lambda: not server.services.registry.rooms["flushy"].pending)


async def test_metrics_move_with_traffic(server: LiveServer):
    async def scrape() -> dict[str, float]:
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            text = (await client.get("/metrics")).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    before = await scrape()
    assert before["pairpilot_live_rooms"] == 0
    async with (
        synced_client(await server.member_url("metered")) as a,
        synced_client(await server.member_url("metered")) as b,
    ):
        a.get("code", type=Text).insert(0, "hello")
        await wait_until(lambda: str(b.get("code", type=Text)) == "hello")
        await asyncio.sleep(0.3)
        during = await scrape()
        assert during["pairpilot_live_rooms"] == 1
        assert during["pairpilot_open_sockets"] == 2
    ada = await new_user(server.http_url)
    await ada.join("metered")
    for _ in range(4):
        await ada.call("POST", "/api/ratelimit/run", json={"roomId": "metered"})
    after = await scrape()
    assert after['pairpilot_messages_in_total{type="sync"}'] >= 3
    assert after['pairpilot_messages_out_total{type="sync"}'] >= 3
    assert after["pairpilot_bytes_in_total"] > 0
    assert after["pairpilot_bytes_out_total"] > 0
    assert after["pairpilot_fanout_seconds_count"] >= 1
    assert after["pairpilot_flush_seconds_count"] >= 1
    assert after['pairpilot_ratelimit_decisions_total{outcome="allowed"}'] == 3
    assert after['pairpilot_ratelimit_decisions_total{outcome="limited"}'] == 1


async def test_http_log_lines_carry_a_request_id(server: LiveServer):
    ours = next(h for h in logging.getLogger().handlers if hasattr(h, "_pairpilot_handler"))
    sink = io.StringIO()
    copy = logging.StreamHandler(sink)
    copy.setFormatter(ours.formatter)
    logging.getLogger().addHandler(copy)
    try:
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            response = await client.get("/healthz", headers={"X-Request-ID": "trace-me-123"})
            generated = (await client.get("/healthz")).headers["x-request-id"]
    finally:
        logging.getLogger().removeHandler(copy)
    assert response.headers["x-request-id"] == "trace-me-123"
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    access = [line for line in lines if "GET /healthz" in line["event"]]
    assert [line["request_id"] for line in access] == ["trace-me-123", generated]


async def test_readyz_is_ok_when_everything_answers(server: LiveServer):
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "not_configured", "tasks": "ok", "backlog": "ok"},
        "reasons": [],
    }


async def test_readyz_names_a_database_on_a_closed_port(tmp_path: Path):
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    async with live_server(quick_settings(tmp_path, database_url=closed)) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "down"


async def test_readyz_names_a_redis_on_a_closed_port(tmp_path: Path):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    async with live_server(quick_settings(tmp_path, redis_url=closed)) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "ok",
        "redis": "down",
        "tasks": "ok",
        "backlog": "ok",
    }


@contextlib.contextmanager
def _log_lines() -> Iterator[list[dict[str, object]]]:
    """Every JSON log line emitted in the block, formatted by PairPilot's own handler."""
    ours = next(h for h in logging.getLogger().handlers if hasattr(h, "_pairpilot_handler"))
    sink = io.StringIO()
    copy = logging.StreamHandler(sink)
    copy.setFormatter(ours.formatter)
    logging.getLogger().addHandler(copy)
    lines: list[dict[str, object]] = []
    try:
        yield lines
    finally:
        logging.getLogger().removeHandler(copy)
        lines.extend(json.loads(line) for line in sink.getvalue().splitlines())


async def test_tokens_never_reach_the_logs(server: LiveServer):
    ada = await new_user(server.http_url)
    await ada.join("quiet")
    with _log_lines() as lines:
        async with synced_client(server.ws_url("quiet", ada.token)):
            pass
    opened = [line for line in lines if line.get("event") == "connection opened"]
    assert [line["room_id"] for line in opened] == ["quiet"]
    assert opened[0]["user_id"] == ada.id
    assert ada.token not in json.dumps(lines)


def _envelope(dsn: str, message: str = "boom") -> bytes:
    header = json.dumps({"event_id": uuid.uuid4().hex, "dsn": dsn})
    item = json.dumps({"message": message, "platform": "javascript"})
    return f'{header}\n{{"type":"event","length":{len(item)}}}\n{item}\n'.encode()


async def _tunnel(server: LiveServer, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        return await client.post(
            "/monitoring", content=body, headers={"Content-Type": "text/plain;charset=UTF-8"}
        )


async def test_the_tunnel_forwards_envelopes_of_the_browser_dsn_only(tmp_path: Path):
    async with sentry_ingest() as ingest:
        settings = quick_settings(
            tmp_path, browser_sentry_dsn=ingest.dsn("7"), tunnel_max_bytes=4096
        )
        async with live_server(settings) as server:
            ok = await _tunnel(server, _envelope(ingest.dsn("7"), "from the browser"))
            assert ok.status_code == 200
            await wait_until(lambda: bool(ingest.envelopes), what="the forwarded envelope")
            assert ingest.envelopes[0].project == "7"
            assert b"from the browser" in ingest.envelopes[0].raw
            refused = {
                "foreign project": _envelope(ingest.dsn("8")),
                "foreign host": _envelope(f"http://publickey@sentry.example.com:{ingest.port}/7"),
                "no dsn": b'{"event_id":"x"}\n{}\n',
                "not json": b"this is not an envelope",
                "empty": b"",
            }
            for case, body in refused.items():
                response = await _tunnel(server, body)
                assert response.status_code == 400, case
                assert response.json()["error"] == "bad_request", case
            huge = await _tunnel(server, _envelope(ingest.dsn("7"), "x" * 10_000))
            assert huge.status_code == 413
            await asyncio.sleep(0.2)
            assert len(ingest.envelopes) == 1


async def test_the_tunnel_is_404_when_browser_monitoring_is_off(server: LiveServer):
    response = await _tunnel(server, _envelope("http://k@127.0.0.1:1/7"))
    assert response.status_code == 404


async def test_a_failed_forward_is_logged_not_raised(tmp_path: Path):
    dead = f"http://publickey@127.0.0.1:{free_port()}/7"
    async with live_server(quick_settings(tmp_path, browser_sentry_dsn=dead)) as server:
        with _log_lines() as lines:
            response = await _tunnel(server, _envelope(dead))
        assert response.status_code == 200
        assert any("forwarding a browser envelope failed" in str(line["event"]) for line in lines)
