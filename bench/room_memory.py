"""Memory per live room (issue #23): server RSS per room holding a document, side by side.

    uv run --group bench python bench/room_memory.py [--rounds 3] [--rooms100k 40]
        [--rooms1m 16] [--variant NAME:K=V,...] [--tag TAG] [--dev]
    uv run --group bench python bench/room_memory.py --breakdown [--trace] [--sizes 1m]

For each server (PairPilot, PairPilot with REDIS_URL, the reference `@y/websocket-server`, and
any variants: PairPilot with extra environment variables) and each document size (100 KB and
1 MB), in alternating rounds (odd rounds in one order, even rounds reversed): start the server
fresh (pinned to CPU 0, the driver to CPU 1), open one warm-up room (a first request's lazy
imports are not a room's cost), note RSS ("before"); then N rooms, each given a document typed
line by line by one stock client's first sync (bench/driver/room_memory.mjs), that client kept
connected; wait SETTLE_S (flushes and compactions done) and note RSS ("live", the median of
five samples). Per room: (live - before) / N. The merge worker (a child process PairPilot
starts for big compactions) is noted apart. A fresh client per room then reads the document
back (the case fails if any room lacks it). One JSON line per case in bench/results/.

``--breakdown`` runs PairPilot alone with bench/memory_agent.py inside it and notes, before and
with the rooms live, glibc's mallinfo2 (in use / free), RSS after malloc_trim(0) (what is free
but kept by the allocator), and with ``--trace`` tracemalloc's growth by line (the Python heap);
results in bench/results/dev/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from queue import Empty, Queue
from typing import Any

from procstat import rss_kb
from servers import BENCH, CLIENT_CPU, ROOT, SERVERS, Server, ServerSpec

RESULTS = BENCH / "results"
REFERENCE = "y-websocket-server"
# The bench's own Redis database for this scenario (others use 5): flushed before each case.
REDIS_DB = int(os.environ.get("BENCH_ROOM_MEMORY_REDIS_DB", "11"))
START_SETTLE_S = 3.0  # after /healthz answers: the lifespan's migration and start-up are done
SETTLE_S = 6.0  # after the last room synced: flushes (200 ms) and compactions have run
SAMPLES = 5
SIZES = {"100k": 100_000, "1m": 1_000_000}


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (the merge worker and its resource tracker)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def tree_rss_kb(pid: int) -> int:
    """The RSS of ``pid``'s children and their children (not ``pid`` itself)."""
    total = 0
    for child in children(pid):
        try:
            total += rss_kb(child) + tree_rss_kb(child)
        except OSError:
            continue
    return total


class Driver:
    """bench/driver/room_memory.mjs against ``server``: its events on a queue, commands in."""

    def __init__(self, server: Server, config: dict[str, Any]) -> None:
        cfg = {
            "url": server.ws_url,
            "http": server.http,
            "kind": server.spec.kind,
            "auth": server.spec.auth,
            **config,
        }
        script = str(BENCH / "driver" / "room_memory.mjs")
        self.proc = subprocess.Popen(
            ["taskset", "-c", CLIENT_CPU, "node", script, json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=BENCH,
        )
        self.lines: Queue[dict[str, Any] | None] = Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout or ():
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def wait_for(self, event: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except Empty:
                raise RuntimeError(f"driver: no {event} in {timeout}s") from None
            if msg is None:
                raise RuntimeError(f"driver ended: {self.stderr()}")
            if msg.get("event") == event or (event == "result" and "result" in msg):
                return msg

    def send(self, command: str) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()

    def stderr(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        return (self.proc.stderr.read() if self.proc.stderr else "")[-2000:]

    def finish(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def open_rooms(
    server: Server, prefix: str, rooms: int, size: int, measure: Callable[[], dict] | None = None
) -> dict[str, Any]:
    """Open ``rooms`` rooms of a ``size``-byte document, ``measure`` them live, check them."""
    driver = Driver(server, {"rooms": rooms, "bytes": size, "roomPrefix": prefix})
    try:
        driver.wait_for("live")
        measured: dict[str, Any] = {}
        if measure is not None:
            time.sleep(SETTLE_S)
            measured = measure()
            driver.send("check")
        else:
            driver.send("done")
        return {**measured, **driver.wait_for("result")["result"]}
    finally:
        driver.finish()


def rss_live(server: Server) -> dict[str, Any]:
    """The server's RSS (the median of SAMPLES) and its children's (the merge worker)."""
    samples = []
    for _ in range(SAMPLES):
        samples.append(rss_kb(server.pid))
        time.sleep(0.2)
    return {"live_rss_kb": statistics.median(samples), "worker_rss_kb": tree_rss_kb(server.pid)}


def run_case(name: str, spec: ServerSpec, env: dict[str, str], size: str, rooms: int) -> dict:
    """One server, fresh: a warm-up room, RSS before, ``rooms`` rooms live, RSS after."""
    server = Server(spec, env)
    try:
        server.start()
        time.sleep(START_SETTLE_S)
        # A first room: the first requests' lazy imports and pools are not a room's cost. It is
        # closed by the time "before" is read, but the room itself stays loaded (idle unload
        # is 30 s), as every measured room's does.
        warm = open_rooms(server, "warm", 1, 2_000)
        time.sleep(1.0)
        before = rss_kb(server.pid)
        live = open_rooms(server, f"mem-{size}", rooms, SIZES[size], lambda: rss_live(server))
        per_room = (live["live_rss_kb"] - before) / rooms
        return {
            "scenario": "room-memory",
            "server": name,
            "env": env,
            "size": size,
            "document_bytes": SIZES[size],
            "rooms": rooms,
            "before_rss_kb": before,
            "per_room_kb": round(per_room, 1),
            "ok": bool(warm.get("ok")) and bool(live.get("ok")),
            **live,
        }
    finally:
        server.cleanup()


def breakdown(size: str, rooms: int, env: dict[str, str], *, trace: bool) -> dict[str, Any]:
    """PairPilot with the probe: what the rooms cost, by allocator state and by Python line."""
    import tracemalloc  # noqa: PLC0415

    from memory import _probed, ask  # noqa: PLC0415

    server = Server(_probed(trace=trace), env)
    snaps = Path(f"/tmp/room-memory-{size}")  # noqa: S108 - a development probe's scratch
    snaps.mkdir(exist_ok=True)
    try:
        server.start()
        time.sleep(START_SETTLE_S)
        open_rooms(server, "warm", 1, 2_000)
        time.sleep(1.0)
        before = ask(server, cmd="stats")
        if trace:
            ask(server, cmd="snapshot", path=str(snaps / "before.snap"))
        held: dict[str, Any] = {}

        def measure() -> dict[str, Any]:
            held["stats"] = ask(server, cmd="stats")
            if trace:
                ask(server, cmd="snapshot", path=str(snaps / "live.snap"))
            held["trim"] = ask(server, cmd="trim")
            return {}

        live = open_rooms(server, f"mem-{size}", rooms, SIZES[size], measure)
        stats, trim = held["stats"], held["trim"]
    finally:
        server.cleanup()
    row = {"size": size, "rooms": rooms, "env": env, "before": before, "live": stats, "trim": trim}
    mib = 1024
    for key in ("before", "live"):
        st, mi = row[key], row[key]["mallinfo2"]
        print(
            f"{key:6} rss {st['rss_kb'] / mib:7.1f} MB  malloc heap {mi['arena'] / 2**20:6.1f} "
            f"in use {mi['uordblks'] / 2**20:6.1f} free {mi['fordblks'] / 2**20:6.1f} "
            f"mmapped {mi['hblkhd'] / 2**20:6.1f} ({mi['hblks']} blocks)  "
            f"traced {st['tracemalloc']}"
        )
    per = lambda a, b: (a - b) / rooms  # noqa: E731
    lv, bf = stats["mallinfo2"], before["mallinfo2"]
    print(
        f"per room: rss {per(stats['rss_kb'], before['rss_kb']):.0f} KB, after trim "
        f"{per(trim['after_kb'], before['rss_kb']):.0f} KB; malloc in use "
        f"{per(lv['uordblks'] + lv['hblkhd'], bf['uordblks'] + bf['hblkhd']) / 1024:.0f} KB, "
        f"free kept {per(lv['fordblks'], bf['fordblks']) / 1024:.0f} KB; ok={live.get('ok')}"
    )
    if trace:
        old = tracemalloc.Snapshot.load(str(snaps / "before.snap"))
        new = tracemalloc.Snapshot.load(str(snaps / "live.snap"))
        diff = new.compare_to(old, "lineno")
        row["traced_top"] = [(str(d.traceback[0]), d.size_diff, d.count_diff) for d in diff[:25]]
        total = sum(d.size_diff for d in diff)
        print(f"traced growth per room {total / rooms / 1024:.1f} KB; by line (KB per room):")
        for where, size_diff, count in row["traced_top"]:
            print(f"  {size_diff / rooms / 1024:8.1f}  {count / rooms:6.1f} blocks  {where}")
    return row


def plan(variants: list[str], *, redis: bool) -> list[tuple[str, ServerSpec, dict[str, str]]]:
    out: list[tuple[str, ServerSpec, dict[str, str]]] = [("pairpilot", SERVERS["pairpilot"], {})]
    if redis:
        spec = dataclasses.replace(SERVERS["pairpilot-redis"], redis_db=REDIS_DB)
        out.append(("pairpilot-redis", spec, {}))
    for text in variants:
        name, _, assignments = text.partition(":")
        env = dict(a.split("=", 1) for a in assignments.split(",") if a)
        out.append((name, SERVERS["pairpilot"], env))
    out.append((REFERENCE, SERVERS[REFERENCE], {}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rooms100k", type=int, default=40)
    ap.add_argument("--rooms1m", type=int, default=16)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE,...")
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--tag", default="")
    ap.add_argument("--dev", action="store_true", help="results in bench/results/dev/")
    ap.add_argument("--breakdown", action="store_true", help="PairPilot with the memory probe")
    ap.add_argument("--trace", action="store_true", help="with --breakdown: tracemalloc too")
    args = ap.parse_args()
    if args.breakdown:
        out = RESULTS / "dev" / f"room-memory-breakdown-{_stamp()}.jsonl"
        for size in args.sizes:
            for name, _, env in plan(args.variant, redis=False)[:-1]:
                print(f"{size} {name} {env}")
                rooms_n = args.rooms100k if size == "100k" else args.rooms1m
                row = breakdown(size, rooms_n, env, trace=args.trace)
                with out.open("a") as f:
                    f.write(json.dumps({"scenario": "room-memory-breakdown", **row}) + "\n")
        return
    tag = f"-{args.tag}" if args.tag else ""
    out = (RESULTS / "dev" if args.dev else RESULTS) / f"room-memory{tag}-{_stamp()}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    rooms = {"100k": args.rooms100k, "1m": args.rooms1m}
    cases = [
        (size, name, spec, env)
        for size in args.sizes
        for name, spec, env in plan(args.variant, redis=not args.no_redis)
    ]
    rows: dict[tuple[str, str], list[float]] = defaultdict(list)
    for round_ in range(1, args.rounds + 1):
        for size, name, spec, env in cases if round_ % 2 else list(reversed(cases)):
            row = {"round": round_, **run_case(name, spec, env, size, rooms[size])}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            rows[(size, name)].append(row["per_room_kb"])
            print(
                f"round {round_} {size:4} {name:20} before {row['before_rss_kb'] / 1024:6.1f} MB "
                f"live {row['live_rss_kb'] / 1024:6.1f} MB  per room {row['per_room_kb']:8.1f} KB"
                f"  worker {row['worker_rss_kb'] / 1024:5.1f} MB  ok={row['ok']}",
                flush=True,
            )
    print("medians (KB per room; ratio to the reference):")
    for size in args.sizes:
        ref = statistics.median(rows[(size, REFERENCE)])
        for name, _, _ in plan(args.variant, redis=not args.no_redis):
            med = statistics.median(rows[(size, name)])
            print(f"  {size:4} {name:20} {med:8.1f}  {med / ref:5.2f}x")
    print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
