"""Big uploads off the event loop (issue #22): what they cost an honest pair in another room.

    uv run python bench/offloop.py [--rounds 3] [--seconds 15] [--zips-only]
                                   [--source DIR] [--compare DIR] [--trace PREFIX]
                                   [--fanout K] [--zip-every S] [--worker-cpu N] [--reads]

Each round runs two cases on fresh servers (the order flips each round): "quiet", the honest
pair of tests/abuse.py alone (one editor types a token every 50 ms, the other records when each
arrives), and "uploads", the same pair while a process of its own posts an ~8 MB zip to
``import.zip`` in a loop and (without ``--zips-only``) 15 MiB snapshots (~21 MB of JSON) to
``snapshot`` in a loop, each waiting for its answer before the next. The posts run in their own
process because sending a 21 MB body holds a Python process for tens of milliseconds: in the
honest pair's process, that delay was counted as the server's. The zips' room fills up (32 MiB)
after four zips; every later zip is still read and inflated before the quota refuses it (413);
the same snapshot posted again is read, parsed and decoded, then found to bring nothing new.
The table's last row per server is the honest pair from the zip loop's first 413 on (issue
#22's "an 8 MB zip posted in a loop"). The server runs on CPU 0 (its merge worker too), this
process and the poster on CPU 1 (``--worker-cpu 1`` moves the worker there: the server's core
is then its own, as on a machine with a core to spare). ``--source`` serves another checkout's
``src/``; ``--compare`` serves another checkout beside this one, case for case in alternating
order (before/after in the same period). Each row notes the 1-minute load average at its start.
Raw rounds go to results/offloop-<stamp>.json.

With ``--fanout K`` the probe is K rooms of 5 stock clients, and the cases are "quiet", "sink"
(the zip loop posted to a process on the server's core that reads each body and answers 413:
what moving the bytes costs this machine, the baseline the next two are read against),
"uploads" (the zips' room takes its four zips in the window, then refuses) and "full" (the room
filled before the window: every zip refused).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pycrdt import Doc, Text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.abuse import SECRET, Honest, _honest_pair, server_env  # noqa: E402

from pairpilot.access.identity import Identities  # noqa: E402
from pairpilot.testing import ServerProcess, child_pids  # noqa: E402

BENCH = Path(__file__).parent
RESULTS = BENCH / "results"
SERVER_CPU, CLIENT_CPU = 0, 1
# --fanout: the fan-out probe's rooms of 5 stock clients typing 2 keystrokes a second each
FANOUT_CLIENTS, FANOUT_RATE = 5, 2
# The probe signs in a user per client (bench/servers.py's guardrails for a benchmark).
FANOUT_RATES = {"PAIRPILOT_SIGNIN_RATE": "1000000/hour", "PAIRPILOT_REFRESH_RATE": "1000000/hour"}
MIB = 1024 * 1024
# --reads: the poster's "snapshot" argument that makes it read the full room instead of posting.
READS = "reads-the-room"
# ... and the room stays live for the whole case (a live room's reads are the ones measured).
READS_ENV = {"PAIRPILOT_IDLE_UNLOAD_MS": "600000"}
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
    url: str,
    token: str,
    post: tuple[str, bytes | None, str],
    stop: asyncio.Event,
    statuses: collections.Counter[str],
    on_full: Callable[[], None],
    every: float = 0.0,
) -> None:
    path, body, content_type = post
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    full = False
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while not stop.is_set():
            started = time.perf_counter()
            if body is None:
                answer = await client.get(path, headers=headers)
            else:
                answer = await client.post(path, content=body, headers=headers)
            await asyncio.sleep(max(0.0, every - (time.perf_counter() - started)))
            statuses[f"{path.rsplit('/', 1)[-1]} {answer.status_code}"] += 1
            if answer.status_code == 413 and not full:  # the room is full: every later post is
                full = True  # refused
                on_full()


def _poster(url: str, token: str, archive: Path, snapshot: Path | None, every: float) -> None:
    """The upload loops, in a process of their own until its stdin closes.

    Sending a 21 MB body holds a Python process for tens of milliseconds: in the honest
    pair's process that delay was counted as the server's. Prints ``full <perf_counter>`` at
    the zip loop's first 413 and ``posts <json>`` at the end (``start <perf_counter>`` first).
    """

    reads = snapshot is not None and snapshot.name == READS
    zipped = archive.read_bytes()
    body = snapshot.read_bytes() if snapshot is not None and not reads else b""

    async def run() -> None:
        print(f"start {time.perf_counter()}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(sys.stdin.fileno(), lambda: (loop.remove_reader(0), stop.set()))
        statuses: collections.Counter[str] = collections.Counter()
        if reads:  # --reads: a member reads the full room, snapshot and export in turn
            gets = [(f"/api/rooms/zips/{what}", None, "") for what in ("snapshot", "export.zip")]
            await asyncio.gather(
                *(
                    _post_loop(url, token, get, stop, statuses, lambda: None, 2 * every)
                    for get in gets
                )
            )
            print(f"posts {json.dumps(statuses)}", flush=True)
            return
        posts = [
            _post_loop(
                url,
                token,
                ("/api/rooms/zips/import.zip", zipped, "application/zip"),
                stop,
                statuses,
                lambda: print(f"full {time.perf_counter()}", flush=True),
                every,
            )
        ]
        if body:
            path = "/api/rooms/snaps/snapshot"
            post = (path, body, "application/json")
            posts.append(_post_loop(url, token, post, stop, statuses, lambda: None))
        await asyncio.gather(*posts)
        print(f"posts {json.dumps(statuses)}", flush=True)

    asyncio.run(run())


async def _case(
    source: Path | None,
    seconds: float,
    payloads: tuple[Path, Path | None] | None,
    trace: Path | None = None,
    zip_every: float = 0.0,
    fanout: tuple[int, str] | None = None,
    worker_cpu: int = SERVER_CPU,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data:
        reads = payloads is not None and payloads[1] is not None and payloads[1].name == READS
        env = server_env(Path(data), **RATES, **FANOUT_RATES, **(READS_ENV if reads else {}))
        if source is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(source / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
            )
        server = ServerProcess(env)
        server.start()
        _pin(server.pid, SERVER_CPU)
        mover = asyncio.create_task(_pin_children(server.pid, worker_cpu))
        try:
            if fanout is None:
                row = await _measure(server, seconds, payloads, trace, zip_every)
            else:
                rooms, case = fanout
                row = await _measure_fanout(
                    server, seconds, payloads, rooms, case=case, zip_every=zip_every
                )
            row["server_cpu_s"], row["worker_cpu_s"] = _cpu_s(server.pid)
            return row | {"worker_on_cpu": worker_cpu}
        finally:
            mover.cancel()
            server.stop()


async def _pin_children(pid: int, cpu: int) -> None:
    """Move the server's merge worker to ``cpu`` as soon as it appears (``--worker-cpu``)."""
    if cpu == SERVER_CPU:
        return  # it inherits the server's CPU
    moved: set[int] = set()
    while True:
        for child in set(child_pids(pid)) - moved:
            try:
                _pin(child, cpu)
            except (FileNotFoundError, ProcessLookupError):
                continue
            moved.add(child)
        await asyncio.sleep(0.02)


def _cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of the server so far, and of its live children (the merge
    worker), read from /proc: unlike latency, not moved by other work on the machine."""
    tick = os.sysconf("SC_CLK_TCK")

    def used(each: int) -> float:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime

    return round(used(pid), 2), round(sum(used(child) for child in child_pids(pid)), 2)


def _out(process: asyncio.subprocess.Process) -> asyncio.StreamReader:
    if process.stdout is None:
        raise RuntimeError("the poster's stdout is not a pipe")
    return process.stdout


async def _measure(
    server: ServerProcess,
    seconds: float,
    payloads: tuple[Path, Path | None] | None,
    trace: Path | None = None,
    zip_every: float = 0.0,
) -> dict[str, Any]:
    identities = Identities(SECRET, 3600)
    ada, bob, mallory = (identities.issue(name)[0] for name in ("Ada", "Bob", "Mallory"))
    await _join(server, [(ada, "honest"), (bob, "honest"), (mallory, "zips"), (mallory, "snaps")])
    honest = Honest()
    ready, stop = asyncio.Event(), asyncio.Event()
    pair = asyncio.create_task(_honest_pair(server, [ada, bob], honest, ready, stop))
    await asyncio.wait_for(ready.wait(), 30)
    posts: dict[str, int] = {}
    full_at: float | None = None  # the zip loop's first 413
    poster = None
    if payloads is not None:
        poster, posting_from = await _start_poster(server.http_url, mallory, payloads, zip_every)
    started = time.monotonic()
    await asyncio.sleep(seconds)
    if poster is not None:
        posts, full_at = await _stop_poster(poster)
    stop.set()
    await pair
    latencies = honest.latencies_ms()
    if trace is not None:  # when each token was typed and seen (time.monotonic), for a profile
        times = {"sent": honest.sent, "seen": honest.seen, "full": full_at}
        trace.write_text(json.dumps(times))  # noqa: ASYNC240 - after the case
    row = {
        "case": "quiet" if payloads is None else "uploads",
        "seconds": round(time.monotonic() - started, 1),
        "typed": len(honest.sent),
        "seen": len(honest.seen),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(statistics.quantiles(latencies, n=100)[98], 2),
        "max_ms": round(max(latencies), 2),
        "posts": posts,
    }
    if full_at is not None:  # the honest pair once the zips' room was full and every zip refused
        after = [
            (honest.seen[t] - honest.sent[t]) * 1000
            for t in honest.seen
            if t in honest.sent and honest.sent[t] >= full_at
        ]
        row["full_s"] = round(full_at - posting_from, 1)
        row["full_p50_ms"] = round(statistics.median(after), 2)
        row["full_p99_ms"] = round(statistics.quantiles(after, n=100)[98], 2)
    return row


async def _start_poster(
    url: str, token: str, payloads: tuple[Path, Path | None], zip_every: float
) -> tuple[asyncio.subprocess.Process, float]:
    """The upload loops' process, posting to ``url``; and when it began (its
    ``time.perf_counter``)."""
    archive, snapshot = payloads
    command = [__file__, "--post", url, token, str(archive), str(snapshot or "")]
    command.append(str(zip_every))
    poster = await asyncio.create_subprocess_exec(
        sys.executable, *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    return poster, float((await _out(poster).readline()).decode().split()[1])  # "start <t>"


async def _stop_poster(poster: asyncio.subprocess.Process) -> tuple[dict[str, int], float | None]:
    """Stop the upload loops: the answers they had, and when the zips' first 413 came."""
    posts: dict[str, int] = {}
    full_at = None
    if poster.stdin is not None:
        poster.stdin.close()
    for line in (await _out(poster).read()).decode().splitlines():
        kind, _, value = line.partition(" ")
        if kind == "full":
            full_at = float(value)
        elif kind == "posts":
            posts = json.loads(value)
    await poster.wait()
    return posts, full_at


async def _join(server: ServerProcess, joins: list[tuple[str, str]]) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as client:
        for token, room in joins:
            answer = await client.post(
                f"/api/rooms/{room}/join", headers={"Authorization": f"Bearer {token}"}
            )
            answer.raise_for_status()


async def _fill(server: ServerProcess, token: str, body: bytes) -> int:
    """Post the zip until the room refuses it (413): how many it took."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/zip"}
    async with httpx.AsyncClient(base_url=server.http_url, timeout=120) as client:
        for taken in range(64):
            answer = await client.post("/api/rooms/zips/import.zip", content=body, headers=headers)
            if answer.status_code == 413:  # the room is full
                return taken
            answer.raise_for_status()
    raise RuntimeError("the zips' room never filled up")


def _sink() -> None:
    """``--sink``: an HTTP server that reads each request's body and answers 413, until its
    stdin closes (the "sink" case). Prints its port first."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        refused = b'{"error":"room_full"}'
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                fields = [line.split(b":", 1) for line in head.split(b"\r\n") if b":" in line]
                left = next((int(v) for k, v in fields if k.lower() == b"content-length"), 0)
                while left > 0:
                    chunk = await reader.read(min(left, MIB))
                    if not chunk:
                        return
                    left -= len(chunk)
                writer.write(
                    b"HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(refused), refused)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def run() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(run())


async def _start_sink() -> tuple[asyncio.subprocess.Process, str]:
    """The sink's process, on the server's core, and its URL."""
    sink = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--sink",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    _pin(sink.pid, SERVER_CPU)
    port = int((await _out(sink).readline()).decode())
    return sink, f"http://127.0.0.1:{port}"


async def _measure_fanout(
    server: ServerProcess,
    seconds: float,
    payloads: tuple[Path, Path | None] | None,
    rooms: int,
    *,
    case: str,
    zip_every: float = 0.0,
) -> dict[str, Any]:
    """The fan-out probe: ``rooms`` rooms of stock clients typing (bench/driver/load.mjs,
    thousands of deliveries, so a p99 is a p99), the upload loops posting during its window.

    ``case`` "full": the zips' room is filled before the window, so every zip in it is refused
    (the loop's steady state); "uploads": the window includes the zips the room takes first;
    "sink": the same zip loop goes to a sink on the server's core that reads each body and
    answers 413 (what posting 8 MB four times a second costs this machine, not the server).
    """
    prefill = case == "full"
    identities = Identities(SECRET, 3600)
    mallory = identities.issue("Mallory")[0]
    await _join(server, [(mallory, "zips"), (mallory, "snaps")])
    archive = payloads[0].read_bytes() if payloads and prefill else None
    admitted = await _fill(server, mallory, archive) if archive else None
    config = {
        "mode": "fanout",
        "url": f"ws://127.0.0.1:{server.port}/collab",
        "http": server.http_url,
        "kind": "y-websocket",
        "auth": True,
        "seed": 1,
        "rooms": rooms,
        "clients": FANOUT_CLIENTS,
        "rate": FANOUT_RATE,
        "durationS": seconds,
        "warmupS": 3,
        "roomPrefix": "probe",
    }
    driver = await asyncio.create_subprocess_exec(
        "node",
        "--max-semi-space-size=64",
        str(BENCH / "driver" / "load.mjs"),
        json.dumps(config),
        cwd=BENCH,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    poster = None
    posts: dict[str, int] = {}
    result: dict[str, Any] = {}
    sink, url = await _start_sink() if case == "sink" else (None, server.http_url)
    async for line in _out(driver):
        message = json.loads(line)
        event = message.get("event")
        if event == "measure_start" and payloads is not None:
            poster, _ = await _start_poster(url, mallory, payloads, zip_every)
        elif event == "send_end" and poster is not None:
            posts, _ = await _stop_poster(poster)
            poster = None
        elif "result" in message:
            result = message["result"]
    await driver.wait()
    if poster is not None:
        await _stop_poster(poster)
    if sink is not None and sink.stdin is not None:
        sink.stdin.close()
        await sink.wait()
    if not result.get("ok"):
        raise RuntimeError(f"the fan-out probe failed: {json.dumps(result)[:2000]}")
    latency = result["latency_ms"]
    return {
        "case": "quiet" if payloads is None else case,
        "deliveries": latency["count"],
        "p50_ms": round(latency["p50"], 2),
        "p99_ms": round(latency["p99"], 2),
        "max_ms": round(latency["max"], 2),
        "zips_taken_before": admitted,
        "posts": posts,
        "driver_loop_delay_p99_ms": round(result["driver"]["loop_delay_p99_ms"], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--source", type=Path, default=None, help="a checkout whose src/ to serve")
    ap.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="a checkout to serve beside this one, case for case (e.g. the commit before)",
    )
    ap.add_argument("--zips-only", action="store_true", help="no snapshot loop (issue #22's case)")
    ap.add_argument(
        "--reads",
        action="store_true",
        help="with --fanout: a member GETs the full live room's snapshot and export.zip in turn,"
        " one every --zip-every seconds (cases quiet and full)",
    )
    ap.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="write the honest pair's token times of each case to <TRACE>-<round>-<case>.json",
    )
    ap.add_argument(
        "--zip-every",
        type=float,
        default=0.0,
        help="post a zip at most every this many seconds (default: each after the last answer)",
    )
    ap.add_argument(
        "--fanout",
        type=int,
        default=0,
        metavar="K",
        help="probe with K rooms of 5 stock clients typing (bench/driver/load.mjs) instead of"
        " one honest pair; cases quiet, uploads (the zips' room fills in the window) and full"
        " (filled before it)",
    )
    ap.add_argument(
        "--worker-cpu",
        type=int,
        default=SERVER_CPU,
        help=f"the CPU the server's merge worker runs on (default {SERVER_CPU}, the server's own;"
        f" {CLIENT_CPU} is the driver's: the server's core is then its own)",
    )
    ap.add_argument("--post", nargs=5, help=argparse.SUPPRESS)  # the upload loops' own process
    ap.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)  # the "sink" case's
    args = ap.parse_args()
    if args.sink:
        _sink()
        return
    if args.post:
        url, token, archive, snapshot, every = args.post
        _poster(url, token, Path(archive), Path(snapshot) if snapshot else None, float(every))
        return
    os.sched_setaffinity(0, {CLIENT_CPU})
    # Made once, before any case: building them costs this process seconds of CPU.
    archive = zip_payload()
    snapshot = b"" if args.zips_only or args.reads else snapshot_payload()
    sizes = f"zip {len(archive) / 1e6:.1f} MB, snapshot body {len(snapshot) / 1e6:.1f} MB"
    print(sizes, flush=True)
    servers = {"this": args.source}
    if args.compare is not None:
        servers = {"before": args.compare, "this": args.source}

    async def rounds(files: Path) -> list[dict[str, Any]]:
        payloads = files / "upload.zip", (files / "snapshot.json") if snapshot else None
        kinds = ["quiet", "sink", "uploads", "full"] if args.fanout else ["quiet", "uploads"]
        if args.reads:
            payloads, kinds = (files / "upload.zip", files / READS), ["quiet", "full"]
        cases = [(name, case) for name in servers for case in kinds]
        rows = []
        for round_ in range(args.rounds):
            for name, case in cases if round_ % 2 == 0 else cases[::-1]:
                trace = None
                if args.trace is not None:
                    trace = args.trace.with_name(f"{args.trace.name}-{round_}-{name}-{case}.json")
                load = None if case == "quiet" else payloads
                fanout = (args.fanout, case) if args.fanout else None
                row = {"round": round_, "server": name, "load": os.getloadavg()[0]}
                where = (args.zip_every, fanout, args.worker_cpu)
                row |= await _case(servers[name], args.seconds, load, trace, *where)
                print(json.dumps(row), flush=True)
                rows.append(row)
        return rows

    with tempfile.TemporaryDirectory() as files:
        (Path(files) / "upload.zip").write_bytes(archive)
        (Path(files) / "snapshot.json").write_bytes(snapshot)
        rows = asyncio.run(rounds(Path(files)))
    _report(rows, servers)


def _report(rows: list[dict[str, Any]], servers: dict[str, Path | None]) -> None:
    """Write the raw rounds to results/ and print the medians."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"offloop-{stamp}.json"
    sources = {name: str(source) if source else "this checkout" for name, source in servers.items()}
    out.write_text(json.dumps({"sources": sources, "rows": rows}, indent=1) + "\n")
    print(f"\nraw rounds: {out.relative_to(ROOT)} (servers: {sources})\n")
    probe = "probe" if any("deliveries" in r for r in rows) else "honest"
    print(
        f"| server, case | {probe} p50 ms | {probe} p99 ms | max ms | server CPU s | worker CPU s"
        " | p99 per round |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in servers:
        for case in ("quiet", "sink", "uploads", "full"):
            mine = [r for r in rows if r["case"] == case and r["server"] == name]
            if not mine:
                continue
            keys = ("p50_ms", "p99_ms", "max_ms", "server_cpu_s", "worker_cpu_s")
            cells = [statistics.median(float(r[k]) for r in mine) for k in keys]
            rounds = ", ".join(f"{r['p99_ms']:.2f}" for r in sorted(mine, key=lambda r: r["round"]))
            print(f"| {name}, {case} | " + " | ".join(f"{c:.2f}" for c in cells) + f" | {rounds} |")
        full = [r for r in rows if "full_p99_ms" in r and r["server"] == name]
        if full:  # the honest pair once every zip was refused (its room full)
            keys = ("full_p50_ms", "full_p99_ms")
            cells = [statistics.median(float(r[k]) for r in full) for k in keys]
            at = statistics.median(float(r["full_s"]) for r in full)
            print(
                f"| {name}, zips' room full (from {at:.1f} s) | {cells[0]:.1f} | {cells[1]:.1f} |||"
            )
    loads = [r["load"] for r in rows]
    print(f"\nload average (1 min) at each case's start: {min(loads):.1f}-{max(loads):.1f}")


if __name__ == "__main__":
    main()
