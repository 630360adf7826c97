"""Soak: room open/close and connect/disconnect cycles give back everything they took.

A real PairPilot (uvicorn on 127.0.0.1) runs in a process of its own (``soak.py serve``), where
its registry can be read and its store made to fail. Raw ``websockets`` clients doing the
minimum y-websocket handshake, many at once, in a second process (``soak.py drive``), make
``room_cycles`` room loads (each followed by its unload) and ``connects`` connect/disconnect
cycles. Mixed in: bad tokens (4401), non-members (4403), peers that disconnect while their join
or their room's load is in progress, and storage that fails (load, append, compact) for one
room in five, one second in three. Afterwards nothing may be left: no live room, no socket (the
registry, ``/metrics`` and the kernel's socket table), no load, unload or idle timer, no dirty
room, no bus subscription, no task beyond the server's own, no Room, Session or connection
object, and the server process's RSS within ``rss_bound_mb`` of what it was after a warm-up.

    uv run --locked python bench/soak.py            # 10,000 room cycles, 50,000 connects
    uv run --locked python bench/soak.py --quick    # what tests/integration/test_soak.py runs

The full run's figures are in bench/README.md ("Soak").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pycrdt import (
    Awareness,
    Doc,
    Text,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    read_message,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pairpilot.errors import StorageError
from pairpilot.storage.store import StoredRoom
from pairpilot.sync.room import Room
from pairpilot.sync.session import Session
from pairpilot.testing import LiveServer, live_server, quick_settings
from pairpilot.web.services import Services
from pairpilot.web.ws import CollabConnection

SCRIPT = Path(__file__).resolve()
HERE = SCRIPT.parent
ROOT = HERE.parent
RESULTS = HERE / "results"


@dataclass(frozen=True)
class Plan:
    """How much to do, and how much memory may stay behind."""

    room_cycles: int = 10_000  # room loads (each followed by its unload)
    connects: int = 50_000  # connect/disconnect cycles, every kind below
    cold_rooms: int = 1_000  # rooms the room cycles go round (one in five fails while failing)
    hot_rooms: int = 20  # rooms kept open by an anchor socket; most connects go there
    slow_rooms: int = 50  # rooms whose load takes 20 ms: peers leave while it runs
    concurrency: int = 64  # connect workers in the driver
    room_concurrency: int = 4  # room-cycle workers in the driver
    # Room cycles per second, at most: below what the server unloads per second under this
    # load, so that a room is unloaded before its next visit (see bench/README.md, "Soak").
    room_rate: float = 60.0
    fail_on_s: float = 1.0  # storage fails for the failing rooms this long ...
    fail_off_s: float = 2.0  # ... then works this long, over and over; never at the end
    rss_bound_mb: float = 40.0  # end RSS may exceed the RSS after the warm-up by this much
    round_bound_mb: float = 10.0  # ... and the last round may add this much to the one before
    warmup: int = 2_000  # connects (and a tenth as many room cycles) before RSS is measured
    rounds: int = 2  # the cycles above are made in this many equal rounds, RSS after each


# The leftovers that are objects still alive after a full collection (the others are state).
OBJECTS = ("room objects", "session objects", "connections")
QUICK = Plan(
    room_cycles=1_000, connects=5_000, cold_rooms=300, warmup=500, rss_bound_mb=20, round_bound_mb=5
)

# The connect cycles, by index modulo 20.
KINDS = (
    ["member"] * 10  # join a hot room, sync, send presence, close
    + ["member-abort"] * 2  # the same, then cut the TCP connection instead of closing
    + ["bad-token"] * 2  # 4401
    + ["stranger"] * 2  # a valid token, not a member: 4403
    + ["leave-in-join"] * 2  # cut the connection right after the upgrade, during the join
    + ["leave-in-load"] * 2  # the same on a slow room: during its load
)


@dataclass
class Report:
    """What a soak did and what it left behind."""

    plan: dict[str, Any]
    seconds: float
    room_loads: int
    room_unloads: int
    cold_room_loads: int
    connects: int
    outcomes: dict[str, int]
    injected_failures: dict[str, int]
    rss_start_mb: float
    rss_rounds_mb: list[float]  # after each round, once the server came to rest
    rss_peak_mb: float
    rss_end_mb: float
    leftovers: dict[str, int] = field(default_factory=dict)
    # Types whose live instances grew most between the warm-up and the end (what RSS held).
    object_growth: dict[str, int] = field(default_factory=dict)


def rss_mb(pid: int | str = "self") -> float:
    """VmRSS of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def tcp_sockets(port: int) -> Counter[str]:
    """The kernel's sockets on ``port`` (local side) by state, TIME_WAIT and LISTEN excluded."""
    names = {"01": "established", "02": "syn_sent", "03": "syn_recv", "04": "fin_wait1"}
    names |= {"05": "fin_wait2", "07": "close", "08": "close_wait", "09": "last_ack"}
    names |= {"0B": "closing"}
    found: Counter[str] = Counter()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] in names:
                    found[names[fields[3]]] += 1
    return found


# ---------------------------------------------------------------------------------------------
# The server side (this process)


class Faults:
    """Storage faults and slowness, wrapped around the live server's store (and counters)."""

    def __init__(
        self, services: Services, failing: set[str], slow: set[str], cold: set[str]
    ) -> None:
        # Half the failing rooms fail their loads and appends, the other half their compactions
        # (an append failure stops an unload before its compaction, so those need rooms of
        # their own).
        ordered = sorted(failing)
        self.failing, self.failing_compactions = set(ordered[::2]), set(ordered[1::2])
        self.slow, self.cold = slow, cold
        self.active = False  # while True, storage fails for the failing rooms
        self.injected: Counter[str] = Counter()
        self.loads = self.cold_loads = self.unloads = 0
        self._cold_target = 0
        self._cold_reached = asyncio.Event()
        store, bus = services.store, services.bus
        self._load, self._append, self._compact = store.load, store.append, store.compact
        self._unsubscribe = bus.unsubscribe
        store.load, store.append, store.compact = self.load, self.append, self.compact
        bus.unsubscribe = self.unsubscribe

    def _fail(self, what: str) -> None:
        self.injected[what] += 1
        raise StorageError(f"injected {what} failure")

    async def load(self, room_id: str) -> StoredRoom:
        """The store's load: slow for the slow rooms, failing for the failing ones."""
        if room_id in self.slow:
            await asyncio.sleep(0.02)
        if self.active and room_id in self.failing:
            self._fail("load")
        stored = await self._load(room_id)
        self.loads += 1
        self.cold_loads += room_id in self.cold
        if self.cold_loads >= self._cold_target:
            self._cold_reached.set()
        return stored

    async def append(self, batch: Sequence[tuple[str, bytes]]) -> None:
        """The store's append: the whole batch fails when it holds a failing room."""
        if self.active and any(room_id in self.failing for room_id, _ in batch):
            self._fail("append")
        await self._append(batch)

    async def compact(self, room_id: str, *, checkpoint: bool = False, size_hint: int = 0) -> int:
        """The store's compaction: failing for the failing rooms."""
        if self.active and room_id in self.failing_compactions:
            self._fail("compact")
        return await self._compact(room_id, checkpoint=checkpoint, size_hint=size_hint)

    def unsubscribe(self, room_id: str) -> None:
        """The bus's unsubscribe, which Room.close calls: one room unloaded."""
        self.unloads += 1
        self._unsubscribe(room_id)

    async def cold_loads_reach(self, target: int) -> None:
        """Return once ``target`` cold rooms have been loaded in all."""
        self._cold_target = target
        self._cold_reached.clear()
        if self.cold_loads < target:
            await self._cold_reached.wait()

    async def cycle(self, on_s: float, off_s: float) -> None:
        """Fail for ``on_s``, work for ``off_s``, forever (cancel it to stop, working)."""
        try:
            while True:
                await asyncio.sleep(off_s)
                self.active = True
                await asyncio.sleep(on_s)
                self.active = False
        finally:
            self.active = False


async def _sign_in(http: httpx.AsyncClient, name: str) -> str:
    response = await http.post("/api/auth/anonymous", json={"name": name})
    response.raise_for_status()
    return str(response.json()["access_token"])


async def _join_all(http: httpx.AsyncClient, token: str, rooms: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    semaphore = asyncio.Semaphore(16)

    async def join(room: str) -> None:
        async with semaphore:
            response = await http.post(f"/api/rooms/{room}/join", headers=headers)
            response.raise_for_status()

    await asyncio.gather(*(join(room) for room in rooms))


def _live_objects() -> Counter[str]:
    kinds = {Room: "room objects", Session: "session objects", CollabConnection: "connections"}
    found: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = kinds.get(type(obj))
        if name is not None:
            found[name] += 1
    return found


def _state_left(
    services: Services, port: int, before: Counter[str], metrics: dict[str, float]
) -> dict[str, int]:
    registry, flusher = services.registry, services.flusher
    left = {
        "live rooms": len(registry.rooms),
        "registry sockets": sum(len(room.sessions) for room in registry.rooms.values()),
        "metrics live rooms": int(metrics.get("pairpilot_live_rooms", -1)),
        "metrics open sockets": int(metrics.get("pairpilot_open_sockets", -1)),
        "loads in flight": len(registry._loading),  # noqa: SLF001
        "unloads in flight": len(registry._unloads),  # noqa: SLF001
        "idle timers": len(registry._idle),  # noqa: SLF001
        "dirty rooms": len(flusher._dirty),  # noqa: SLF001
        "bus subscriptions": len(getattr(services.bus, "_replicas", {})),
        "extra tasks": max(0, len(asyncio.all_tasks()) - before["tasks"]),
    }
    return left | {f"kernel sockets {state}": n for state, n in tcp_sockets(port).items()}


def _type_counts() -> Counter[str]:
    gc.collect()
    return Counter(type(obj).__qualname__ for obj in gc.get_objects())


def _baseline() -> Counter[str]:
    """What the process holds before the soak (other servers of a test session, the harness)."""
    gc.collect()
    return _live_objects() + Counter({"tasks": len(asyncio.all_tasks())})


async def _metrics(base_url: str) -> dict[str, float]:
    # A connection of its own, closed by the server: a kept-alive one would count as a socket.
    async with httpx.AsyncClient(base_url=base_url) as http:
        text = (await http.get("/metrics", headers={"Connection": "close"})).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("pairpilot_live_rooms ", "pairpilot_open_sockets ")):
            name, value = line.split()
            values[name] = float(value)
    return values


async def _quiet(server: LiveServer, before: Counter[str]) -> dict[str, int]:
    """What is left once the server has had 30 s at most to come to rest (nothing, we hope).

    Rooms, sockets, tasks and timers are polled until they are all gone; objects are then
    counted once, after a full garbage collection (waiting longer would not free them).
    """
    deadline = time.monotonic() + 30
    while True:
        metrics = await _metrics(server.http_url)
        left = _state_left(server.services, server.port, before, metrics)
        if not any(left.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    gc.collect()
    left |= {kind: max(0, n - before[kind]) for kind, n in _live_objects().items()}
    return {name: n for name, n in left.items() if n}


async def _drive(config: dict[str, Any], faults: Faults, room_target: int) -> dict[str, int]:
    """Run the driver process until its connects are done and ``room_target`` cold loads."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "drive",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None  # noqa: S101
    assert child.stdout is not None  # noqa: S101
    child.stdin.write(json.dumps(config).encode() + b"\n")
    await child.stdin.drain()
    reached = asyncio.create_task(faults.cold_loads_reach(faults.cold_loads + room_target))
    exited = asyncio.create_task(child.wait())
    await asyncio.wait({reached, exited}, return_when=asyncio.FIRST_COMPLETED)
    reached.cancel()
    if not exited.done():
        child.stdin.write(b"stop-rooms\n")
        await child.stdin.drain()
    out = await child.stdout.read()
    if await child.wait() != 0:
        raise RuntimeError(f"the driver failed: {out.decode()[-2000:]}")
    outcomes: dict[str, int] = json.loads(out.decode().splitlines()[-1])
    return outcomes


async def soak(plan: Plan, data_dir: Path) -> Report:
    """Run ``plan`` against a fresh server with its data in ``data_dir``; what it found."""
    settings = quick_settings(
        data_dir,
        idle_unload_ms=50,
        flush_ms=50,
        flush_retry_max_ms=200,
        log_level="ERROR",
        # One owner makes every room of the soak and holds hundreds of its sockets at once: the
        # rooms and connection quotas are not what it measures (tests/integration/test_abuse.py).
        rooms_per_anonymous_user=100_000,
        room_create_rate="1000000/hour",
        user_max_connections=100_000,
    )
    rng = random.Random(15)
    cold = [f"cold-{i}" for i in range(plan.cold_rooms)]
    hot = [f"hot-{i}" for i in range(plan.hot_rooms)]
    slow = [f"slow-{i}" for i in range(plan.slow_rooms)]
    async with live_server(settings) as server:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as http:
            owner = await _sign_in(http, "soak owner")
            stranger = await _sign_in(http, "soak stranger")
            await _join_all(http, owner, cold + hot + slow)
        faults = Faults(server.services, set(cold[::5]), set(slow), set(cold))
        config = {
            "url": f"ws://127.0.0.1:{server.port}/collab",
            "owner": owner,
            "stranger": stranger,
            "hot": hot,
            "slow": slow,
            "cold": rng.sample(cold, len(cold)),
            "concurrency": plan.concurrency,
            "room_concurrency": plan.room_concurrency,
            "room_rate": plan.room_rate,
        }
        before = _baseline()
        # Warm-up: the first connections, loads and flushes fill caches that stay (SQLAlchemy's
        # statement cache, the allocator's arenas); RSS is measured after it.
        await _drive({**config, "connects": plan.warmup}, faults, plan.warmup // 10)
        warm = await _quiet(server, before)
        if warm:
            raise RuntimeError(f"left behind by the warm-up: {warm}")
        rss_start = rss_mb()
        types_start = _type_counts()
        loads, unloads, cold_loads = faults.loads, faults.unloads, faults.cold_loads
        peak = rss_start

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss_mb())
                await asyncio.sleep(0.25)

        started = time.monotonic()
        sampler = asyncio.create_task(sample())
        outcomes: Counter[str] = Counter()
        rounds: list[float] = []
        left: dict[str, int] = {}
        for _ in range(plan.rounds):  # the same work again: a leak grows again, a cache does not
            failures = asyncio.create_task(faults.cycle(plan.fail_on_s, plan.fail_off_s))
            try:
                outcomes += await _drive(
                    {**config, "connects": plan.connects // plan.rounds},
                    faults,
                    plan.room_cycles // plan.rounds,
                )
            finally:
                failures.cancel()
                await asyncio.gather(failures, return_exceptions=True)
            left = await _quiet(server, before + Counter({"tasks": 1}))  # + the RSS sampler
            rounds.append(round(rss_mb(), 1))
            if left:
                break
        seconds = time.monotonic() - started
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        growth = _type_counts()
        growth.subtract(types_start)
        return Report(
            plan=asdict(plan),
            seconds=round(seconds, 1),
            room_loads=faults.loads - loads,
            room_unloads=faults.unloads - unloads,
            cold_room_loads=faults.cold_loads - cold_loads,
            connects=sum(n for kind, n in outcomes.items() if kind.startswith("connect:")),
            outcomes=dict(outcomes),
            injected_failures=dict(faults.injected),
            rss_start_mb=round(rss_start, 1),
            rss_rounds_mb=rounds,
            rss_peak_mb=round(max(peak, rss_mb()), 1),
            rss_end_mb=round(rss_mb(), 1),
            leftovers=left,
            object_growth={name: n for name, n in growth.most_common(12) if n > 0},
        )


# ---------------------------------------------------------------------------------------------
# The driver (a child process): raw websockets clients, the minimum y-websocket handshake


async def _connect_cycle(config: dict[str, Any], index: int, tally: Counter[str]) -> None:
    kind = KINDS[index % len(KINDS)]
    rng = random.Random(index)
    token = {"bad-token": "not-a-token", "stranger": config["stranger"]}.get(kind, config["owner"])
    room = rng.choice(config["slow"] if kind == "leave-in-load" else config["hot"])
    url = f"{config['url']}/{room}?token={token}"
    tally[f"connect:{kind}"] += 1
    started = time.monotonic()
    try:
        await _converse(url, kind, index, tally)
    finally:
        tally[f"ms: {kind}"] += round((time.monotonic() - started) * 1000)


async def _converse(url: str, kind: str, index: int, tally: Counter[str]) -> None:
    async with connect(url, compression=None, max_size=None, open_timeout=20) as ws:
        if kind.startswith("leave-in"):
            ws.transport.abort()  # the join (or the room's load) is still running
            return
        try:
            if kind in {"bad-token", "stranger"}:
                await asyncio.wait_for(ws.recv(), 20)  # the server closes the socket
                tally[f"{kind}: not refused"] += 1
                return
            doc: Doc = Doc()
            await ws.send(create_sync_message(doc))
            await _sync_step2(ws)
            presence = Awareness(doc)
            presence.set_local_state({"user": {"name": f"soak {index}"}})
            update = presence.encode_awareness_update([doc.client_id])
            await ws.send(create_awareness_message(update))
            tally[f"{kind}: synced"] += 1
        except ConnectionClosed as exc:
            tally[f"{kind}: closed {exc.rcvd.code if exc.rcvd else None}"] += 1
            return
        if kind == "member-abort":
            ws.transport.abort()


async def _sync_step2(ws: ClientConnection) -> bytes:
    """Read until the server's sync step 2; its update."""
    while True:
        message = await asyncio.wait_for(ws.recv(), 20)
        if isinstance(message, bytes) and message[:2] == b"\x00\x01":
            return read_message(message[2:])


async def _room_cycle(config: dict[str, Any], room: str, tally: Counter[str]) -> None:
    url = f"{config['url']}/{room}?token={config['owner']}"
    async with connect(url, compression=None, max_size=None, open_timeout=20) as ws:
        doc: Doc = Doc()
        try:
            await ws.send(create_sync_message(doc))
            doc.apply_update(await _sync_step2(ws))
            text = doc.get("code", type=Text)
            text.insert(len(text), "y")
            await ws.send(create_update_message(doc.get_update()))
        except ConnectionClosed as exc:
            tally[f"room: closed {exc.rcvd.code if exc.rcvd else None}"] += 1
            return
        tally["room: synced and edited"] += 1


async def _counted(
    tally: Counter[str], cycle: Callable[..., Awaitable[None]], *args: object
) -> None:
    """Run one cycle; count what went wrong instead of stopping the driver."""
    try:
        await cycle(*args)
    except (OSError, TimeoutError) as exc:
        tally[f"error: {type(exc).__name__}"] += 1
    except Exception as exc:  # noqa: BLE001 - counted and reported, never hidden
        tally[f"error: {type(exc).__name__}: {str(exc)[:80]}"] += 1


async def _connect_workers(config: dict[str, Any], tally: Counter[str]) -> None:
    indices = iter(range(config["connects"]))

    async def worker() -> None:
        for index in indices:
            await _counted(tally, _connect_cycle, config, index, tally)

    await asyncio.gather(*(worker() for _ in range(config["concurrency"])))


async def _room_workers(config: dict[str, Any], tally: Counter[str], stop: asyncio.Event) -> None:
    rooms, step = config["cold"], config["room_concurrency"]
    interval = step / config["room_rate"]

    async def worker(position: int) -> None:
        while not stop.is_set():
            started = time.monotonic()
            await _counted(tally, _room_cycle, config, rooms[position % len(rooms)], tally)
            position += step
            await asyncio.sleep(interval - (time.monotonic() - started))

    await asyncio.gather(*(worker(i) for i in range(step)))


async def _drain(ws: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


async def _drive_child() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config = json.loads(await reader.readline())
    tally: Counter[str] = Counter()
    stop_rooms = asyncio.Event()

    async def listen() -> None:  # "stop-rooms" (or the parent going away) ends the room cycles
        while (line := await reader.readline()) and line.strip() != b"stop-rooms":
            pass
        stop_rooms.set()

    async def progress() -> None:  # one line a minute on stderr (the server's log)
        while True:
            await asyncio.sleep(60)
            done = sum(n for name, n in tally.items() if name.startswith("connect:"))
            rooms = sum(n for name, n in tally.items() if name.startswith("room:"))
            print(f"soak driver: {done} connects, {rooms} room cycles", file=sys.stderr)

    listener = asyncio.create_task(listen())
    reporter = asyncio.create_task(progress())
    # One anchor per hot room keeps it loaded; it reads (and drops) everything it is sent.
    anchors = [
        await connect(f"{config['url']}/{room}?token={config['owner']}", compression=None)
        for room in config["hot"]
    ]
    drains = [asyncio.create_task(_drain(ws)) for ws in anchors]
    await asyncio.gather(_connect_workers(config, tally), _room_workers(config, tally, stop_rooms))
    for ws in anchors:
        await ws.close()
    await asyncio.gather(*drains)
    listener.cancel()
    reporter.cancel()
    print(json.dumps(dict(tally)), flush=True)


def run(plan: Plan, log: Path | None = None) -> dict[str, Any]:
    """Run ``plan`` in a fresh server process (``soak.py serve``); its report, as JSON data.

    The server gets a process of its own so that its RSS is its own and its process-wide
    state (Sentry's, the garbage collector's) is a server's, not a test session's.
    """
    with tempfile.TemporaryDirectory() as data_dir:
        log = log or Path(data_dir) / "server.log"
        with log.open("w") as stderr:
            done = subprocess.run(
                [sys.executable, str(SCRIPT), "serve", json.dumps(asdict(plan)), data_dir],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                timeout=3600,
                cwd=ROOT,
                check=False,  # a failure's server log is in the error below
            )
        if done.returncode != 0 or not done.stdout.strip():
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"the soak's server process failed ({done.returncode}): {tail}")
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    report["rss_growth_mb"] = round(report["rss_end_mb"] - report["rss_start_mb"], 1)
    rounds = report["rss_rounds_mb"]
    report["rss_last_round_mb"] = round(rounds[-1] - rounds[-2], 1) if len(rounds) > 1 else 0.0
    return report


def main() -> None:
    """``soak.py [--quick]`` runs a soak; ``serve`` and ``drive`` are its two processes."""
    if sys.argv[1:2] == ["drive"]:
        asyncio.run(_drive_child())
        return
    if sys.argv[1:2] == ["serve"]:
        plan = Plan(**json.loads(sys.argv[2]))
        report = asyncio.run(soak(plan, Path(sys.argv[3])))
        print(json.dumps(asdict(report)), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the suite's proportional run")
    parser.add_argument("--room-cycles", type=int)
    parser.add_argument("--connects", type=int)
    parser.add_argument("--log", type=Path, help="the server's log (default: discarded)")
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan()
    overrides = {"room_cycles": args.room_cycles, "connects": args.connects}
    plan = Plan(**{**asdict(plan), **{k: v for k, v in overrides.items() if v is not None}})
    folder = RESULTS / ("dev" if args.quick else "")
    folder.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    report = {"when": started, **run(plan, log=args.log)}
    print(json.dumps(report, indent=2))
    with (folder / "soak.jsonl").open("a") as out:
        out.write(json.dumps(report) + "\n")
    clean = not report["leftovers"] and report["rss_growth_mb"] <= plan.rss_bound_mb
    clean = clean and report["rss_last_round_mb"] <= plan.round_bound_mb
    sys.exit(0 if clean else 1)


if __name__ == "__main__":
    main()
