"""Room affinity: with `serve --workers 2`, every socket of a room is served by its home worker.

Real processes: the supervisor and its workers, the machine's Redis, stock pycrdt clients and
raw sockets; which process holds a socket is read with ``ss``.
"""

import asyncio
import base64
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from pycrdt import Doc, Text, create_sync_message, create_update_message
from tests.support import eventually
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from pairpilot.testing import (
    ServerProcess,
    join,
    sign_in,
    socket_holders,
    synced_socket,
    wait_until,
)
from pairpilot.web.affinity import home_of

pytestmark = pytest.mark.anyio
WORKERS = 2


def _listening(pid: int, index: int) -> bool:
    """Worker ``pid`` listens on its Unix socket for passed connections."""
    found = subprocess.run(
        ["ss", "-Hxlp"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return any(f"worker-{index}.sock" in line and f"pid={pid}," in line for line in found)


def _ready(server: ServerProcess) -> bool:
    workers = server.workers_by_index()
    return len(workers) == WORKERS and all(_listening(pid, i) for i, pid in workers.items())


@pytest.fixture
def workers(tmp_path: Path, redis_url: str) -> Iterator[ServerProcess]:
    """`serve --workers 2` with Redis and room affinity (the default), both workers ready."""
    server = ServerProcess(
        {"PAIRPILOT_DATA_DIR": str(tmp_path), "REDIS_URL": redis_url}, workers=WORKERS
    )
    server.start()
    try:
        deadline = time.monotonic() + 30
        while not _ready(server):
            assert time.monotonic() < deadline, "both workers ready"
            time.sleep(0.05)
        yield server
    finally:
        os.kill(server.pid, signal.SIGCONT)  # a test that stopped the supervisor
        server.stop()


def _rooms(prefix: str, per_home: int) -> list[str]:
    """Room ids, ``per_home`` of them homed on each worker."""
    rooms: list[str] = []
    candidate = 0
    while len(rooms) < per_home * WORKERS:
        room = f"{prefix}-{candidate}"
        candidate += 1
        if sum(home_of(r, WORKERS) == home_of(room, WORKERS) for r in rooms) < per_home:
            rooms.append(room)
    return rooms


def _room_homed_on(prefix: str, index: int) -> str:
    return next(room for room in _rooms(prefix, 1) if home_of(room, WORKERS) == index)


async def _member_urls(server: ServerProcess, room: str, count: int) -> list[str]:
    return [await server.member_url(room, f"m{i}") for i in range(count)]


async def _metrics_of_each_worker(server: ServerProcess, running: int = WORKERS) -> dict[int, str]:
    """``/metrics`` of every running worker: scraped anew until each has answered once."""
    seen: dict[int, str] = {}
    for _ in range(200):
        async with httpx.AsyncClient(base_url=server.http_url) as client:  # a new connection
            text = (await client.get("/metrics")).text
        match = re.search(r"^pairpilot_worker (\S+)$", text, re.MULTILINE)
        assert match is not None, "a worker's metrics name its index"
        seen[int(float(match[1]))] = text
        if len(seen) == running:
            return seen
    raise AssertionError(f"only workers {sorted(seen)} answered /metrics")


def _sample(metrics: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    return float(match[1]) if match else 0.0


async def _held_by(server: ServerProcess, client_port: int, pid: int) -> None:
    await wait_until(
        lambda: socket_holders(server.port, client_port) == {pid},
        timeout=10,
        what=f"the socket from port {client_port} held by worker {pid} alone",
    )


def _text(doc: Doc) -> str:
    return str(doc.get("code", type=Text))


def _type(doc: Doc, chunk: str) -> None:
    text = doc.get("code", type=Text)
    text.insert(len(text), chunk)


async def test_every_socket_of_a_room_is_held_by_its_home_worker(workers, room):
    rooms = _rooms(room, per_home=2)  # 4 rooms, 2 homed on each worker, 3 clients each
    pids = workers.workers_by_index()
    async with AsyncExitStack() as stack:
        clients: list[tuple[str, Doc]] = []
        for room_id in rooms:
            for url in await _member_urls(workers, room_id, 3):
                doc, websocket = await stack.enter_async_context(synced_socket(url))
                await _held_by(workers, websocket.local_address[1], pids[home_of(room_id, 2)])
                clients.append((room_id, doc))
        for index, (_room_id, doc) in enumerate(clients):
            _type(doc, f"[{index}]")

        def converged() -> bool:
            for room_id in rooms:
                mine = [(i, doc) for i, (r, doc) in enumerate(clients) if r == room_id]
                marks = {f"[{i}]" for i, _doc in mine}
                if not all(all(m in _text(doc) for m in marks) for _i, doc in mine):
                    return False
            return True

        await wait_until(converged, timeout=20, what="every room's clients to converge")
        # Each room is live on its home worker only.
        live = [
            _sample(m, "pairpilot_live_rooms")
            for m in (await _metrics_of_each_worker(workers)).values()
        ]
        assert sum(live) == len(rooms), live
    # Stored once: each client's edit is in its room's stored document exactly once. The
    # snapshot may be answered by the other worker, from storage, and the clients did not wait
    # for "saved": the home worker's flush is waited for (a duplicate never matches).
    token = await sign_in(workers.http_url, "reader")
    for room_id in rooms:
        await join(workers.http_url, room_id, token)
        expected = sorted(f"[{i}]" for i, (r, _doc) in enumerate(clients) if r == room_id)

        async def stored_marks(room_id: str = room_id) -> list[str]:
            return sorted(re.findall(r"\[\d+\]", await _stored_text(workers, room_id, token)))

        await eventually(stored_marks, expected, f"{room_id}'s edits, each stored once")


async def _stored_text(server: ServerProcess, room_id: str, token: str) -> str:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        answer = await client.get(
            f"/api/rooms/{room_id}/snapshot", headers={"Authorization": f"Bearer {token}"}
        )
    answer.raise_for_status()
    doc: Doc = Doc()
    doc.apply_update(base64.b64decode(answer.json()["snapshot_b64"]))
    return _text(doc)


async def _converge(docs: list[Doc], marks: list[str]) -> None:
    for doc, mark in zip(docs, marks, strict=True):
        _type(doc, mark)
    await wait_until(
        lambda: all(all(m in _text(doc) for m in marks) for doc in docs),
        timeout=20,
        what="the room's clients to converge",
    )


async def test_a_room_is_served_while_its_home_worker_is_down_and_goes_home_after_its_restart(
    workers, room
):
    room_id = _room_homed_on(room, 0)
    before = workers.workers_by_index()
    home, survivor = before[0], before[1]
    urls = await _member_urls(workers, room_id, 6)
    os.kill(workers.pid, signal.SIGSTOP)  # the supervisor restarts nothing meanwhile
    os.kill(home, signal.SIGKILL)
    await wait_until(lambda: _listeners(workers.port) == 1, timeout=10, what="the home gone")
    async with AsyncExitStack() as stack:
        down: list[Doc] = []
        for url in urls[:3]:  # every connection now lands on the survivor: served there
            doc, websocket = await stack.enter_async_context(synced_socket(url))
            await _held_by(workers, websocket.local_address[1], survivor)
            down.append(doc)
        await _converge(down, ["<a>", "<b>", "<c>"])
        metrics = (await _metrics_of_each_worker(workers, running=1))[1]
        fallbacks = 'pairpilot_room_handoff_fallbacks_total{reason="home_unreachable"}'
        assert _sample(metrics, fallbacks) >= 3

        os.kill(workers.pid, signal.SIGCONT)
        await wait_until(lambda: _ready(workers), timeout=60, what="the home worker restarted")
        restarted = workers.workers_by_index()[0]
        assert restarted != home
        back: list[Doc] = []
        for url in urls[3:]:  # new connections go home again, wherever they land
            doc, websocket = await stack.enter_async_context(synced_socket(url))
            await _held_by(workers, websocket.local_address[1], restarted)
            back.append(doc)
        # The room is now on both workers: the bus carries edits between old and new sockets.
        await _converge([*down, *back], ["<d>", "<e>", "<f>", "<g>", "<h>", "<i>"])


def _listeners(port: int) -> int:
    """Listening sockets on ``port``: a killed worker's is gone once its last thread exits."""
    found = subprocess.run(
        ["ss", "-Htln", f"( sport = :{port} )"], capture_output=True, text=True, check=False
    )
    return len(found.stdout.splitlines())


async def _close_code(url: str) -> int | None:
    async with asyncio.timeout(10), connect(url, compression=None) as websocket:
        try:
            await websocket.recv()
            await websocket.wait_closed()
        except ConnectionClosed:
            pass
        return websocket.close_code


async def test_a_refused_socket_gets_its_refusal_whether_it_was_passed_on_or_not(workers, room):
    room_id = _room_homed_on(room, 0)
    owner = await sign_in(workers.http_url, "owner")
    await join(workers.http_url, room_id, owner)
    stranger = await sign_in(workers.http_url, "stranger")
    bad_token = workers.ws_url(room_id, "not-a-jwt")
    not_member = workers.ws_url(room_id, stranger)
    # 16 sockets spread by the kernel: about half land on worker 1 and are passed to worker 0.
    codes = [await _close_code(url) for url in [bad_token, not_member] * 8]
    assert codes == [4401, 4403] * 8
    passed = sum(
        _sample(m, 'pairpilot_room_handoffs_total{direction="passed"}')
        for m in (await _metrics_of_each_worker(workers)).values()
    )
    assert passed > 0


@asynccontextmanager
async def _raw_upgrade(
    server: ServerProcess, url: str
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, ClientProtocol, int]]:
    """A TCP connection that has sent ``url``'s upgrade request, once the server has read it."""
    client = ClientProtocol(parse_uri(url))
    client.send_request(client.connect())
    request = b"".join(client.data_to_send())
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    client_port = writer.get_extra_info("sockname")[1]
    try:
        writer.write(request)
        await writer.drain()
        await wait_until(
            lambda: _read_by_server(server.port, client_port, len(request)),
            timeout=10,
            what="the server to read the upgrade request",
        )
        yield reader, writer, client, client_port
    finally:
        writer.close()


def _read_by_server(port: int, client_port: int, size: int) -> bool:
    """The server's end has received ``size`` bytes and has none left unread."""
    found = subprocess.run(
        [
            *("ss", "-Htni", "state", "established"),
            f"( sport = :{port} and dport = :{client_port} )",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    received = re.search(r"bytes_received:(\d+)", found)
    unread = found.split(maxsplit=1)[0] if found.strip() else None
    return received is not None and int(received[1]) >= size and unread == "0"


async def test_bytes_sent_right_behind_the_upgrade_request_reach_the_home_worker(workers, room):
    room_id = _room_homed_on(room, 0)
    home = workers.workers_by_index()[0]
    urls = await _member_urls(workers, room_id, 7)
    async with synced_socket(urls[0]) as (watcher, _websocket):
        for index, url in enumerate(urls[1:]):  # ~half land on worker 1 and are passed on
            mark = f"<{index}>"
            async with _raw_upgrade(workers, url) as (reader, writer, client, client_port):
                # Sent before the answer, while the socket may be on its way to its home.
                local = Doc()
                _type(local, mark)
                for message in (
                    create_sync_message(local),
                    create_update_message(local.get_update()),
                ):
                    writer.write(Frame(Opcode.BINARY, message).serialize(mask=True, extensions=[]))
                await writer.drain()
                await _sync_step_2(reader, client)  # the answer to the sync step 1 sent early
                await _held_by(workers, client_port, home)
                await wait_until(
                    lambda m=mark: m in _text(watcher), timeout=10, what=f"{mark} at the peer"
                )


async def _sync_step_2(reader: asyncio.StreamReader, client: ClientProtocol) -> None:
    """Read the 101 and frames until the server's sync step 2 (0, 1)."""
    async with asyncio.timeout(10):
        while True:
            data = await reader.read(65536)
            assert data, "the server closed the connection"
            client.receive_data(data)
            for event in client.events_received():
                if isinstance(event, Response):
                    assert event.status_code == 101
                elif isinstance(event, Frame) and event.data[:2] == b"\x00\x01":
                    return


async def test_a_stopping_home_worker_closes_the_sockets_passed_to_it_with_1012(workers, room):
    room_id = _room_homed_on(room, 0)
    home = workers.workers_by_index()[0]
    async with AsyncExitStack() as stack:
        sockets = []
        for url in await _member_urls(workers, room_id, 6):  # ~half passed on by worker 1
            _doc, websocket = await stack.enter_async_context(synced_socket(url))
            await _held_by(workers, websocket.local_address[1], home)
            sockets.append(websocket)
        os.kill(workers.pid, signal.SIGTERM)  # every worker stops gracefully
        for websocket in sockets:
            async with asyncio.timeout(30):
                await websocket.wait_closed()
        assert [websocket.close_code for websocket in sockets] == [1012] * 6
