"""Big uploads off the event loop (issue #22): what they cost an honest pair in another room.

    uv run python bench/offloop.py [--rounds 3] [--seconds 15] [--source DIR] [--zips-only]

Each round runs two cases on fresh servers, in turns (the order flips each round): "quiet", the
honest pair of tests/abuse.py alone (one editor types a token every 50 ms, the other records
when each arrives), and "uploads", the same pair while one client posts an ~8 MB zip to
``import.zip`` in a loop and another posts 15 MiB snapshots (~21 MB of JSON) to ``snapshot`` in
a loop, each waiting for its answer before the next. The rooms fill up (32 MiB) after a few
posts; every later post is still read, parsed, decoded or inflated in full before the quota
refuses it (413), which is the work this measures; the table's last row is the honest pair
from the moment the zip loop was first refused (its room full: issue #22's "an 8 MB zip posted
in a loop"), the snapshot loop still running. The server runs on CPU 0, this
process on CPU 1. ``--source`` runs the server from another checkout's ``src/`` (e.g. a
``git worktree`` of the commit before), for before/after figures. Raw rounds go to
results/offloop-<stamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import datetime as dt
import io
import json
import os
import random
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from pycrdt import Doc, Text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.abuse import SECRET, Honest, _honest_pair, server_env  # noqa: E402

from pairpilot.access.identity import Identities  # noqa: E402
from pairpilot.testing import ServerProcess  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SERVER_CPU, CLIENT_CPU = 0, 1
MIB = 1024 * 1024
# The benchmark posts far more often than the documented write rate allows a user.
RATES = {"PAIRPILOT_WRITE_RATE": "100000/minute", "PAIRPILOT_ROOM_CREATE_RATE": "100000/hour"}


def _pin(pid: int, cpu: int) -> None:
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})


def zip_payload() -> bytes:
    """Eight files of 1,040,000 random printable characters: 8.3 MB of text, a ~6.8 MB zip."""
    import zipfile  # noqa: PLC0415 - only the payload needs it

    rng = random.Random(22)
    alphabet = string.ascii_letters + string.digits + string.punctuation
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for n in range(8):
            archive.writestr(f"f{n}.txt", "".join(rng.choices(alphabet, k=1_040_000)))
    return buffer.getvalue()


def snapshot_payload() -> bytes:
    """A 15 MiB insert as a snapshot POST body (~21 MB of JSON)."""
    doc: Doc = Doc()
    doc.get("t", type=Text).insert(0, "s" * (15 * MIB))
    return json.dumps({"snapshot_b64": base64.b64encode(doc.get_update()).decode()}).encode()


async def _post_loop(
    server: ServerProcess,
    token: str,
    post: tuple[str, bytes, str],
    stop: asyncio.Event,
    statuses: collections.Counter[str],
    full: asyncio.Event,
) -> None:
    path, body, content_type = post
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    async with httpx.AsyncClient(base_url=server.http_url, timeout=120) as client:
        while not stop.is_set():
            answer = await client.post(path, content=body, headers=headers)
            statuses[f"{path.rsplit('/', 1)[-1]} {answer.status_code}"] += 1
            if answer.status_code == 413:  # the room is full: every later post is refused
                full.set()


async def _case(
    source: Path | None, seconds: float, payloads: tuple[bytes, bytes] | None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data:
        env = server_env(Path(data), **RATES)
        if source is not None:
            env["PYTHONPATH"] = str(source / "src")
        server = ServerProcess(env)
        server.start()
        _pin(server.pid, SERVER_CPU)
        try:
            return await _measure(server, seconds, payloads)
        finally:
            server.stop()


async def _measure(
    server: ServerProcess, seconds: float, payloads: tuple[bytes, bytes] | None
) -> dict[str, Any]:
    identities = Identities(SECRET, 3600)
    ada, bob, mallory = (identities.issue(name)[0] for name in ("Ada", "Bob", "Mallory"))
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        for token, room in (
            (ada, "honest"),
            (bob, "honest"),
            (mallory, "zips"),
            (mallory, "snaps"),
        ):
            answer = await client.post(
                f"/api/rooms/{room}/join", headers={"Authorization": f"Bearer {token}"}
            )
            answer.raise_for_status()
    honest = Honest()
    ready, stop, posting = asyncio.Event(), asyncio.Event(), asyncio.Event()
    statuses: collections.Counter[str] = collections.Counter()
    pair = asyncio.create_task(_honest_pair(server, [ada, bob], honest, ready, stop))
    await asyncio.wait_for(ready.wait(), 30)
    loops = []
    zips_full, snaps_full = asyncio.Event(), asyncio.Event()  # the first 413 of each loop
    if payloads is not None:
        archive, snapshot = payloads
        loops = [
            asyncio.create_task(
                _post_loop(
                    server,
                    mallory,
                    ("/api/rooms/zips/import.zip", archive, "application/zip"),
                    posting,
                    statuses,
                    zips_full,
                )
            )
        ]
        if snapshot:  # --zips-only: b""
            loops.append(
                asyncio.create_task(
                    _post_loop(
                        server,
                        mallory,
                        ("/api/rooms/snaps/snapshot", snapshot, "application/json"),
                        posting,
                        statuses,
                        snaps_full,
                    )
                )
            )
    started, started_perf = time.monotonic(), time.perf_counter()
    full_at = asyncio.create_task(_when_set(zips_full))
    await asyncio.sleep(seconds)
    posting.set()
    stop.set()
    await pair
    await asyncio.gather(*loops)
    latencies = honest.latencies_ms()
    row = {
        "case": "quiet" if payloads is None else "uploads",
        "seconds": round(time.monotonic() - started, 1),
        "typed": len(honest.sent),
        "seen": len(honest.seen),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(statistics.quantiles(latencies, n=100)[98], 2),
        "max_ms": round(max(latencies), 2),
        "posts": dict(statuses),
    }
    if full_at.done():  # the honest pair once the zips' room was full and every zip refused
        after = [
            (honest.seen[t] - honest.sent[t]) * 1000
            for t in honest.seen
            if t in honest.sent and honest.sent[t] >= full_at.result()
        ]
        row["full_s"] = round(full_at.result() - started_perf, 1)
        row["full_p50_ms"] = round(statistics.median(after), 2)
        row["full_p99_ms"] = round(statistics.quantiles(after, n=100)[98], 2)
    else:
        full_at.cancel()
    return row


async def _when_set(event: asyncio.Event) -> float:
    """The ``time.perf_counter()`` (the honest pair's clock) once ``event`` is set."""
    await event.wait()
    return time.perf_counter()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--source", type=Path, default=None, help="a checkout whose src/ to serve")
    ap.add_argument("--zips-only", action="store_true", help="no snapshot loop (issue #22's case)")
    args = ap.parse_args()
    os.sched_setaffinity(0, {CLIENT_CPU})
    # Made once, before any case: building them costs this process seconds of CPU.
    payloads = zip_payload(), b"" if args.zips_only else snapshot_payload()
    sizes = f"zip {len(payloads[0]) / 1e6:.1f} MB, snapshot body {len(payloads[1]) / 1e6:.1f} MB"
    print(sizes, flush=True)

    async def rounds() -> list[dict[str, Any]]:
        rows = []
        for round_ in range(args.rounds):
            for uploads in (False, True) if round_ % 2 == 0 else (True, False):
                load = payloads if uploads else None
                row = {"round": round_} | await _case(args.source, args.seconds, load)
                print(json.dumps(row), flush=True)
                rows.append(row)
        return rows

    rows = asyncio.run(rounds())
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"offloop-{stamp}.json"
    source = str(args.source) if args.source else "this checkout"
    out.write_text(json.dumps({"source": source, "rows": rows}, indent=1) + "\n")
    print(f"\nraw rounds: {out.relative_to(ROOT)} (server from {source})\n")
    print("| case | honest p50 ms | honest p99 ms | max ms |")
    print("|---|---|---|---|")
    for case in ("quiet", "uploads"):
        mine = [r for r in rows if r["case"] == case]
        cells = [
            statistics.median(float(r[k]) for r in mine) for k in ("p50_ms", "p99_ms", "max_ms")
        ]
        print(f"| {case} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    full = [r for r in rows if "full_p99_ms" in r]
    if full:  # the honest pair once every zip was refused (its room full)
        keys = ("full_p50_ms", "full_p99_ms")
        cells = [statistics.median(float(r[k]) for r in full) for k in keys]
        at = statistics.median(float(r["full_s"]) for r in full)
        print(f"| uploads, zips' room full (from {at:.1f} s) | {cells[0]:.1f} | {cells[1]:.1f} | |")


if __name__ == "__main__":
    main()
