"""Test-suite helpers beyond pairpilot.testing: CI's rule for missing services, an API user,
a room with sessions on recording sockets, a flusher (no server)."""

import asyncio
import base64
import io
import json
import os
import signal
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pycrdt import Doc
from websockets.asyncio.client import ClientConnection

from pairpilot.access import Grant
from pairpilot.bus import LocalBus
from pairpilot.observability.metrics import Metrics
from pairpilot.storage import RoomStore
from pairpilot.storage.deletion import room_rows
from pairpilot.sync.flusher import Flusher
from pairpilot.sync.protocol import COMMENTS_PREFIX
from pairpilot.sync.room import OnUpdate, Room
from pairpilot.sync.session import Session, TokenBucket
from pairpilot.testing import LiveServer

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def zip_of(entries: dict[str, bytes]) -> bytes:
    """A deflated zip of ``entries`` (name → bytes; a name ending in ``/`` is a folder)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def kill_the_process(*_: object) -> None:
    """A merge-worker job that dies mid-job: SIGKILL to the process running it."""
    os.kill(os.getpid(), signal.SIGKILL)


def unavailable(what: str) -> None:
    """Fail in CI (a missing service is a broken CI), skip with one line elsewhere."""
    if IN_CI:
        pytest.fail(f"CI requires {what}")
    pytest.skip(what)


@dataclass(frozen=True)
class User:
    """A signed-in test user and its calls."""

    base: str
    token: str
    id: str
    name: str

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self._headers() | kwargs.pop("headers", {})
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as client:
            return await client.request(method, path, headers=headers, **kwargs)

    async def join(self, room: str) -> httpx.Response:
        return await self.call("POST", f"/api/rooms/{room}/join")


async def new_user(base: str, name: str = "tester") -> User:
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post("/api/auth/anonymous", json={"name": name})
        response.raise_for_status()
        body = response.json()
    return User(base, body["access_token"], body["user"]["id"], body["user"]["name"])


class RecordingSocket:
    """What a session writes, as the bytes handed to the transport (a Socket without one)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def send_frame(self, wire: bytes) -> None:
        self.writes.append(wire)

    def close(self, code: int, reason: str) -> None:
        pass


def local_room(room_id: str = "r", on_update: OnUpdate = lambda *_: None) -> Room:
    """A room on the in-process bus, its updates handed to ``on_update``."""
    return Room(room_id, Doc(), bus=LocalBus(), on_update=on_update, max_awareness_bytes=1024)


def editor(socket: RecordingSocket, room_id: str = "r") -> Session:
    """A session that may write, with no message-rate limit to speak of."""
    grant = Grant(user_id="u", can_write=True)
    return Session(socket, room_id=room_id, grant=grant, rate=TokenBucket(1e9, 1e9))


def joined_editors(room: Room, count: int) -> list[tuple[Session, RecordingSocket]]:
    """``count`` editors joined to ``room``, each with the socket that records its writes."""
    joined = []
    for _ in range(count):
        socket = RecordingSocket()
        session = editor(socket, room.id)
        room.join(session)
        joined.append((session, socket))
    return joined


def flusher_over(store: RoomStore, *, flush_ms: int = 200, retry_max_ms: int = 1000) -> Flusher:
    """A flusher writing to ``store`` that never compacts or versions a room on its own."""
    return Flusher(
        store,
        flush_ms=flush_ms,
        retry_max_ms=retry_max_ms,
        compact_min_bytes=1 << 30,
        compact_max_updates=1 << 30,
        version_min_s=1 << 30,
        metrics=Metrics(),
    )


async def seed_room_rows(
    connection: asyncpg.Connection, room: str, owner: str, editor: str, viewer: str
) -> None:
    """A room with a snapshot, a log row, a version and the owner's comment thread, an owner,
    an editor and a viewer.

    Written straight in SQL as the persistence writer would, for the RLS tests.
    """
    await connection.execute("INSERT INTO rooms (id, owner_id) VALUES ($1, $2)", room, owner)
    await connection.executemany(
        "INSERT INTO room_members (room_id, user_id, role) VALUES ($1, $2, $3)",
        [(room, owner, "owner"), (room, editor, "editor"), (room, viewer, "viewer")],
    )
    await connection.execute(
        "INSERT INTO room_snapshots (room_id, snapshot_b64) VALUES ($1, 'AAA=')", room
    )
    await connection.execute(
        "INSERT INTO room_updates (room_id, update) VALUES ($1, '\\x00')", room
    )
    await connection.execute(
        "INSERT INTO room_versions (room_id, kind, state, size_bytes, created_at)"
        " VALUES ($1, 'auto', '\\x00', 1, now())",
        room,
    )
    await connection.execute(
        "INSERT INTO room_comments (id, room_id, file, anchor_start, anchor_end, quote,"
        " author_id, body, created_at) VALUES ($1, $2, 'main.py', 'AAA=', 'AAA=', 'x', $3,"
        " 'a thread', now())",
        f"t-{room}"[:32],
        room,
        owner,
    )


# A deleted or moved-away room's rows: none left, and its id retired by a tombstone.
RETIRED_ROWS = {
    "rooms": 0,
    "room_members": 0,
    "room_snapshots": 0,
    "room_updates": 0,
    "room_versions": 0,
    "room_fences": 0,
    "room_comments": 0,
    "room_tombstones": 1,
}


async def stored_rows(server: LiveServer, room: str) -> dict[str, int]:
    """How many rows the room has in each of its tables (storage.deletion.room_rows)."""
    async with server.services.store.engine.connect() as conn:
        return await room_rows(conn, room)


# Comment threads (issue #25): a valid thread body, and the comments messages a socket hears.
ANCHOR = {
    "start": base64.b64encode(b"\x01\x02start").decode(),
    "end": base64.b64encode(b"\x01\x02end").decode(),
}


def thread_body(**overrides: object) -> dict[str, object]:
    """A new thread's body for ``POST …/comments``, with ``overrides``."""
    body: dict[str, object] = {
        "file": "main.py",
        "anchor": ANCHOR,
        "quote": "print(1)",
        "body": "Why print here?",
    }
    body.update(overrides)
    return body


async def comment_events(websocket: ClientConnection, count: int) -> list[dict[str, object]]:
    """The next ``count`` comments messages the socket receives (other frames are skipped)."""
    events: list[dict[str, object]] = []
    while len(events) < count:
        frame = await websocket.recv()
        if isinstance(frame, bytes) and frame.startswith(COMMENTS_PREFIX):
            # [2, 4] + varuint length + JSON: skip the varuint.
            pos = 2
            while frame[pos] & 0x80:
                pos += 1
            events.append(json.loads(frame[pos + 1 :]))
    return events


async def eventually(read, expected, what: str, timeout: float = 20) -> None:
    """Poll the async ``read()`` until it returns ``expected``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (found := await read()) != expected:
        if loop.time() > deadline:
            raise TimeoutError(f"{what}: {found!r}")
        await asyncio.sleep(0.05)


def certificates(folder: Path, san: str) -> tuple[Path, Path, Path]:
    """A CA, and a key and certificate it signed for ``san`` (``IP:…``, ``DNS:…``), by openssl."""
    ca_key, ca, key, csr, cert = (
        folder / name for name in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
    )
    ext = folder / "san.ext"
    ext.write_text(f"subjectAltName={san}\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={san.split(':', 1)[1]}",
        "-keyout", str(key), "-out", str(csr))  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return ca, key, cert
