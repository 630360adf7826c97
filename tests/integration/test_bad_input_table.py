"""The rows of the README's bad-input tables that no other test observed from the client side."""

import asyncio
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pycrdt import Doc, Text
from tests.support import new_user
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pairpilot.sync import protocol
from pairpilot.testing import (
    LiveServer,
    ServerProcess,
    free_port,
    live_server,
    quick_settings,
    synced_client,
)

pytestmark = pytest.mark.anyio


async def _closed_with(ws: ClientConnection, timeout: float = 5) -> int | None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                await ws.recv()
            except ConnectionClosed:
                return ws.close_code


async def _status_line(server: LiveServer, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    try:
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


def _upgrade(*headers: str) -> bytes:
    lines = ["GET /collab/x HTTP/1.1", "Host: x", "Connection: Upgrade", *headers, "", ""]
    return "\r\n".join(lines).encode()


KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="


async def test_a_websocket_version_other_than_13_is_refused_with_400(server: LiveServer):
    status = await _status_line(
        server, _upgrade("Upgrade: websocket", KEY, "Sec-WebSocket-Version: 8")
    )
    assert status.startswith(b"HTTP/1.1 400")


async def test_an_upgrade_to_more_than_websocket_is_refused_with_426(server: LiveServer):
    # uvicorn hands the request over on its last Upgrade header; websockets reads them all.
    request = _upgrade("Upgrade: h2c", "Upgrade: websocket", KEY, "Sec-WebSocket-Version: 13")
    status = await _status_line(server, request)
    assert status.startswith(b"HTTP/1.1 426")


@pytest.mark.parametrize("frame", [b"\x00\x80", b"\x03\x00"], ids=["truncated-varint", "trailing"])
async def test_a_truncated_varint_or_trailing_bytes_close_4400(server: LiveServer, frame: bytes):
    async with connect(await server.member_url("bad"), compression=None) as ws:
        await ws.send(frame)
        assert await _closed_with(ws) == 4400


async def _next(ws: ClientConnection, prefix: bytes) -> bytes:
    async with asyncio.timeout(5):
        while True:
            frame = await ws.recv()
            if isinstance(frame, bytes) and frame.startswith(prefix):
                return frame


async def test_a_duplicated_update_is_relayed_and_applied_once(server: LiveServer):
    doc: Doc = Doc()
    doc["code"] = Text("once")
    frame = protocol.sync_update(doc.get_update())
    async with (
        connect(await server.member_url("twice"), compression=None) as a,
        connect(await server.member_url("twice"), compression=None) as b,
    ):
        for ws in (a, b):
            await _next(ws, b"\x00\x00")  # sync step 1: in the room
        await a.send(frame)
        await a.send(frame)
        assert [await _next(b, b"\x00\x02"), await _next(b, b"\x00\x02")] == [frame, frame]
        room = server.services.registry.rooms["twice"]
        assert str(room.doc.get("code", type=Text)) == "once"


async def test_the_size_limit_applies_to_a_fragmented_message_as_a_whole(tmp_path: Path):
    async with live_server(quick_settings(tmp_path, max_message_bytes=1024)) as server:
        async with connect(await server.member_url("pieces"), compression=None) as ws:
            await ws.send([b"\x00\x02" + b"\x00" * 598, b"\x00" * 600])  # two frames of 600
            assert await _closed_with(ws) == 1009


async def test_a_slow_reader_that_reads_again_sees_1013(tmp_path: Path):
    settings = quick_settings(tmp_path, send_queue_messages=8)
    async with live_server(settings) as server:
        slow = await connect(await server.member_url("slow"), compression=None, max_size=None)
        slow.transport.pause_reading()  # a reader that stopped reading its socket
        async with synced_client(await server.member_url("slow")) as writer:
            room = server.services.registry.rooms["slow"]
            text = writer.get("code", type=Text)
            while len(room.sessions) == 2:
                text.insert(len(text), "x" * 65536)
                await asyncio.sleep(0.005)
            # It reads again before the server gives up on its answer (1 s): it finds the code
            # behind every frame it had missed.
            slow.transport.resume_reading()
            assert await _closed_with(slow, timeout=10) == 1013


async def _rename_table(server: LiveServer, table: str, new_name: str) -> None:
    async with server.services.store.engine.begin() as conn:
        await conn.execute(sa.text(f'ALTER TABLE "{table}" RENAME TO "{new_name}"'))


async def test_a_storage_failure_while_loading_a_room_closes_1011_and_a_retry_gets_in(
    server: LiveServer,
):
    url = await server.member_url("unloadable")
    await _rename_table(server, "room_updates", "room_updates_away")  # loading now fails
    try:
        async with connect(url, compression=None) as ws:
            assert await _closed_with(ws) == 1011
    finally:
        await _rename_table(server, "room_updates_away", "room_updates")
    async with synced_client(url):
        pass


async def test_an_api_call_whose_storage_fails_answers_503(server: LiveServer):
    ada = await new_user(server.http_url, "Ada")
    await _rename_table(server, "rooms", "rooms_away")
    try:
        response = await ada.join("nowhere")
    finally:
        await _rename_table(server, "rooms_away", "rooms")
    assert response.status_code == 503
    assert response.json()["error"] == "storage_unavailable"


async def test_an_api_call_with_the_database_down_answers_503(tmp_path: Path):
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    async with live_server(quick_settings(tmp_path, database_url=closed)) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            response = await client.post("/api/auth/anonymous", json={"name": "Ada"})
    assert response.status_code == 503


async def test_sigterm_closes_every_socket_with_1012(tmp_path: Path):
    server = ServerProcess({"PAIRPILOT_DATA_DIR": str(tmp_path), "PAIRPILOT_LOG_LEVEL": "WARNING"})
    server.start()
    try:
        async with connect(await server.member_url("restart"), compression=None) as ws:
            await ws.recv()  # sync step 1: the socket is in its room
            stopping = asyncio.create_task(asyncio.to_thread(server.stop))  # SIGTERM, then wait
            assert await _closed_with(ws, timeout=30) == 1012
            await stopping
    finally:
        server.kill()
