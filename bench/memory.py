"""Where PairPilot's memory goes (issue #16): a development probe, not part of the matrix.

    uv run --group bench python bench/memory.py imports      # RSS and Python heap per package
    uv run --group bench python bench/memory.py breakdown    # empty server, 100 rooms, K100
    uv run --group bench python bench/memory.py compare [--rounds 3] [--variant NAME:K=V,...]

`imports` starts `pairpilot serve` under `-X importtime`, then imports the same modules, in
the order they finished loading, into a fresh interpreter and notes VmRSS (and, in a second
interpreter, tracemalloc's traced bytes) after each, summed per top-level package.
`breakdown` starts the server with bench/memory_agent.py inside it and asks it what it holds
(smaps_rollup, glibc's mallinfo2, SQLite's heap, threads, tracemalloc snapshots) when empty,
with 100 rooms of 1 and of 5 idle clients, and at the end of a K100 N5 R2 fan-out case.
`compare` runs, in alternating rounds, the K100 N5 R2 fan-out case against PairPilot (and any
variants: extra environment variables) and the reference server, and notes each one's RSS
when started and empty and its peak RSS over the case. Results go to results/dev/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import socket
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path
from typing import Any

from procstat import rss_kb
from run import RESULTS, run_driver
from servers import BENCH, ROOT, SERVERS, VENV_BIN, Server, ServerSpec

AGENT = BENCH / "memory_agent.py"
REFERENCE = "y-websocket-server"
SETTLE_S = 3.0  # after /healthz answers: the lifespan's migration and first requests are done


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _probed(*, trace: bool, imports: bool = False) -> ServerSpec:
    """PairPilot with the probe thread inside it (tracemalloc on when `trace`)."""

    def command(port: int, data: Path) -> list[str]:
        flags = (["--trace"] if trace else []) + (["--imports"] if imports else [])
        serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
        return [
            str(VENV_BIN / "python"),
            str(AGENT),
            str(data / "probe.sock"),
            *flags,
            "--",
            *serve,
        ]

    return dataclasses.replace(SERVERS["pairpilot"], name="pairpilot-probed", command=command)


def ask(server: Server, **command: Any) -> dict[str, Any]:
    """One command to the probe inside `server`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(600)
        sock.connect(str(server.data / "probe.sock"))
        stream = sock.makefile("rw")
        stream.write(json.dumps(command) + "\n")
        stream.flush()
        return json.loads(stream.readline())


def smaps_rollup(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        out[key.strip()] = int(value.split()[0])
    return out


def mappings(pid: int) -> dict[str, dict[str, int]]:
    """RSS per mapping kind: heap, anonymous, each shared library (from /proc/<pid>/smaps)."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"rss_kb": 0, "anon_kb": 0, "maps": 0})
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            parts = line.split()
            name = parts[5] if len(parts) > 5 else "[anon]"
            out[name]["maps"] += 1
        elif line.startswith("Rss:"):
            out[name]["rss_kb"] += int(line.split()[1])
        elif line.startswith("Anonymous:"):
            out[name]["anon_kb"] += int(line.split()[1])
    return dict(out)


# ---- imports ---------------------------------------------------------------------------------


def _touch_api(server: Server) -> None:
    """One sign-in, join, snapshot read: the modules a first request loads."""
    import http.client  # noqa: PLC0415

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(
        "POST",
        "/api/auth/anonymous",
        json.dumps({"name": "probe"}),
        {"Content-Type": "application/json"},
    )
    token = json.loads(conn.getresponse().read())["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request("POST", "/api/rooms/probe/join", "{}", headers)
    conn.getresponse().read()
    conn.request("GET", "/api/rooms/probe/snapshot", headers=headers)
    conn.getresponse().read()
    conn.close()


def imports(out: Path) -> dict[str, Any]:
    """Each package's own cost while it loaded, in the real server, up to a first request."""
    per_mode: dict[str, list[dict[str, Any]]] = {}
    totals: dict[str, int] = {}
    for trace in (False, True):
        spec = _probed(trace=trace, imports=True)
        server = Server(spec)
        try:
            server.start()
            time.sleep(SETTLE_S)
            _touch_api(server)
            per_mode["traced" if trace else "rss"] = ask(server, cmd="imports")["rows"]
            if not trace:
                totals = {"rss_kb": rss_kb(server.pid), **ask(server, cmd="stats")}
        finally:
            server.cleanup()
    packages: dict[str, dict[str, float]] = {}
    for mode, rows in per_mode.items():
        for row in rows:
            top = row["module"].split(".")[0]
            kind = "(stdlib)" if top in sys.stdlib_module_names or top.startswith("_") else top
            pkg = packages.setdefault(kind, {"rss_kb": 0, "traced_kb": 0, "modules": 0})
            if mode == "rss":
                pkg["rss_kb"] += row["self_rss_kb"]
                pkg["modules"] += 1
            else:
                pkg["traced_kb"] += row["self_traced"] / 1024
    result = {
        "scenario": "memory-imports",
        "server_rss_kb": totals.get("rss_kb"),
        "modules": len(per_mode["rss"]),
        "imports_rss_kb": sum(p["rss_kb"] for p in packages.values()),
        "packages": dict(sorted(packages.items(), key=lambda kv: -kv[1]["rss_kb"])),
        "per_module": per_mode,
    }
    _write(out, result)
    print(
        f"server (probed) RSS {result['server_rss_kb'] / 1024:.1f} MB after a first request; "
        f"{result['modules']} modules loaded, their own growth "
        f"{result['imports_rss_kb'] / 1024:.1f} MB RSS"
    )
    for name, pkg in result["packages"].items():
        print(
            f"  {name:24} {pkg['rss_kb'] / 1024:6.1f} MB rss  {pkg['traced_kb'] / 1024:6.1f} MB "
            f"traced  {pkg['modules']:4d} modules"
        )
    return result


# ---- breakdown -------------------------------------------------------------------------------


def _fanout(server: Server, on_event: Any = None, rooms: int = 100) -> dict[str, Any]:
    result, _marks = run_driver(
        server,
        {
            "mode": "fanout",
            "rooms": rooms,
            "clients": 5,
            "rate": 2,
            "durationS": 20.0,
            "warmupS": 5,
            "roomPrefix": "mem-fanout",
        },
        timeout=300,
        on_event=on_event,
    )
    return result


def _idle(server: Server, per_room: int, on_event: Any, rooms: int = 100) -> dict[str, Any]:
    result, _marks = run_driver(
        server,
        {
            "mode": "idle",
            "connections": rooms * per_room,
            "perRoom": per_room,
            "holdS": 5.0,
            "roomPrefix": f"mem-idle-{per_room}",
        },
        timeout=300,
        on_event=on_event,
    )
    return result


def _top(snapshot: tracemalloc.Snapshot, base: tracemalloc.Snapshot | None, limit: int = 25):
    stats = snapshot.compare_to(base, "filename") if base else snapshot.statistics("filename")
    by_pkg: dict[str, int] = defaultdict(int)
    for stat in stats:
        name = stat.traceback[0].filename
        if "site-packages/" in name:
            pkg = name.split("site-packages/", 1)[1].split("/")[0]
        elif "/src/pairpilot/" in name:
            pkg = "pairpilot/" + name.split("/src/pairpilot/", 1)[1]
        elif name.startswith("<frozen"):
            pkg = name
        else:
            pkg = "stdlib/" + Path(name).name
        by_pkg[pkg] += stat.size_diff if base else stat.size
    return sorted(by_pkg.items(), key=lambda kv: -abs(kv[1]))[:limit]


def breakdown(out: Path) -> dict[str, Any]:
    # malloc_info's XML beside the JSON line; the tracemalloc snapshots (~8 MB each) in /tmp.
    out.with_suffix("").mkdir(parents=True, exist_ok=True)
    snaps = Path(tempfile.gettempdir()) / out.stem
    snaps.mkdir(parents=True, exist_ok=True)
    print(f"tracemalloc snapshots: {snaps}")
    result: dict[str, Any] = {"scenario": "memory-breakdown", "plain": _plain()}
    result["plain_empty"], result["plain_k100"] = result.pop("plain")
    for trace in (False, True):
        result["traced" if trace else "probed"] = _phases(snaps, out.with_suffix(""), trace=trace)
    _write(out, result)
    _print_breakdown(result, snaps)
    return result


def _plain() -> tuple[dict[str, Any], dict[str, Any]]:
    """The server as the bench starts it (no probe): empty, and at the end of K100."""
    plain = Server(SERVERS["pairpilot"])
    try:
        plain.start()
        time.sleep(SETTLE_S)
        empty = {
            "rss_kb": rss_kb(plain.pid),
            "smaps_rollup": smaps_rollup(plain.pid),
            "mappings": _biggest(mappings(plain.pid)),
        }
        done: dict[str, Any] = {}

        def at_end(msg: dict[str, Any], _run: Any) -> None:
            if msg["event"] == "send_end":
                done["rss_kb"] = rss_kb(plain.pid)
                done["smaps_rollup"] = smaps_rollup(plain.pid)
                done["mappings"] = _biggest(mappings(plain.pid))

        res = _fanout(plain, at_end)
        done["peak_rss_kb"] = plain.sampler_().peak_kb()
        done["ok"] = res.get("ok")
    finally:
        plain.cleanup()
    return empty, done


def _phases(snaps: Path, xml: Path, *, trace: bool) -> dict[str, Any]:
    """With the probe: empty, 100 rooms x 1 and x 5 idle clients, the end of K100."""
    label = "traced" if trace else "probed"
    server = Server(_probed(trace=trace))
    phases: dict[str, Any] = {}

    def note(phase: str, snap: str) -> None:
        phases[phase] = ask(server, cmd="stats")
        if trace:
            ask(server, cmd="snapshot", path=str(snaps / f"{snap}.snap"))

    try:
        server.start()
        time.sleep(SETTLE_S)
        note("empty", "empty")
        for per_room in (1, 5):
            _idle(
                server,
                per_room,
                lambda msg, _run, n=per_room: (
                    msg["event"] == "measure_start" and note(f"rooms100x{n}", f"x{n}")
                ),
            )
        phases["after_idle"] = ask(server, cmd="stats")

        def loaded(msg: dict[str, Any], _run: Any) -> None:
            if msg["event"] == "send_end":
                note("k100", "k100")
                ask(server, cmd="malloc_info", path=str(xml / f"malloc-k100-{label}.xml"))

        phases["k100_ok"] = _fanout(server, loaded).get("ok")
        phases["k100_peak_rss_kb"] = server.sampler_().peak_kb()
        phases["trim"] = ask(server, cmd="trim")
    finally:
        server.cleanup()
    return phases


def _biggest(maps: dict[str, dict[str, int]], limit: int = 12) -> dict[str, dict[str, int]]:
    return dict(sorted(maps.items(), key=lambda kv: -kv[1]["rss_kb"])[:limit])


def _print_breakdown(result: dict[str, Any], snaps: Path) -> None:
    mb = lambda kb: f"{kb / 1024:.1f}"  # noqa: E731
    pe = result["plain_empty"]
    print(
        f"plain empty: RSS {mb(pe['rss_kb'])} MB; anon {mb(pe['smaps_rollup']['Anonymous'])}, "
        f"file {mb(pe['smaps_rollup']['Rss'] - pe['smaps_rollup']['Anonymous'])}"
    )
    pk = result["plain_k100"]
    print(f"plain K100: peak {mb(pk['peak_rss_kb'])} MB, at end {mb(pk['rss_kb'])} ok={pk['ok']}")
    for label in ("probed", "traced"):
        for phase, st in result[label].items():
            if not isinstance(st, dict) or "rss_kb" not in st:
                continue
            mi = st["mallinfo2"]
            print(
                f"{label:7} {phase:12} rss {mb(st['rss_kb'])} anon {mb(st['rss_anon_kb'])} "
                f"malloc arena {mi['arena'] / 2**20:.1f} used {mi['uordblks'] / 2**20:.1f} "
                f"free {mi['fordblks'] / 2**20:.1f} mmap {mi['hblkhd'] / 2**20:.1f} "
                f"sqlite {(st['sqlite'] or {}).get('memory_used', 0) / 2**20:.2f} "
                f"threads {len(st['threads'])} blocks {st['allocated_blocks']} "
                f"traced {st['tracemalloc']}"
            )
        peak = mb(result[label]["k100_peak_rss_kb"])
        print(label, "k100 peak", peak, "trim", result[label]["trim"])
    if (snaps / "empty.snap").exists():
        empty = tracemalloc.Snapshot.load(str(snaps / "empty.snap"))
        print("traced, empty, by package (MB):")
        for name, size in _top(empty, None):
            print(f"  {size / 2**20:8.2f}  {name}")
        for other in ("x1", "x5", "k100"):
            snap = tracemalloc.Snapshot.load(str(snaps / f"{other}.snap"))
            print(f"traced, {other} minus empty (KB):")
            for name, size in _top(snap, empty, 15):
                print(f"  {size / 1024:9.1f}  {name}")


# ---- compare ---------------------------------------------------------------------------------


def _variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition(":")
    env = dict(a.split("=", 1) for a in assignments.split(",") if a)
    return name, env


def compare(out: Path, rounds: int, variants: list[str], *, reference: bool) -> None:
    plan: list[tuple[str, ServerSpec, dict[str, str]]] = [("pairpilot", SERVERS["pairpilot"], {})]
    for text in variants:
        name, env = _variant(text)
        plan.append((name, SERVERS["pairpilot"], env))
    if reference:
        plan.append((REFERENCE, SERVERS[REFERENCE], {}))
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for round_ in range(1, rounds + 1):
        for name, spec, env in plan if round_ % 2 else list(reversed(plan)):
            server = Server(spec, env)
            try:
                server.start()
                time.sleep(SETTLE_S)
                empty = rss_kb(server.pid)
                empty_maps = smaps_rollup(server.pid)
                res = _fanout(server)
                row = {
                    "scenario": "memory-compare",
                    "server": name,
                    "env": env,
                    "round": round_,
                    "empty_rss_kb": empty,
                    "empty_anon_kb": empty_maps.get("Anonymous"),
                    "peak_rss_kb": server.sampler_().peak_kb(),
                    "end_rss_kb": rss_kb(server.pid),
                    "ok": bool(res.get("ok")),
                    "p99_ms": (res.get("latency_ms") or {}).get("p99"),
                }
            finally:
                server.cleanup()
            rows[name].append(row)
            _write(out, row)
            print(
                f"round {round_} {name:28} empty {row['empty_rss_kb'] / 1024:6.1f} MB  "
                f"peak {row['peak_rss_kb'] / 1024:6.1f} MB  ok={row['ok']}  "
                f"p99 {row['p99_ms']}",
                flush=True,
            )
    print("medians:")
    for name, results in rows.items():
        e = statistics.median(r["empty_rss_kb"] for r in results) / 1024
        p = statistics.median(r["peak_rss_kb"] for r in results) / 1024
        print(f"  {name:28} empty {e:6.1f} MB  peak {p:6.1f} MB")


def _write(out: Path, row: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", choices=["imports", "breakdown", "compare"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME:KEY=VALUE,... a PairPilot with extra environment variables",
    )
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    tag = f"-{args.tag}" if args.tag else ""
    out = RESULTS / "dev" / f"memory-{args.what}{tag}-{_stamp()}.jsonl"
    os.environ.pop("PYTHONTRACEMALLOC", None)
    if args.what == "imports":
        imports(out)
    elif args.what == "breakdown":
        breakdown(out)
    else:
        compare(out, args.rounds, args.variant, reference=not args.no_reference)
    print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
