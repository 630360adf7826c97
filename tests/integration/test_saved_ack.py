"""The "saved" message: sent after the flush that stored a connection's edits, never before."""

import asyncio
from pathlib import Path

import pytest
from pycrdt import Awareness, Doc, Text
from websockets.asyncio.client import ClientConnection, connect

from pairpilot.errors import StorageError
from pairpilot.sync import protocol
from pairpilot.testing import LiveServer, ServerProcess, live_server, quick_settings, wait_until

pytestmark = pytest.mark.anyio


class RawPeer:
    """A y-websocket peer written out by hand, so every frame the server sends is seen."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.doc: Doc = Doc()
        self.saved: list[dict[int, int]] = []
        self.events: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.websocket:
            assert isinstance(frame, bytes)
            clocks = protocol.decode_saved(frame)
            if clocks is not None:
                self.saved.append(clocks)
                self.events.append("saved")
            elif frame[0] == protocol.MessageType.SYNC:
                message = protocol.decode_message(frame)
                if isinstance(message, protocol.SyncStep1):
                    await self.websocket.send(
                        protocol.sync_step2(self.doc.get_update(message.state_vector))
                    )
                elif isinstance(message, protocol.SyncStep2 | protocol.SyncUpdate):
                    self.doc.apply_update(message.update)

    def clock(self) -> int:
        return protocol.decode_state_vector(self.doc.get_state()).get(self.doc.client_id, 0)

    def is_saved(self) -> bool:
        return bool(self.saved) and self.saved[-1].get(self.doc.client_id, 0) >= self.clock()

    async def type(self, text: str) -> None:
        before = self.doc.get_state()
        code = self.doc.get("code", type=Text)
        code.insert(len(code), text)
        await self.websocket.send(protocol.sync_update(self.doc.get_update(before)))

    async def close(self) -> None:
        await self.websocket.close()
        self._reader.cancel()


async def _peer(server: LiveServer | ServerProcess, room: str) -> RawPeer:
    websocket = await connect(await server.member_url(room), compression=None)
    peer = RawPeer(websocket)
    await websocket.send(protocol.sync_step1(peer.doc.get_state()))
    return peer


async def test_the_saved_message_comes_after_the_write_that_stored_the_edit(tmp_path: Path):
    async with live_server(quick_settings(tmp_path, flush_ms=300)) as server:
        store = server.services.store
        original = store.append
        events: list[str] = []

        async def recording_append(batch):  # type: ignore[no-untyped-def]
            await original(batch)
            events.append("stored")

        store.append = recording_append  # type: ignore[method-assign]
        peer = await _peer(server, "acked")
        await wait_until(lambda: bool(peer.saved), what="the saved message after the first sync")
        peer.events.clear()
        await peer.type("hello")
        await wait_until(peer.is_saved, what="hello saved")
        assert events[-1] == "stored"
        stored = (await store.load("acked")).merged()
        assert stored is not None
        check: Doc = Doc()
        check.apply_update(stored)
        assert str(check.get("code", type=Text)) == "hello"
        await peer.close()


async def test_no_saved_message_while_storage_fails_and_one_once_it_recovers(server: LiveServer):
    store = server.services.store
    original = store.append
    failing = True

    async def flaky_append(batch):  # type: ignore[no-untyped-def]
        if failing:
            raise StorageError("disk full")
        return await original(batch)

    store.append = flaky_append  # type: ignore[method-assign]
    peer = await _peer(server, "flaky-ack")
    await wait_until(lambda: bool(peer.saved), what="the first saved message")
    await peer.type("kept in memory")
    await wait_until(lambda: server.services.flusher.failures >= 3, what="failed flushes")
    assert not peer.is_saved()
    failing = False
    await wait_until(peer.is_saved, what="saved after recovery")
    await peer.close()


async def test_the_saved_message_names_only_the_connections_own_client(server: LiveServer):
    other = await _peer(server, "own-clock")
    await other.type("someone else's text ")
    await wait_until(other.is_saved)
    peer = await _peer(server, "own-clock")
    awareness = Awareness(peer.doc)
    awareness.set_local_state({"user": {"name": "me"}})
    update = awareness.encode_awareness_update([peer.doc.client_id])
    await peer.websocket.send(protocol.awareness(update))
    await asyncio.sleep(0.1)
    await peer.type("mine")
    await wait_until(peer.is_saved)
    assert set(peer.saved[-1]) == {peer.doc.client_id}
    await peer.close()
    await other.close()


async def test_a_sockets_first_saved_message_names_every_client_then_only_its_own(
    server: LiveServer,
):
    """A page may wait for edits of its device that reached the room first through another
    socket (another tab, offline too): the first "saved" message a socket gets names every
    client's stored clock; the later ones only the socket's own."""
    other = await _peer(server, "first-names-all")
    await other.type("another tab's text ")
    await wait_until(other.is_saved)
    websocket = await connect(await server.member_url("first-names-all"), compression=None)
    doc: Doc = Doc()
    awareness = Awareness(doc)
    awareness.set_local_state({"user": {"name": "me"}})
    # Its presence comes before its sync: the server knows its own client id from the start.
    await websocket.send(protocol.awareness(awareness.encode_awareness_update([doc.client_id])))
    peer = RawPeer(websocket)
    peer.doc = doc
    await websocket.send(protocol.sync_step1(doc.get_state()))
    await wait_until(lambda: bool(peer.saved), what="the first saved message")
    assert peer.saved[0].get(other.doc.client_id, 0) >= other.clock()
    first = len(peer.saved)
    await peer.type("mine")
    await wait_until(lambda: len(peer.saved) > first and peer.is_saved(), what="saved again")
    assert set(peer.saved[-1]) == {peer.doc.client_id}
    await peer.close()
    await other.close()


async def test_a_peer_with_nothing_new_is_told_at_once_that_all_is_saved(server: LiveServer):
    first = await _peer(server, "nothing-new")
    await first.type("stored text")
    await wait_until(first.is_saved)
    await first.close()
    again = await _peer(server, "nothing-new")
    await wait_until(lambda: bool(again.saved), timeout=2, what="saved after an empty step 2")
    await again.close()


async def test_an_edit_reported_saved_survives_kill_9_at_once(tmp_path: Path):
    # A long flush interval: "saved" can only come from the flush, not from luck.
    env = {"PAIRPILOT_DATA_DIR": str(tmp_path), "PAIRPILOT_FLUSH_MS": "1500"}
    process = ServerProcess(env)
    process.start()
    try:
        peer = await _peer(process, "crash-ack")
        await wait_until(lambda: bool(peer.saved), what="the first saved message")
        await peer.type("survives kill -9")
        await wait_until(peer.is_saved, what="saved")
        process.kill()
        await peer.close()
        process.start()
        fresh = await _peer(process, "crash-ack")
        await wait_until(
            lambda: str(fresh.doc.get("code", type=Text)) == "survives kill -9",
            what="the saved edit after the restart",
        )
        await fresh.close()
    finally:
        process.kill()


async def test_edits_of_an_earlier_page_brought_by_sync_step_2_are_named_as_saved(
    server: LiveServer,
):
    # A page that restored a copy kept on its device sends an earlier page's edits (another
    # client id) in its step 2; its "saved" messages must name that id too, or it never sees
    # them stored (client/README.md, "This device's copies").
    earlier: Doc = Doc()
    earlier.get("code", type=Text).insert(0, "typed offline in a closed tab")
    earlier_clock = protocol.decode_state_vector(earlier.get_state())[earlier.client_id]
    websocket = await connect(await server.member_url("restored-copy"), compression=None)
    peer = RawPeer(websocket)
    peer.doc.apply_update(earlier.get_update())
    awareness = Awareness(peer.doc)
    awareness.set_local_state({"user": {"name": "me"}})
    await websocket.send(
        protocol.awareness(awareness.encode_awareness_update([peer.doc.client_id]))
    )
    await websocket.send(protocol.sync_step1(peer.doc.get_state()))
    await wait_until(
        lambda: any(saved.get(earlier.client_id, 0) >= earlier_clock for saved in peer.saved),
        what="a saved message naming the earlier page's client",
    )
    assert all(set(saved) <= {peer.doc.client_id, earlier.client_id} for saved in peer.saved)
    await peer.close()
