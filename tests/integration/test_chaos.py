"""Chaos (issue #14): processes killed at random under 20 stock clients; nothing saved is lost.

Three `pairpilot serve` processes share one PostgreSQL database and one Redis of the test's own.
Twenty stock Node clients (npm ``yjs`` + ``y-websocket``, ``tests/interop/chaos_client.mjs``) in
five rooms type unique tokens for a minute, each on a random process and moving to another random
one whenever its socket drops. Meanwhile the test SIGKILLs a random process every few seconds and
starts it again on the same port, and restarts Redis once (empty: it keeps nothing on disk). An
edit is *acknowledged* once the server's "saved" message covers it. Afterwards every client, a
fresh client on each process and the database itself hold the same text, with every acknowledged
token exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from pycrdt import Doc, Text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.conftest import RedisProcess

from pairpilot.storage.sql import create_engine, read_stored_room
from pairpilot.testing import ServerProcess, join, sign_in, synced_client, wait_until

pytestmark = pytest.mark.anyio

INTEROP = Path(__file__).parent.parent / "interop"
TOKEN = re.compile(r"c\d\d-\d{6};")
PROCESSES = 3
ROOMS = 5
CLIENTS_PER_ROOM = 4
TYPING_S = 60.0
KILL_EVERY_S = (4.0, 6.0)
REDIS_DOWN_S = 1.5
SETTLE_MS = 30_000
START_TIMEOUT_S = 60.0  # a start costs seconds of CPU; two at once on a busy machine, more
OVERALL_S = 180.0  # about 95 s on a quiet machine; restarts slow down most on a busy one
DURABILITY_EVERY_S = 2.0


class LoggedServer(ServerProcess):
    """A ServerProcess whose output goes to a log file (appended across restarts).

    ``close`` kills it for good, also when a start is still under way in another thread (the
    test's overall timeout can strike during one): that start then finds it closed.
    """

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        super().__init__(env)
        self.log_path = log_path
        self.starts = 0
        self.closed = False
        self._lock = threading.Lock()

    def start(self, timeout: float = 30.0) -> None:
        """Start as ServerProcess does, with stdout and stderr written to ``log_path``."""
        command = [sys.executable, "-m", "pairpilot", "serve", "--port", str(self.port)]
        with self._lock, self.log_path.open("ab") as log:
            if self.closed:
                raise RuntimeError("the server was closed")
            self.starts += 1
            log.write(f"--- start {self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            process = self._process = subprocess.Popen(
                command, env=self._env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if httpx.get(f"{self.http_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise TimeoutError("server did not become healthy")

    def kill(self) -> None:
        """SIGKILL, with a line in the log."""
        with self._lock:
            if self._process is not None:
                with self.log_path.open("ab") as log:
                    log.write(f"--- SIGKILL at {time.time():.3f}\n".encode())
            super().kill()

    def close(self) -> None:
        """Kill it and refuse any later start."""
        with self._lock:
            self.closed = True
        self.kill()

    def warnings(self) -> list[str]:
        """The log's warning and error lines."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if re.search(r'"level": ?"(warning|error|critical)"', line)]


class ChaosClients:
    """``chaos_client.mjs``: the twenty stock clients in one Node process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def send(self, command: str, **fields: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"do": command, **fields}).encode() + b"\n")
        await self.process.stdin.drain()

    async def expect(self, event: str, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        assert raw, f"chaos_client.mjs exited before {event!r}"
        answer: dict[str, Any] = json.loads(raw)
        assert answer["event"] == event, answer
        return answer

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@dataclass
class Chaos:
    """What the driver did to the processes and Redis."""

    kills: list[tuple[float, int]] = field(default_factory=list)
    skipped: int = 0  # kills not done because only one process was up
    redis_restarts: int = 0
    restart_s: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Client:
    """A signed-in member for chaos_client.mjs."""

    name: str
    room: str
    token: str


async def _sign_in_clients(
    servers: Sequence[LoggedServer], rooms: Sequence[str], rng: random.Random
) -> list[Client]:
    """Four members per room, each signed in and joined on a random process (first: owner)."""
    clients: list[Client] = []
    for room in rooms:
        for _ in range(CLIENTS_PER_ROOM):
            name = f"c{len(clients):02d}"
            base = rng.choice(servers).http_url
            token = await sign_in(base, name)
            answer = await join(base, room, token)
            expected = "owner" if len(clients) % CLIENTS_PER_ROOM == 0 else "editor"
            assert answer["member"]["role"] == expected
            clients.append(Client(name, room, token))
    return clients


async def _start_clients(node: str, config: Path, stderr: IO[bytes]) -> ChaosClients:
    process = await asyncio.create_subprocess_exec(
        node,
        str(INTEROP / "chaos_client.mjs"),
        str(config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env={"PATH": "/usr/bin:/bin"},
        limit=64 * 1024 * 1024,  # the last answer carries every client's whole text
    )
    return ChaosClients(process)


async def _kill_and_restart(
    servers: Sequence[LoggedServer],
    seconds: float,
    rng: random.Random,
    chaos: Chaos,
    background: list[asyncio.Task[Any]],
) -> list[asyncio.Task[None]]:
    """For ``seconds``, SIGKILL a random live process every few seconds and start it again
    (same port) in a task added to ``background``; never the last one up. Returns the
    restarts still in flight."""

    async def restart(index: int, killed_at: float) -> None:
        await asyncio.to_thread(servers[index].start, START_TIMEOUT_S)
        chaos.restart_s.append(round(time.monotonic() - killed_at, 1))

    started = time.monotonic()
    restarting: dict[int, asyncio.Task[None]] = {}
    next_kill = started + rng.uniform(*KILL_EVERY_S)
    while True:
        await asyncio.sleep(max(0.0, next_kill - time.monotonic()))
        if time.monotonic() - started >= seconds:
            return list(restarting.values())
        next_kill += rng.uniform(*KILL_EVERY_S)
        for index, task in list(restarting.items()):
            if task.done():
                task.result()  # a process that did not come back fails the test here
                del restarting[index]
        up = [index for index in range(len(servers)) if index not in restarting]
        if len(up) < 2:
            chaos.skipped += 1
            continue
        victim = rng.choice(up)
        killed_at = time.monotonic()
        await asyncio.to_thread(servers[victim].kill)
        chaos.kills.append((round(killed_at - started, 1), victim))
        restarting[victim] = asyncio.create_task(restart(victim, killed_at))
        background.append(restarting[victim])


async def _restart_redis(redis_process: RedisProcess, after_s: float, chaos: Chaos) -> None:
    await asyncio.sleep(after_s)
    await asyncio.to_thread(redis_process.stop)
    await asyncio.sleep(REDIS_DOWN_S)
    await asyncio.to_thread(redis_process.start)
    chaos.redis_restarts += 1


def _doc_text(update: bytes | None) -> str:
    doc: Doc = Doc()
    if update:
        doc.apply_update(update)
    return str(doc.get("code", type=Text))


async def _stored_texts(engine: AsyncEngine, rooms: Sequence[str]) -> dict[str, str]:
    """Each room's text as PostgreSQL holds it (snapshot + log), read directly.

    One REPEATABLE READ transaction: a compaction committing between the snapshot's read and
    the log's would otherwise make rows it folded in look missing.
    """
    async with engine.connect() as connection:
        conn = await connection.execution_options(isolation_level="REPEATABLE READ")
        return {room: _doc_text((await read_stored_room(conn, room)).merged()) for room in rooms}


async def _watch_durability(
    clients: ChaosClients,
    engine: AsyncEngine,
    members: Sequence[Client],
    stop: asyncio.Event,
    missing: dict[str, float],
) -> int:
    """Until ``stop``: ask the clients what was acknowledged, then read the database; every
    acknowledged token must be there already. Records in ``missing`` each one that was not
    (and when); returns how many checks ran."""
    rooms = sorted({member.room for member in members})
    checks = 0
    while not stop.is_set():
        await clients.send("acks")
        acked = (await clients.expect("acks", 10))["acked"]
        asked_at = time.time()  # to match against the servers' log timestamps
        stored = {
            room: set(TOKEN.findall(text))
            for room, text in (await _stored_texts(engine, rooms)).items()
        }
        for member, count in zip(members, acked, strict=True):
            for n in range(count):
                token = f"{member.name}-{n:06d};"
                if token not in stored[member.room]:
                    missing.setdefault(token, asked_at)
        checks += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), DURABILITY_EVERY_S)
    return checks


async def _fresh_texts(
    servers: Sequence[LoggedServer], rooms: Sequence[str], expected: Mapping[str, str]
) -> dict[tuple[int, str], str]:
    """A fresh client per process and room; its text once it equals ``expected`` (or 10 s)."""
    found: dict[tuple[int, str], str] = {}
    for index, server in enumerate(servers):
        token = await sign_in(server.http_url, "checker")
        for room in rooms:
            await join(server.http_url, room, token)
            async with synced_client(server.ws_url(room, token)) as doc:
                code = doc.get("code", type=Text)
                with contextlib.suppress(TimeoutError):  # the caller compares and reports
                    await wait_until(lambda code=code, room=room: str(code) == expected[room], 10)
                found[index, room] = str(code)
    return found


async def _live_rooms(server: LoggedServer) -> float:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        response = await client.get("/metrics")
    match = re.search(r"^pairpilot_live_rooms (\S+)$", response.text, re.MULTILINE)
    assert match, "pairpilot_live_rooms is missing from /metrics"
    return float(match.group(1))


async def _until_unloaded(servers: Sequence[LoggedServer], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any([await _live_rooms(server) for server in servers]):
        assert time.monotonic() < deadline, "rooms still loaded after every client left"
        await asyncio.sleep(0.2)


def _tokens(client: Mapping[str, Any], start: int, stop: int) -> list[str]:
    return [f"{client['name']}-{n:06d};" for n in range(start, stop)]


def _figures(
    chaos: Chaos, reports: Sequence[Mapping[str, Any]], final: Mapping[str, str]
) -> dict[str, object]:
    """The run's figures, counted against each room's final text."""
    counts = {room: Counter(TOKEN.findall(text)) for room, text in final.items()}
    acked, unacked, stop_unacked = [], [], []
    for client in reports:
        room = counts[client["room"]]
        acked += [(room, token) for token in _tokens(client, 0, client["acked"])]
        unacked += [(room, token) for token in _tokens(client, client["acked"], client["typed"])]
        stop_unacked += [
            (room, token) for token in _tokens(client, client["acked_at_stop"], client["typed"])
        ]
    return {
        "processes killed": len(chaos.kills),
        "redis restarts": chaos.redis_restarts,
        "edits typed": sum(client["typed"] for client in reports),
        "edits acknowledged by the end of typing": sum(c["acked_at_stop"] for c in reports),
        "edits acknowledged": len(acked),
        "acknowledged edits lost": sum(room[token] == 0 for room, token in acked),
        "edits duplicated": sum(n - 1 for room in counts.values() for n in room.values() if n > 1),
        "edits never acknowledged": len(unacked),
        "unacknowledged edits lost": sum(room[token] == 0 for room, token in unacked),
        "edits unacknowledged at the end of typing": len(stop_unacked),
        "of those, lost": sum(room[token] == 0 for room, token in stop_unacked),
        "acknowledged edits lost, examples": [t for room, t in acked if room[t] == 0][:10],
        "edits duplicated, examples": [
            t for room in counts.values() for t, n in room.items() if n > 1
        ][:10],
    }


@dataclass
class Run:
    """The typing minute: what the driver did and what the database reads found."""

    chaos: Chaos = field(default_factory=Chaos)
    typed: int = 0
    missing: dict[str, float] = field(default_factory=dict)
    checks: int = 0


@dataclass
class Outcome:
    """What a run ended with: the clients' reports and every other reading of the texts."""

    run: Run
    settled: dict[str, Any]
    fresh: dict[tuple[int, str], str]
    stored: dict[str, str]
    stored_after_unload: dict[str, str]
    phases: dict[str, float]  # seconds each phase took

    @property
    def final(self) -> dict[str, str]:
        """Each room's text as its stock clients ended with it."""
        return {client["room"]: client["text"] for client in self.settled["clients"]}


async def _type_under_chaos(
    clients: ChaosClients,
    servers: Sequence[LoggedServer],
    redis_process: RedisProcess,
    engine: AsyncEngine,
    members: Sequence[Client],
    rng: random.Random,
) -> Run:
    """Type for TYPING_S while processes are killed and Redis restarts; return once every
    process and Redis are back."""
    run = Run()
    background: list[asyncio.Task[Any]] = []
    try:
        await clients.send("go")
        redis_restart = asyncio.create_task(_restart_redis(redis_process, TYPING_S / 2, run.chaos))
        background.append(redis_restart)
        stop_watching = asyncio.Event()
        watcher = asyncio.create_task(
            _watch_durability(clients, engine, members, stop_watching, run.missing)
        )
        background.append(watcher)
        restarting = await _kill_and_restart(servers, TYPING_S, rng, run.chaos, background)
        stop_watching.set()
        run.checks = await watcher  # it reads the clients' answers: done before the next command
        await clients.send("stop")
        run.typed = (await clients.expect("stopped", 10))["typed"]
        await asyncio.gather(redis_restart, *restarting)
    finally:
        for task in background:
            task.cancel()  # only those left behind by a failure are still running
    return run


async def _run(
    node: str,
    servers: Sequence[LoggedServer],
    redis_process: RedisProcess,
    engine: AsyncEngine,
    folder: Path,
    seed: int,
) -> Outcome:
    rng = random.Random(seed)
    rooms = [f"chaos-{uuid.uuid4().hex[:8]}-{r}" for r in range(ROOMS)]
    phases: dict[str, float] = {}
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        phases[name], mark = round(time.monotonic() - mark, 1), time.monotonic()

    await asyncio.gather(*(asyncio.to_thread(server.start, START_TIMEOUT_S) for server in servers))
    phase("start 3 processes")
    members = await _sign_in_clients(servers, rooms, rng)
    config = folder / "chaos.json"
    bases = [f"ws://127.0.0.1:{server.port}/collab" for server in servers]
    members_json = [vars(member) for member in members]
    config.write_text(json.dumps({"seed": seed, "bases": bases, "clients": members_json}))
    with (folder / "node.log").open("wb") as node_log:
        clients = await _start_clients(node, config, node_log)
    try:
        await clients.expect("ready", 40)
        phase("sign in, connect 20 clients")
        run = await _type_under_chaos(clients, servers, redis_process, engine, members, rng)
        phase("type under chaos, last restarts")
        await clients.send("settle", settleMs=SETTLE_MS)
        settled = await clients.expect("settled", SETTLE_MS / 1000 + 10)
        phase("settle")
        final = {client["room"]: client["text"] for client in settled["clients"]}
        fresh = await _fresh_texts(servers, rooms, final)
        stored = await _stored_texts(engine, rooms)
        phase("read fresh clients and the database")
        await clients.send("quit")
        await asyncio.wait_for(clients.process.wait(), 10)
    finally:
        await clients.close()
    await _until_unloaded(servers, 15)
    stored_after_unload = await _stored_texts(engine, rooms)
    phase("unload, read the database")
    return Outcome(run, settled, fresh, stored, stored_after_unload, phases)


def _report(outcome: Outcome, figures: Mapping[str, object], servers: Sequence[LoggedServer]):
    reports = outcome.settled["clients"]
    lines = [f"{name}: {value}" for name, value in figures.items()]
    lines += [
        f"kills (s into typing, process): {outcome.run.chaos.kills}",
        f"kills skipped (only one process up): {outcome.run.chaos.skipped}",
        f"seconds from kill to healthy again: {outcome.run.chaos.restart_s}",
        f"settled: {outcome.settled['settled']} in {outcome.settled['settle_ms']} ms",
        f"phases (s): {outcome.phases}",
        f"reconnects: {sum(client['connects'] for client in reports) - len(reports)}",
    ]
    for index, server in enumerate(servers):
        warnings = server.warnings()
        lines.append(f"server {index}: {len(warnings)} warning/error lines in {server.log_path}")
        lines += [f"  {line[:300]}" for line in warnings[:5]]
    print("\nchaos test\n  " + "\n  ".join(lines))  # noqa: T201 - the figures are its report


async def test_twenty_stock_clients_lose_no_saved_edit_while_processes_and_redis_die(
    node, migrated_postgres, private_redis, tmp_path: Path
):
    began = time.monotonic()
    redis_url, redis_process = private_redis
    seed = random.randrange(2**31)
    env = {
        "DATABASE_URL": migrated_postgres,
        "REDIS_URL": redis_url,
        "PAIRPILOT_JWT_SECRET": secrets.token_urlsafe(32),
        "PAIRPILOT_DATA_DIR": str(tmp_path),
        "PAIRPILOT_FLUSH_MS": "100",
        "PAIRPILOT_IDLE_UNLOAD_MS": "2000",
        "PAIRPILOT_FLUSH_RETRY_MAX_MS": "500",
    }
    servers = [LoggedServer(env, tmp_path / f"server-{i}.log") for i in range(PROCESSES)]
    engine = create_engine(migrated_postgres.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with asyncio.timeout(OVERALL_S):
            outcome = await _run(node, servers, redis_process, engine, tmp_path, seed)
    finally:
        for server in servers:
            server.close()
        await engine.dispose()
    final = outcome.final
    figures = {
        "seed": seed,
        "seconds in all": round(time.monotonic() - began),
        **_figures(outcome.run.chaos, outcome.settled["clients"], final),
        "database reads during the run": outcome.run.checks,
        "acknowledged edits missing from a database read during the run": len(outcome.run.missing),
        "of those, examples": sorted(outcome.run.missing)[:10],
    }
    _report(outcome, figures, servers)

    assert outcome.run.typed == figures["edits typed"]
    assert outcome.settled["errors"] == []
    for client in outcome.settled["clients"]:  # every stock client holds its room's one text
        assert client["text"] == final[client["room"]], f"{client['name']} disagrees"
    for (index, room), text in outcome.fresh.items():
        assert text == final[room], f"a fresh client on process {index} disagrees on {room}"
    for room, text in final.items():
        assert "".join(TOKEN.findall(text)) == text, f"{room} holds more than whole tokens"
    assert figures["acknowledged edits lost"] == 0
    missing = sorted(outcome.run.missing)
    assert not missing, f"{len(missing)} acknowledged edits not in the database, e.g. {missing[:5]}"
    assert figures["edits duplicated"] == 0
    assert outcome.settled["settled"], "clients did not all settle (synced, saved, agreeing)"
    assert outcome.stored == final, "the database lacks edits the clients were told were saved"
    assert outcome.stored_after_unload == final, "the database lost edits at the last unloads"
