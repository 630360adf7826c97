"""The WebSocket's behaviour for good, bad and hostile peers, over real sockets."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pycrdt import Awareness, Doc, Text, create_awareness_message
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode

from pairpilot.sync import protocol
from pairpilot.testing import LiveServer, live_server, quick_settings, synced_client, wait_until

pytestmark = pytest.mark.anyio


async def _recv_until(ws: ClientConnection, prefix: bytes, timeout: float = 5) -> bytes:
    async with asyncio.timeout(timeout):
        while True:
            frame = await ws.recv()
            if isinstance(frame, bytes) and frame.startswith(prefix):
                return frame


async def _closed_with(ws: ClientConnection) -> int | None:
    async with asyncio.timeout(5):
        await ws.wait_closed()
    return ws.close_code


def _presence(name: str) -> tuple[Awareness, bytes]:
    awareness = Awareness(Doc())
    awareness.set_local_state({"user": {"name": name}})
    frame = create_awareness_message(awareness.encode_awareness_update([awareness.client_id]))
    return awareness, frame


def _awareness_states(frame: bytes) -> dict[int, object]:
    holder = Awareness(Doc())
    holder.apply_awareness_update(protocol.decode_message(frame).update, "test")  # type: ignore[union-attr]
    return dict(holder.states)


async def test_server_greets_with_sync_step1(server: LiveServer):
    async with connect(await server.member_url("greet"), compression=None) as ws:
        assert (await _recv_until(ws, b"\x00\x00"))[:2] == b"\x00\x00"


@asynccontextmanager
async def _two_members(
    server: LiveServer, room_id: str
) -> AsyncIterator[tuple[ClientConnection, ClientConnection]]:
    async with (
        connect(await server.member_url(room_id), compression=None) as a,
        connect(await server.member_url(room_id), compression=None) as b,
    ):
        yield a, b


async def _assert_relayed_to(frame: bytes, *sockets: ClientConnection) -> None:
    for ws in sockets:
        assert await _recv_until(ws, b"\x01") == frame


async def test_awareness_is_relayed_to_everyone_including_the_sender(server: LiveServer):
    async with _two_members(server, "aw") as (a, b):
        awareness, frame = _presence("Ada")
        await a.send(frame)
        await _assert_relayed_to(frame, b, a)
        assert awareness.client_id in _awareness_states(frame)


async def test_an_awareness_update_the_room_already_has_is_not_relayed(server: LiveServer):
    async with _two_members(server, "echo") as (a, b):
        _, ada = _presence("Ada")
        await a.send(ada)
        await _assert_relayed_to(ada, b, a)
        # A stock client re-sends what it received: the room has that clock already.
        await b.send(ada)
        _, bob = _presence("Bob")
        await b.send(bob)
        assert await _recv_until(a, b"\x01") == bob


async def test_a_closed_socket_removes_its_awareness_for_the_others(server: LiveServer):
    async with connect(await server.member_url("bye"), compression=None) as b:
        async with connect(await server.member_url("bye"), compression=None) as a:
            awareness, frame = _presence("Ada")
            await a.send(frame)
            await _recv_until(b, b"\x01")
        removal = await _recv_until(b, b"\x01")
        holder = Awareness(Doc())
        holder.apply_awareness_update(protocol.decode_message(frame).update, "t")  # type: ignore[union-attr]
        holder.apply_awareness_update(protocol.decode_message(removal).update, "t")  # type: ignore[union-attr]
        assert awareness.client_id not in holder.states


async def test_new_connection_and_query_awareness_get_current_states(server: LiveServer):
    async with connect(await server.member_url("q"), compression=None) as a:
        awareness, frame = _presence("Ada")
        await a.send(frame)
        await _recv_until(a, b"\x01")
        async with connect(await server.member_url("q"), compression=None) as late:
            greeting = await _recv_until(late, b"\x01")
            assert awareness.client_id in _awareness_states(greeting)
            await late.send(b"\x03")
            answer = await _recv_until(late, b"\x01")
            assert _awareness_states(answer)[awareness.client_id] == {"user": {"name": "Ada"}}


@pytest.mark.parametrize("room_id", ["has%20space", "x" * 65, "dots.dots", "%F0%9F%99%82"])
async def test_invalid_room_ids_close_4400(server: LiveServer, room_id: str):
    async with connect(server.ws_url(room_id), compression=None) as ws:
        assert await _closed_with(ws) == 4400


@pytest.mark.parametrize("frame", [b"\x09", b"\x00\x02\x05ab", b"\x00\x02\x03abc", b"\x01\x03abc"])
async def test_a_malformed_message_closes_only_that_socket(server: LiveServer, frame: bytes):
    async with (
        synced_client(await server.member_url("bad")) as good,
        connect(await server.member_url("bad"), compression=None) as bad,
    ):
        await bad.send(frame)
        assert await _closed_with(bad) == 4400
        good.get("code", type=Text).insert(0, "still fine")
        room = server.services.registry.rooms["bad"]
        await wait_until(lambda: str(room.doc.get("code", type=Text)) == "still fine")


async def test_a_text_frame_closes_4400(server: LiveServer):
    async with connect(await server.member_url("text"), compression=None) as ws:
        await ws.send("hello")
        assert await _closed_with(ws) == 4400


async def test_a_message_over_the_size_limit_closes_1009(tmp_path: Path):
    async with live_server(quick_settings(tmp_path, max_message_bytes=1024)) as server:
        async with connect(await server.member_url("big"), compression=None) as ws:
            await ws.send(b"\x00\x02" + b"\x00" * 2048)
            assert await _closed_with(ws) == 1009


async def test_awareness_over_its_limit_closes_4400(tmp_path: Path):
    async with live_server(quick_settings(tmp_path, max_awareness_bytes=64)) as server:
        async with connect(await server.member_url("fat"), compression=None) as ws:
            _, frame = _presence("A" * 200)
            await ws.send(frame)
            assert await _closed_with(ws) == 4400


async def test_a_connection_over_its_message_rate_closes_4429(tmp_path: Path):
    settings = quick_settings(tmp_path, messages_per_second=5, message_burst=10)
    async with live_server(settings) as server:
        async with connect(await server.member_url("fast"), compression=None) as ws:
            for _ in range(30):
                await ws.send(b"\x03")
            assert await _closed_with(ws) == 4429


async def test_a_slow_reader_is_dropped_without_delaying_the_room(tmp_path: Path):
    settings = quick_settings(tmp_path, send_queue_messages=8)
    async with live_server(settings) as server:
        # max_queue=1: the client stops reading its socket once one frame is buffered.
        slow = await connect(
            await server.member_url("slow"), compression=None, max_queue=1, max_size=None
        )
        async with (
            synced_client(await server.member_url("slow")) as writer,
            synced_client(await server.member_url("slow")) as reader,
        ):
            room = server.services.registry.rooms["slow"]
            text = writer.get("code", type=Text)
            chunk = "x" * 65536
            for i in range(200):
                text.insert(len(text), chunk)
                await asyncio.sleep(0)
                if i % 20 == 0:
                    await asyncio.sleep(0.01)
            await wait_until(
                lambda: len(room.sessions) == 2, timeout=20, what="the slow reader to be dropped"
            )
            await wait_until(
                lambda: len(reader.get("code", type=Text)) == 200 * 65536,
                timeout=20,
                what="the fast reader to get every edit",
            )
        # Once it reads again it finds its connection closed.
        with pytest.raises(ConnectionClosed):
            await _drain(slow)
        await slow.close()


async def test_json_logs_name_the_room_and_connection(server: LiveServer, caplog):
    async with connect(await server.member_url("logged"), compression=None) as ws:
        await ws.send(b"\x09")
        await _closed_with(ws)
    await wait_until(lambda: any("connection closed" in str(r.msg) for r in caplog.records))
    record = next(r for r in caplog.records if "connection closed" in str(r.msg))
    ours = next(h for h in logging.getLogger().handlers if hasattr(h, "_pairpilot_handler"))
    line = json.loads(ours.format(record))
    assert line["room_id"] == "logged"
    assert line["code"] == 4400
    assert line["level"] == "warning"
    assert "connection_id" in line


async def _drain(ws: ClientConnection) -> None:
    async with asyncio.timeout(20):
        while True:
            await ws.recv()


async def test_a_websocket_outside_collab_is_refused_with_404(server: LiveServer):
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"ws://127.0.0.1:{server.port}/elsewhere/room", compression=None)
    assert refused.value.response.status_code == 404


async def test_a_bad_handshake_gets_a_clear_http_error(server: LiveServer):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /collab/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"  # no Sec-WebSocket-Key
    )
    status = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status.startswith(b"HTTP/1.1 400")


async def test_a_fragmented_message_is_reassembled(server: LiveServer):
    async with connect(await server.member_url("pieces"), compression=None) as ws:
        await _recv_until(ws, b"\x00\x00")
        step1 = protocol.sync_step1(Doc().get_state())
        await ws.send([step1[:1], step1[1:2], step1[2:]])  # three frames, one message
        assert (await _recv_until(ws, b"\x00\x01"))[:2] == b"\x00\x01"


def _masked(payload: bytes, *, opcode: Opcode = Opcode.BINARY, fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin=fin).serialize(mask=True)


async def test_messages_sharing_one_segment_are_each_answered(server: LiveServer):
    async with connect(await server.member_url("batch"), compression=None) as ws:
        await _recv_until(ws, b"\x00\x00")
        step1 = protocol.sync_step1(Doc().get_state())
        ws.transport.write(_masked(step1) * 5)  # five frames in one write
        for _ in range(5):
            await _recv_until(ws, b"\x00\x01")


async def test_a_message_sent_one_byte_at_a_time_is_read_whole(server: LiveServer):
    async with connect(await server.member_url("trickle"), compression=None) as ws:
        await _recv_until(ws, b"\x00\x00")
        for byte in _masked(protocol.sync_step1(Doc().get_state())):
            ws.transport.write(bytes([byte]))
            await asyncio.sleep(0.002)
        assert (await _recv_until(ws, b"\x00\x01"))[:2] == b"\x00\x01"


async def test_an_unmasked_frame_closes_1002(server: LiveServer):
    async with connect(await server.member_url("unmasked"), compression=None) as ws:
        await _recv_until(ws, b"\x00\x00")
        ws.transport.write(Frame(Opcode.BINARY, b"\x03").serialize(mask=False))
        assert await _closed_with(ws) == 1002


async def test_a_whole_frame_inside_a_fragmented_message_closes_1002(server: LiveServer):
    async with connect(await server.member_url("interleaved"), compression=None) as ws:
        await _recv_until(ws, b"\x00\x00")
        ws.transport.write(_masked(b"\x00", fin=False) + _masked(b"\x03"))
        assert await _closed_with(ws) == 1002


async def test_a_peer_gone_while_joining_leaves_no_session_behind(server: LiveServer):
    url = await server.member_url("hasty")
    for _ in range(5):
        ws = await connect(url, compression=None)
        ws.transport.abort()  # gone before (or while) the room loads
    await wait_until(
        lambda: (
            not server.services.registry.rooms.get("hasty")
            or not server.services.registry.rooms["hasty"].sessions
        ),
        what="no session left in the room",
    )


async def test_server_shutdown_closes_sockets_with_1012(tmp_path: Path):
    async with live_server(quick_settings(tmp_path)) as server:
        ws = await connect(await server.member_url("restart"), compression=None)
        await _recv_until(ws, b"\x00\x00")
    assert await _closed_with(ws) == 1012
