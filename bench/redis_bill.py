"""The Redis bill (issue #23): Redis commands per keystroke and per idle room, CPU per delivery.

    uv run --group bench python bench/redis_bill.py                 # ~11 min; results/redis-bill-*
    uv run --group bench python bench/redis_bill.py --quick         # a development check
    uv run --group bench python bench/redis_bill.py --label before  # names the results file

A private redis-server on a free port (nobody else's commands in its counts) is every Redis
server's REDIS_URL here; `INFO commandstats` is read at the driver's measure_start and send_end
(typing) or measure_end (idle). Servers (bench/servers.py), each fresh per case:

- `pairpilot`: one process, no Redis;
- `pairpilot-redis`: one process with REDIS_URL, every socket of every room on it;
- `pairpilot-2p`: `serve --workers 2` with room affinity off (`PAIRPILOT_WORKER_AFFINITY=0`),
  both workers on CPU 0, clients spread by the kernel, so nearly every room is open on both
  processes (a room shared by two processes);
- `pairpilot-2p-routed`: `serve --workers 2` as shipped, room affinity on: every socket of a
  room is passed to the room's home worker, so each room is open on one process;
- `pairpilot-2p-batch1`: the same with `PAIRPILOT_BUS_BATCH_MS=1` (typing only): what the
  default 16 ms batch interval costs in latency and saves in commands.

Cases: typing, K100 N5 R2 (stock y-websocket clients of bench/driver/load.mjs, one keystroke an
edit; `--rounds` rounds in flipped order, medians); idle, 1 room of 2 clients and 50 rooms of 2,
held 40 s (longer than a lease's 30 s renewal) after a 3 s settle. A keystroke is one edit the
driver sent; Redis commands are split into the bus's (stream, lease and presence commands) and
the rest (the limiters': sign-ins, writes, Runs), which this workload only issues while signing
in, before the window.

The Upstash cost assumes pay-as-you-go at $0.20 per 100,000 commands and this workload a day:
50 people typing 2 keystrokes a second for 4 hours (10 rooms of 5) and 100 rooms open 24 hours.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
# The bus's commands; everything else a server sends is the limiters' (limits' EVALSHA, ...).
BUS_COMMANDS = {
    "xadd",
    "xread",
    "xrange",
    "xrevrange",
    "xtrim",
    "set",
    "get",
    "mget",
    "eval",
    "exists",
    "pexpire",
    "del",
    "ping",
}
UPSTASH_USD_PER_100K = 0.20
DAY_KEYSTROKES = 50 * 2 * 4 * 3600  # 50 people, 2 keystrokes/s, 4 hours
DAY_ROOM_SECONDS = 100 * 24 * 3600  # 100 rooms open all day
SERVERS = [
    "pairpilot",
    "pairpilot-redis",
    "pairpilot-2p-routed",
    "pairpilot-2p",
    "pairpilot-2p-batch1",
]
IDLE_SERVERS = ["pairpilot-redis", "pairpilot-2p-routed", "pairpilot-2p"]
K, N, R = 100, 5, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", str(folder)),
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        answer = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
        )
        if answer.stdout.strip() == b"PONG":
            return proc, port
        time.sleep(0.05)
    raise TimeoutError("redis-server did not start")


def _commandstats(port: int) -> dict[str, int]:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "INFO", "commandstats"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, _, fields = line.partition(":")
            calls = dict(field.split("=", 1) for field in fields.split(","))
            counts[name[len("cmdstat_") :]] = int(calls["calls"])
    return counts


def _delta(start: dict[str, int], end: dict[str, int]) -> dict[str, int]:
    names = set(start) | set(end)
    return {
        n: end.get(n, 0) - start.get(n, 0)
        for n in sorted(names)
        if end.get(n, 0) != start.get(n, 0)
    }


def _split(delta: dict[str, int]) -> tuple[int, int]:
    bus = sum(v for k, v in delta.items() if k in BUS_COMMANDS and k != "info")
    other = sum(
        v for k, v in delta.items() if k not in BUS_COMMANDS and k not in ("info", "config")
    )
    return bus, other


def main(argv: list[str] | None = None) -> int:  # noqa: C901, PLR0915 - one scenario, top down
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--label", default="")
    # Idle windows longer than a quiet room's lease renewal (30 s) count that renewal too.
    parser.add_argument("--hold", type=float, default=40.0, help="idle window, seconds")
    parser.add_argument("--idle-only", action="store_true", help="skip the typing rounds")
    parser.add_argument("--typing-only", action="store_true", help="skip the idle cases")
    parser.add_argument(
        "--servers", nargs="+", choices=SERVERS, default=SERVERS, help="a subset (development)"
    )
    args = parser.parse_args(argv)
    servers = [name for name in SERVERS if name in args.servers]
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is needed")
    folder = Path(tempfile.mkdtemp(prefix="redis-bill-"))
    redis_proc, port = _start_redis(folder)
    # bench/servers.py reads these at import: every Redis server of this run uses the private one.
    os.environ["BENCH_REDIS_URL"] = f"redis://127.0.0.1:{port}"
    os.environ["BENCH_REDIS_DB"] = "0"
    sys.path.insert(0, str(BENCH_DIR))
    from run import RESULTS, Bench, _r, run_driver, server_usage  # noqa: PLC0415 - after the env
    from servers import observation  # noqa: PLC0415

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    label = f"-{args.label}" if args.label else ""
    out_dir = RESULTS / "dev" if args.quick else RESULTS
    out = out_dir / f"redis-bill{label}-{stamp}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    bench = Bench(out, quick=args.quick, servers=servers)
    bench.observe = True
    duration = 5.0 if args.quick else 15.0
    hold = 5.0 if args.quick else args.hold
    rows: list[dict[str, Any]] = []

    def typing(server: Any) -> dict[str, Any]:
        stats: dict[str, dict[str, int]] = {}

        def on_event(msg: dict[str, Any], _run: Any) -> None:
            if msg["event"] in ("measure_start", "send_end"):
                stats[msg["event"]] = _commandstats(port)

        config = {
            "mode": "fanout",
            "rooms": K,
            "clients": N,
            "rate": R,
            "durationS": duration,
            "warmupS": 2 if args.quick else 5,
            "roomPrefix": f"bill-k{K}",
        }
        result, marks = run_driver(server, config, timeout=duration + 180, on_event=on_event)
        row: dict[str, Any] = {"driver_result": result, "ok": bool(result.get("ok"))}
        usage = server_usage(server, marks["measure_start"], marks["send_end"])
        row["server_usage"] = usage
        lat = result.get("latency_ms") or {}
        deliveries = lat.get("count")
        row["scale_out"] = observation(server, marks, deliveries)
        delta = _delta(stats["measure_start"], stats["send_end"])
        bus, other = _split(delta)
        wall = usage["wall_s"]
        keystrokes = K * N * R * wall  # the window's keystrokes at the driver's rate
        row["redis_commands"] = delta
        row["summary"] = {
            "p50_ms": _r(lat.get("p50")),
            "p99_ms": _r(lat.get("p99")),
            "lost": result.get("lost"),
            "cpu_pct": usage.get("cpu_pct"),
            "cpu_us_per_delivery": row["scale_out"].get("cpu_us_per_delivery"),
            "bus_commands": bus,
            "other_commands": other,
            "commands_per_keystroke": round(bus / keystrokes, 4) if keystrokes else None,
            "rooms_on_both_workers": row["scale_out"].get("rooms_on_both_workers"),
        }
        return row

    def idle(server: Any, rooms: int) -> dict[str, Any]:
        stats: dict[str, dict[str, int]] = {}

        def on_event(msg: dict[str, Any], _run: Any) -> None:
            if msg["event"] in ("measure_start", "measure_end"):
                stats[msg["event"]] = _commandstats(port)

        config = {
            "mode": "idle",
            "connections": rooms * 2,
            "perRoom": 2,
            "holdS": hold,
            "roomPrefix": f"bill-idle-{rooms}",
        }
        result, marks = run_driver(server, config, timeout=hold + 120, on_event=on_event)
        usage = server_usage(server, marks["measure_start"], marks["measure_end"])
        delta = _delta(stats["measure_start"], stats["measure_end"])
        bus, other = _split(delta)
        return {
            "driver_result": result,
            "ok": bool(result.get("ok")),
            "server_usage": usage,
            "redis_commands": delta,
            "summary": {
                "rooms": rooms,
                "bus_commands": bus,
                "other_commands": other,
                "commands_per_s": round(bus / usage["wall_s"], 3),
                "commands_per_s_per_room": round(bus / usage["wall_s"] / rooms, 4),
                "idle_cpu_pct": usage.get("cpu_pct"),
            },
        }

    load_before = os.getloadavg()
    try:
        for round_ in range(1, 0 if args.idle_only else args.rounds + 1):
            order = servers if round_ % 2 else list(reversed(servers))
            for name in order:
                row = bench.with_server(name, typing)
                row.update({"scenario": "typing", "server": name, "round": round_})
                row["case"] = {"rooms": K, "clients": N, "rate": R, "duration_s": duration}
                bench.record(row)
                rows.append(row)
        for name in [] if args.typing_only else [n for n in IDLE_SERVERS if n in servers]:
            for rooms in (1, 50):
                row = bench.with_server(name, lambda server, n=rooms: idle(server, n))
                row.update({"scenario": "idle", "server": name})
                row["case"] = {"rooms": rooms, "hold_s": hold}
                bench.record(row)
                rows.append(row)
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    # The machine is shared: how busy it was says how far to trust the CPU and latency columns.
    load_after = os.getloadavg()
    report = _report(rows, servers) + (
        f"\nLoad average (1, 5, 15 min) at the start: {load_before[0]:.1f}, {load_before[1]:.1f},"
        f" {load_before[2]:.1f}; at the end: {load_after[0]:.1f}, {load_after[1]:.1f},"
        f" {load_after[2]:.1f} ({os.cpu_count()} CPUs).\n"
    )
    out.with_suffix(".md").write_text(report)
    print(report)
    print(f"results: {out}")
    return 0 if bench.failures == 0 else 1


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r["summary"][key] for r in rows if r.get("summary", {}).get(key) is not None]
    return round(statistics.median(values), 4) if values else None


def _report(rows: list[dict[str, Any]], servers: list[str]) -> str:
    """The bench/README.md table: medians of the typing rounds, idle per room, Upstash cost."""
    header = (
        "| server | Redis cmds per keystroke | idle cmds/s (1 room) | idle cmds/s per room"
        " (50 rooms) | CPU µs per delivery | vs no Redis | p50 ms | p99 ms | Upstash $/day |"
    )
    lines = [
        header,
        "|---|---|---|---|---|---|---|---|---|",
    ]
    typing = [r for r in rows if r.get("scenario") == "typing"]
    base = _median([r for r in typing if r["server"] == "pairpilot"], "cpu_us_per_delivery")
    for name in servers:
        mine = [r for r in typing if r["server"] == name]
        per_key = _median(mine, "commands_per_keystroke") or 0.0
        cpu = _median(mine, "cpu_us_per_delivery")
        idle = {
            r["case"]["rooms"]: r["summary"]
            for r in rows
            if r.get("scenario") == "idle" and r["server"] == name and "summary" in r
        }
        one = idle.get(1, {}).get("commands_per_s")
        many = idle.get(50, {}).get("commands_per_s_per_room")
        cost = None
        if name != "pairpilot" and many is not None:
            commands = per_key * DAY_KEYSTROKES + many * DAY_ROOM_SECONDS
            cost = round(commands / 100_000 * UPSTASH_USD_PER_100K, 2)
        ratio = f"{cpu / base:.2f}x" if cpu and base else "-"
        cells = [
            name,
            per_key if name != "pairpilot" else "-",
            "-" if one is None else one,
            "-" if many is None else many,
            cpu,
            ratio,
            _median(mine, "p50_ms"),
            _median(mine, "p99_ms"),
            "-" if cost is None else cost,
        ]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    lines.append("")
    for name in servers:
        counts = [
            r.get("summary", {}).get("rooms_on_both_workers") for r in typing if r["server"] == name
        ]
        shared = [count for count in counts if count is not None]
        if shared:
            lines.append(f"- {name}: rooms open on both workers, per round: {shared} of {K}")
    lines.append("")
    lines.append(
        "Upstash: $0.20 per 100,000 commands; a day = 50 people typing 2 keystrokes/s for 4 h"
        " (1,440,000 keystrokes) + 100 rooms open 24 h (idle rate of the 50-room case)."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
