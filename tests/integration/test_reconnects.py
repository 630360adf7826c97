"""Reconnects and lost server state: stock clients come back and nothing is lost or doubled.

The bug class behind jupyter-collaboration #594 and jupyterlab #10852: a client that holds
edits the server no longer has (an unloaded room, a restarted server, a database restored from
an older backup, a socket that went half-open while a laptop slept) reconnects, and its sync
must bring the edits back exactly once. The clients are stock: npm ``yjs`` + ``y-websocket``
(``tests/interop/crowd.mjs``, driven one command at a time) and pycrdt's own provider.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import shutil
import signal
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Text, merge_updates
from tests.support import User, new_user

from pairpilot.testing import (
    LiveServer,
    ServerProcess,
    live_server,
    quick_settings,
    synced_client,
    wait_until,
)

pytestmark = pytest.mark.anyio

INTEROP = Path(__file__).parent.parent / "interop"
TOKEN = re.compile(r"\[\d+\.\d+\]")
# What the Python clients type, in crowd.mjs's token format, as client 99.
PYTHON = 99


class Crowd:
    """``crowd.mjs``: stock Yjs clients in one Node process, one command and answer at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def do(self, op: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        await self.process.stdin.drain()
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        assert raw, f"crowd.mjs exited during {op!r}"
        answer: dict[str, Any] = json.loads(raw)
        assert answer["event"] == "ok", answer
        assert answer["errors"] == [], answer["errors"]
        return answer

    def signal(self, number: int) -> None:
        self.process.send_signal(number)


@asynccontextmanager
async def crowd(node: str, base: str, room: str, tokens: Sequence[str]) -> AsyncIterator[Crowd]:
    process = await asyncio.create_subprocess_exec(
        node,
        str(INTEROP / "crowd.mjs"),
        f"{base.replace('http://', 'ws://')}/collab",
        room,
        ",".join(tokens),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"},
        limit=64 * 1024 * 1024,  # an answer carries every client's whole text
    )
    try:
        yield Crowd(process)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGCONT)  # in case a test froze it and then failed
            assert process.stdin is not None
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def _text(doc: Doc) -> str:
    return str(doc.get("code", type=Text))


def _doc_text(update: bytes | None) -> str:
    doc: Doc = Doc()
    if update:
        doc.apply_update(update)
    return _text(doc)


def exactly_once(text: str, typed: dict[int, int]) -> None:
    """``text`` is made of whole tokens only, and holds each typed token exactly once."""
    found = TOKEN.findall(text)
    assert "".join(found) == text, "the text holds something other than whole tokens"
    doubled = [token for token, count in Counter(found).items() if count > 1]
    assert doubled == [], f"duplicated: {doubled[:10]}"
    expected = {f"[{client}.{n}]" for client, count in typed.items() for n in range(count)}
    assert set(found) == expected, f"lost: {sorted(expected - set(found))[:10]}"


def type_token(doc: Doc, n: int) -> None:
    """Type the Python client's token ``n`` between two tokens, as crowd.mjs does."""
    code = doc.get("code", type=Text)
    places = [0] + [match.end() for match in TOKEN.finditer(str(code))]
    code.insert(random.choice(places), f"[{PYTHON}.{n}]")


async def _snapshot_text(user: User, room: str) -> str:
    """The room's text per ``GET snapshot``: live when the room is open, stored otherwise."""
    response = await user.call("GET", f"/api/rooms/{room}/snapshot")
    assert response.status_code == 200, response.text
    snapshot = response.json()["snapshot_b64"]
    return _doc_text(base64.b64decode(snapshot) if snapshot else None)


async def _live_rooms(http_url: str) -> float:
    async with httpx.AsyncClient(base_url=http_url) as client:
        response = await client.get("/metrics")
    match = re.search(r"^pairpilot_live_rooms (\S+)$", response.text, re.MULTILINE)
    assert match, "pairpilot_live_rooms is missing from /metrics"
    return float(match.group(1))


async def _until(read: Callable[[], Awaitable[object]], expected: object) -> None:
    """Poll an async reading until it gives ``expected`` (10 s at most)."""
    for _ in range(500):
        found = await read()
        if found == expected:
            return
        await asyncio.sleep(0.02)
    assert found == expected


async def _until_unloaded(http_url: str) -> None:
    await _until(lambda: _live_rooms(http_url), 0)


def _sqlite_text(database: Path, room: str) -> str:
    """The room's text as the SQLite file itself holds it (snapshot + update log)."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        snapshot = conn.execute(
            "SELECT snapshot_b64 FROM room_snapshots WHERE room_id = ?", (room,)
        ).fetchone()
        updates = conn.execute(
            'SELECT "update" FROM room_updates WHERE room_id = ? ORDER BY id', (room,)
        ).fetchall()
    parts = ([base64.b64decode(snapshot[0])] if snapshot and snapshot[0] else []) + [
        bytes(row[0]) for row in updates
    ]
    return _doc_text(merge_updates(*parts) if parts else None)


def _restore(backup: Path, database: Path) -> None:
    """Put a stopped server's SQLite database back to ``backup`` (its WAL files go too)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, database)


BASE = "<shared base line>"
ADA = [f"[ada {n}]" for n in range(8)]
BOB = [f"[bob {n}]" for n in range(5)]


async def test_offline_edits_survive_an_idle_unload_and_a_restart_exactly_once(
    node, tmp_path: Path
):
    env = {
        "PAIRPILOT_DATA_DIR": str(tmp_path),
        "PAIRPILOT_IDLE_UNLOAD_MS": "300",
        "PAIRPILOT_FLUSH_MS": "50",
        "PAIRPILOT_LOG_LEVEL": "WARNING",
    }
    server = ServerProcess(env)
    server.start()
    try:
        ada = await new_user(server.http_url, "Ada")
        await ada.join("laptop")
        async with crowd(node, server.http_url, "laptop", [ada.token]) as stock:
            async with synced_client(await server.member_url("laptop", "Bob")) as bob:
                code = bob.get("code", type=Text)
                code.insert(0, BASE)
                await stock.do("until", text=BASE)
                await stock.do("disconnect")  # Ada goes offline and keeps typing (at the end)
                for token in ADA[:4]:
                    await stock.do("type", text=token, at="end")
                for token in BOB:  # Bob, online, types at the start
                    code.insert(0, token)
                bob_typed = "".join(reversed(BOB)) + BASE
                await _until(lambda: _snapshot_text(ada, "laptop"), bob_typed)  # the server has it
            # Nobody is connected: the room is flushed, compacted and dropped from memory.
            await _until_unloaded(server.http_url)
            assert await _snapshot_text(ada, "laptop") == bob_typed  # stored
            for token in ADA[4:6]:
                await stock.do("type", text=token, at="end")
            server.stop()
            # Ada's client tries to come back while the server is down, and keeps typing.
            await stock.do("connect")
            for token in ADA[6:]:
                await stock.do("type", text=token, at="end")
            await asyncio.sleep(0.5)
            server.start()
            expected = "".join(reversed(BOB)) + BASE + "".join(ADA)
            state = await stock.do("until", text=expected, ms=20_000)
            assert state["texts"] == [expected]
            async with synced_client(await server.member_url("laptop", "fresh")) as fresh:
                await wait_until(lambda: _text(fresh) == expected, what="a fresh client")
            assert await _snapshot_text(ada, "laptop") == expected
        await _until_unloaded(server.http_url)
        assert await _snapshot_text(ada, "laptop") == expected  # now from storage
        server.stop()
        assert _sqlite_text(tmp_path / "pairpilot.sqlite3", "laptop") == expected
    finally:
        server.kill()


async def test_edits_lost_by_a_restore_from_an_older_backup_come_back_from_the_client(
    node, tmp_path: Path
):
    env = {
        "PAIRPILOT_DATA_DIR": str(tmp_path),
        "PAIRPILOT_FLUSH_MS": "50",
        "PAIRPILOT_LOG_LEVEL": "WARNING",
    }
    database = tmp_path / "pairpilot.sqlite3"
    backup = tmp_path / "backup-t0.sqlite3"
    server = ServerProcess(env)
    server.start()
    try:
        ada = await new_user(server.http_url, "Ada")
        await ada.join("restored")
        bob = await new_user(server.http_url, "Bob")
        await bob.join("restored")  # both memberships exist at T0
        async with crowd(node, server.http_url, "restored", [ada.token]) as stock:
            async with synced_client(server.ws_url("restored", bob.token)) as bob_doc:
                code = bob_doc.get("code", type=Text)
                code.insert(0, BASE)
                await stock.do("until", text=BASE)
                await wait_until(lambda: _sqlite_text(database, "restored") == BASE, what="T0")
                # T0: a hot backup through SQLite's backup API (consistent with the WAL).
                with (
                    closing(sqlite3.connect(database)) as live,
                    closing(sqlite3.connect(backup)) as t0,
                ):
                    live.backup(t0)
                for token in ADA[:4]:
                    await stock.do("type", text=token, at="end")
                for token in BOB[:3]:
                    code.insert(0, token)
                saved = "".join(reversed(BOB[:3])) + BASE + "".join(ADA[:4])
                await stock.do("until", text=saved)
                await wait_until(lambda: _text(bob_doc) == saved)
                # The edits are saved: the database has them.
                await wait_until(lambda: _sqlite_text(database, "restored") == saved)
            server.stop()  # Ada's socket is closed with 1012; she stays offline and types on
            await stock.do("disconnect")
            for token in ADA[4:6]:
                await stock.do("type", text=token, at="end")
            _restore(backup, database)  # the operator restores the backup taken at T0
            assert _sqlite_text(database, "restored") == BASE
            server.start()
            # Carol arrives first and sees only T0's state; she edits inside the base line.
            carol_user = await new_user(server.http_url, "Carol")
            await carol_user.join("restored")
            async with synced_client(server.ws_url("restored", carol_user.token)) as carol:
                carol_code = carol.get("code", type=Text)
                await wait_until(lambda: _text(carol) == BASE, what="the restored state")
                carol_code.insert(5, "(carol)")
                await _until(
                    lambda: _snapshot_text(carol_user, "restored"), BASE[:5] + "(carol)" + BASE[5:]
                )
                await stock.do("connect")  # Ada comes back: her sync step 2 restores everything
                expected = (
                    "".join(reversed(BOB[:3])) + BASE[:5] + "(carol)" + BASE[5:] + "".join(ADA[:6])
                )
                state = await stock.do("until", text=expected, ms=20_000)
                assert state["texts"] == [expected]
                await wait_until(lambda: _text(carol) == expected, what="Carol's replica")
            async with synced_client(await server.member_url("restored", "fresh")) as fresh:
                await wait_until(lambda: _text(fresh) == expected, what="a fresh client")
        server.stop()
        assert _sqlite_text(database, "restored") == expected
    finally:
        server.kill()


# Long enough that the stock client's watchdog (no message for 30 s: close and reconnect) has
# tripped when the process wakes up; see the test's docstring for why it stands for minutes.
FREEZE_S = 36


async def test_a_client_frozen_past_its_timeout_resumes_and_converges(node, server: LiveServer):
    """A laptop that slept: its socket stayed half-open, then the client woke up.

    SIGSTOP freezes the stock client with its socket open; the server keeps that socket (it has
    no timeout of its own: nothing but TCP would notice, and TCP has nothing to send but the
    other client's small edits, which the kernel's buffers hold) while another client edits. On
    SIGCONT, if the client's timers run before its socket is read, its watchdog sees more than
    30 s of silence, closes the old socket and reconnects; if the socket is read first, the
    edits the kernel kept arrive and the connection goes on. A freeze of minutes goes the
    same way, as long as the edits made meanwhile fit the server's send queue (past it the
    server drops the socket with 1013 and the client finds it closed on waking, which the
    reconnect storms below cover): 36 s is the shortest freeze with the behaviour of a long one.
    """
    ada = await new_user(server.http_url, "Ada")
    await ada.join("asleep")
    async with (
        crowd(node, server.http_url, "asleep", [ada.token]) as stock,
        synced_client(await server.member_url("asleep", "Bob")) as bob,
    ):
        await stock.do("synced")
        room = server.services.registry.rooms["asleep"]
        await stock.do("autotype", every_ms=40)
        typed = 0
        for _ in range(10):
            type_token(bob, typed)
            typed += 1
            await asyncio.sleep(0.03)
        stock.signal(signal.SIGSTOP)  # mid-typing
        started = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - started < FREEZE_S:
            type_token(bob, typed)
            typed += 1
            await asyncio.sleep(1)
            assert len(room.sessions) == 2, "the sleeping client's socket is still open"
        stock.signal(signal.SIGCONT)
        state = await stock.do("settle", ms=20_000)
        # Where SIGSTOP caught the client decides what it does first on waking: inside its
        # timers, the watchdog sees 36 s of silence, closes the socket and reconnects; inside
        # its wait for I/O, it reads the edits the kernel kept and the socket simply goes on.
        # Either way it must come back whole.
        assert (state["closes"], state["connects"]) in (([[None]], [2]), ([[]], [1])), state
        text = state["texts"][0]
        exactly_once(text, {0: state["typed"][0], PYTHON: typed})
        await wait_until(lambda: _text(bob) == text, what="Bob's replica")
        assert _text(room.doc) == text
        await wait_until(lambda: len(room.sessions) == 2, what="the old socket to be gone")


STORMS = 100
CLIENTS = 10
# How each storm drops every socket of the room at once, and the close code the client sees.
STORM_KINDS = {
    "client-close": 1005,  # the client sends a close frame without a code; the server echoes it
    "client-terminate": 1006,  # the client cuts its TCP connection
    "server-restart": 1012,  # what the server sends every socket when it stops
    "server-abort": 1006,  # the server cuts the TCP connections
}


async def test_a_hundred_reconnect_storms_converge_every_time(node, tmp_path: Path):
    settings = quick_settings(tmp_path, log_level="WARNING")
    async with live_server(settings) as server:
        registry = server.services.registry
        store = server.services.store
        loads = 0
        original_load = store.load

        async def counting_load(room_id: str):  # type: ignore[no-untyped-def]
            nonlocal loads
            loads += 1
            return await original_load(room_id)

        store.load = counting_load  # type: ignore[method-assign]
        users = [await new_user(server.http_url, f"typist {i}") for i in range(CLIENTS)]
        for user in users:
            await user.join("storm")
        async with crowd(node, server.http_url, "storm", [u.token for u in users]) as stock:
            state = await stock.do("synced")
            seen_closes = [0] * CLIENTS
            codes: Counter[tuple[str, object]] = Counter()
            for storm in range(STORMS):
                kind = list(STORM_KINDS)[storm % len(STORM_KINDS)]
                # Every other round of kinds, the room is unloaded while nobody is connected
                # (the idle delay is shorter than the clients' 200 ms first reconnect delay);
                # in the others it stays in memory and the reconnects race each other into it.
                registry._idle_s = 0.05 if (storm // len(STORM_KINDS)) % 2 else 60.0
                before = list(state["connects"])
                await stock.do("autotype", every_ms=40)
                await asyncio.sleep(0.1)
                if kind.startswith("client"):
                    await stock.do("drop", how=kind.removeprefix("client-"))
                else:
                    for session in list(registry.rooms["storm"].sessions.values()):
                        connection = session._socket
                        if kind == "server-restart":
                            connection.shutdown()  # type: ignore[attr-defined]
                        else:
                            connection._transport.abort()  # type: ignore[attr-defined]
                await asyncio.sleep(0.3)  # they keep typing while they reconnect
                state = await stock.do("settle", ms=20_000)
                texts = state["texts"]
                assert len(set(texts)) == 1, f"storm {storm} ({kind}): clients differ"
                exactly_once(texts[0], dict(enumerate(state["typed"])))
                room = registry.rooms["storm"]
                assert _text(room.doc) == texts[0], f"storm {storm} ({kind}): server differs"
                await wait_until(lambda room=room: len(room.sessions) == CLIENTS)
                for i, closes in enumerate(state["closes"]):
                    new = closes[seen_closes[i] :]
                    seen_closes[i] = len(closes)
                    codes.update((kind, code) for code in new)
                    assert new == [STORM_KINDS[kind]], f"storm {storm} ({kind}), client {i}: {new}"
                    assert state["connects"][i] == before[i] + 1
        print(f"storms: {STORMS}, room loads: {loads}, closes: {dict(codes)}")  # noqa: T201
        # The unload-while-everyone-is-away storms did unload and reload the room.
        assert loads >= STORMS // 4
