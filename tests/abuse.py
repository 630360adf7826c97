"""Issue #21's abusive visitor against a real server process, beside an honest pair of editors.

Shared by the abuse test (tests/integration/test_abuse.py: every refusal, no honest edit lost,
RSS under its bound) and the benchmark (bench/abuse.py: the honest pair's latency with and
without the abuse, in alternating rounds). The floods are stock clients in Node
(tests/interop/abuse.mjs); the honest pair is two pycrdt providers in this process.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import statistics
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pycrdt import Doc, Text

from pairpilot.access.identity import Identities
from pairpilot.testing import ServerProcess, child_pids, synced_client, wait_until

INTEROP = Path(__file__).parent / "interop"
SECRET = "abuse-suite-secret-abuse-suite-secret"
MIB = 1024 * 1024
# The documented defaults, set explicitly: the suite's conftest raises the rates for other tests.
DEFAULTS = {
    "PAIRPILOT_SIGNIN_RATE": "30/hour",
    "PAIRPILOT_REFRESH_RATE": "1800/hour",
    "PAIRPILOT_ROOM_CREATE_RATE": "60/hour",
    "PAIRPILOT_WRITE_RATE": "120/minute",
    "PAIRPILOT_ROOM_MAX_BYTES": str(32 * MIB),
    "PAIRPILOT_ROOM_MAX_CONNECTIONS": "64",
    "PAIRPILOT_USER_MAX_CONNECTIONS": "32",
    "PAIRPILOT_ROOMS_PER_ANONYMOUS_USER": "20",
}
CROWD_USERS = 50
CROWD_SOCKETS_EACH = 10  # 500 sockets to one room
GROW_SECONDS = 10
GROW_CHARACTERS = 8 * MIB  # the issue's 8 MiB inserts, 4 a second
GROW_PER_SECOND = 4
HONEST_EVERY_S = 0.05


@dataclass
class Honest:
    """Two editors of another room: what one typed, when, and when the other saw it."""

    sent: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)

    def latencies_ms(self) -> list[float]:
        """Typed-to-seen delay of every token the reader saw."""
        return [(self.seen[t] - self.sent[t]) * 1000 for t in self.seen if t in self.sent]


@dataclass
class AbuseReport:
    """What each flood got back, the server's peak memory, and the honest pair's figures."""

    floods: dict[str, Any]
    peak_rss_mb: float  # the server and its merge worker together, sampled every 100 ms
    peak_server_mb: float
    peak_worker_mb: float
    honest_typed: int
    honest_seen: int
    honest_stored: int
    p50_ms: float
    p99_ms: float


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The abuse server's environment: the documented guardrail defaults, a known secret."""
    return {
        "PAIRPILOT_DATA_DIR": str(data_dir),
        "PAIRPILOT_JWT_SECRET": SECRET,
        "PAIRPILOT_LOG_LEVEL": "WARNING",
        **DEFAULTS,
        **extra,
    }


def _rss_mb(pid: int) -> tuple[float, float]:
    """RSS of a process, and of its children (the compaction's merge worker), in MB."""
    kids = child_pids(pid)
    sizes = []
    for group in ([pid], kids):
        total = 0
        for each in group:
            try:
                for line in Path(f"/proc/{each}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except FileNotFoundError:
                continue
        sizes.append(total / 1024)
    return sizes[0], sizes[1]


async def _node(node: str, *args: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        node,
        str(INTEROP / "abuse.mjs"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        cwd=INTEROP,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode == 0, f"abuse.mjs {args[0]} exited {process.returncode}"
    result: dict[str, Any] = json.loads(out)
    return result


def zip_bomb() -> bytes:
    """A 1 MB zip of one entry that inflates to 1 GiB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("bomb.txt", "w", force_zip64=True) as entry:
            chunk = b"0" * MIB
            for _ in range(1024):
                entry.write(chunk)
    return buffer.getvalue()


async def _honest_pair(
    server: ServerProcess,
    tokens: list[str],
    honest: Honest,
    ready: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    """Ada types a token every 50 ms into room "honest"; Bob's page records when each arrives."""
    async with (
        synced_client(server.ws_url("honest", tokens[0])) as writer,
        synced_client(server.ws_url("honest", tokens[1])) as reader,
    ):
        typed = writer.get("code", type=Text)
        seen = reader.get("code", type=Text)

        def arrived(_: object) -> None:
            now = time.perf_counter()
            for token in str(seen).split("]"):
                if token and token not in honest.seen:
                    honest.seen[token] = now

        seen.observe(arrived)
        ready.set()
        n = 0
        while not stop.is_set():
            token = f"[{n}"
            honest.sent[token] = time.perf_counter()
            typed += token + "]"
            n += 1
            await asyncio.sleep(HONEST_EVERY_S)
        await wait_until(lambda: len(honest.seen) == len(honest.sent), 30, "the reader")


async def _stored_tokens(server: ServerProcess, token: str) -> set[str]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        answer = await client.get(
            "/api/rooms/honest/snapshot", headers={"Authorization": f"Bearer {token}"}
        )
    doc: Doc = Doc()
    doc.apply_update(base64.b64decode(answer.json()["snapshot_b64"]))
    return {t for t in str(doc.get("code", type=Text)).split("]") if t}


def rest_payloads() -> tuple[bytes, list[dict[str, str]]]:
    """The zip bomb, and three 15 MiB snapshot POST bodies (the third passes 32 MiB).

    Made before the run: building them costs the client seconds of CPU, which would delay the
    honest pair in this process, not the server.
    """
    bodies = []
    for _ in range(3):
        doc: Doc = Doc()
        doc.get("t", type=Text).insert(0, "s" * (15 * MIB))
        bodies.append({"snapshot_b64": base64.b64encode(doc.get_update()).decode()})
    return zip_bomb(), bodies


async def _rest_floods(
    server: ServerProcess, token: str, payloads: tuple[bytes, list[dict[str, str]]]
) -> dict[str, Any]:
    """The zip bomb, then the snapshot POSTs past the room's quota."""
    bomb, bodies = payloads
    headers = {"Authorization": f"Bearer {token}"}
    found: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=server.http_url, timeout=120, headers=headers) as client:
        answer = await client.post(
            "/api/rooms/grow/import.zip",
            content=bomb,
            headers={"Content-Type": "application/zip"},
        )
        found["zip_bomb"] = [answer.status_code, answer.json()["error"]]
        statuses = []
        for body in bodies:
            answer = await client.post("/api/rooms/snapshots/snapshot", json=body)
            statuses.append([answer.status_code, answer.json().get("error")])
        found["snapshot_past_quota"] = statuses
    return found


async def run_abuse(server: ServerProcess, node: str, *, abuse: bool = True) -> AbuseReport:
    """The honest pair for the floods' duration (or as long, quietly), then what was stored."""
    identities = Identities(SECRET, 3600)
    ada, bob, attacker = (identities.issue(name)[0] for name in ("Ada", "Bob", "Mallory"))
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        for token, room in (
            (ada, "honest"),
            (bob, "honest"),
            (attacker, "grow"),
            (attacker, "crowd"),
            (attacker, "snapshots"),
        ):
            answer = await client.post(
                f"/api/rooms/{room}/join", headers={"Authorization": f"Bearer {token}"}
            )
            answer.raise_for_status()
        crowd = [identities.issue(f"bot {n}")[0] for n in range(CROWD_USERS)]
        for token in crowd:
            answer = await client.post(
                "/api/rooms/crowd/join", headers={"Authorization": f"Bearer {token}"}
            )
            answer.raise_for_status()
    payloads = rest_payloads() if abuse else None
    honest = Honest()
    ready, stop = asyncio.Event(), asyncio.Event()
    peaks = [0.0, 0.0, 0.0]  # together, server, worker

    def measure() -> None:
        server_mb, worker_mb = _rss_mb(server.pid)
        for index, size in enumerate((server_mb + worker_mb, server_mb, worker_mb)):
            peaks[index] = max(peaks[index], size)

    async def sample() -> None:
        while not stop.is_set():
            measure()
            await asyncio.sleep(0.1)

    pair = asyncio.create_task(_honest_pair(server, [ada, bob], honest, ready, stop))
    await asyncio.wait_for(ready.wait(), 30)
    sampler = asyncio.create_task(sample())
    floods: dict[str, Any] = {}
    if payloads is not None:
        grow_url = server.ws_url("grow", attacker)
        results = await asyncio.gather(
            _node(
                node,
                "grow",
                grow_url,
                str(GROW_SECONDS),
                str(GROW_CHARACTERS),
                str(GROW_PER_SECOND),
            ),
            _node(node, "crowd", server.ws_url("crowd"), ",".join(crowd), str(CROWD_SOCKETS_EACH)),
            _node(node, "signins", server.http_url, "1000"),
            _node(node, "creations", server.http_url, attacker, "1000"),
            _rest_floods(server, attacker, payloads),
        )
        floods = dict(zip(("grow", "crowd", "signins", "creations", "rest"), results, strict=True))
    else:
        await asyncio.sleep(GROW_SECONDS)
    stop.set()
    await pair
    await sampler
    measure()
    stored: set[str] = set()
    deadline = time.monotonic() + 30
    while len(stored) < len(honest.sent) and time.monotonic() < deadline:
        stored = await _stored_tokens(server, ada)
        await asyncio.sleep(0.1)
    latencies = honest.latencies_ms()
    quantiles = statistics.quantiles(latencies, n=100)
    return AbuseReport(
        floods=floods,
        peak_rss_mb=round(peaks[0], 1),
        peak_server_mb=round(peaks[1], 1),
        peak_worker_mb=round(peaks[2], 1),
        honest_typed=len(honest.sent),
        honest_seen=len(honest.seen),
        honest_stored=len(stored & set(honest.sent)),
        p50_ms=round(statistics.median(latencies), 2),
        p99_ms=round(quantiles[98], 2),
    )
