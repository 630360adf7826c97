"""PairPilot benchmark orchestrator.

`uv run python bench/run.py [--quick] [--only SCENARIO ...] [--servers NAME ...]`

Starts each server fresh per case on 127.0.0.1 pinned to CPU 0, runs the Node load driver
(bench/driver/load.mjs, real Yjs clients) pinned to CPU 1, samples the server's /proc, checks
correctness (every delivery arrived, every replica converged) and appends one JSON line per case
to bench/results/ (bench/results/dev/ for --quick runs). See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from procstat import Mark, cpu_seconds, rss_kb
from servers import BENCH, CLIENT_CPU, DEFAULT_SERVERS, SERVERS, Server, observation, versions

from pairpilot.testing import child_pids

RESULTS = BENCH / "results"
SEED = 20260101
CAPACITY_P99_MS = 50.0
IDLE_HOLD_S = 15.0
TARGET_ROUNDS = 5  # K100 rounds per server for the fanout target (pairpilot vs the reference)
REFERENCE = "y-websocket-server"
DISTURBED_PCT = 25.0  # other work's CPU % (of 200) beyond which a latency case is re-run
# Durability measures the storage path: two writers, each over the default per-connection
# budget of 100 messages/s (raised for that scenario only), so the relay (every edit goes to
# the other writer) and the driver's own work (each writer applies the other's edits to its
# 1 MB document) stay small beside the edits stored (bench/README.md).
WRITERS = 2
DURABILITY_MESSAGES_PER_S = 2000  # 3,200 edits/s from 2 writers: 1,600/s each
# The driver allocates a little per message for hundreds of clients: with V8's default 16 MB
# young generation it spent 2.5 s of every 20 s K175 case in scavenges, and those pauses were
# the p99 of every server. 64 MB cut them to 0.7 s (bench/README.md, "The driver").
DRIVER_NODE_FLAGS = ["--max-semi-space-size=64"]
CLIENT_BOUND_PCT = 85.0  # the driver's core: beyond this, latency is the client's


class DriverError(RuntimeError):
    pass


class DriverRun:
    """A running Node driver: its JSON lines arrive on a queue, commands go to its stdin."""

    def __init__(self, server: Server, config: dict[str, Any]) -> None:
        cfg = {
            "url": server.ws_url,
            "http": server.http,
            "kind": server.spec.kind,
            "auth": server.spec.auth,
            "seed": SEED,
            **config,
        }
        driver = str(BENCH / "driver" / "load.mjs")
        self.proc = subprocess.Popen(
            ["taskset", "-c", CLIENT_CPU, "node", *DRIVER_NODE_FLAGS, driver, json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=BENCH,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        if self.proc.stdout is not None:
            for line in self.proc.stdout:
                self.lines.put(line)
        self.lines.put(None)

    def send(self, command: str) -> None:
        if self.proc.stdin is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write(command + "\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass  # the driver ended; its result (or error) is on stdout

    def next(self, deadline: float) -> dict[str, Any] | None:
        try:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise DriverError("driver timed out") from None
        return None if line is None else json.loads(line)

    def finish(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        stderr = self.proc.stderr.read() if self.proc.stderr else ""
        for ln in stderr.strip().splitlines()[-5:]:
            sys.stderr.write(f"  driver: {ln}\n")
        return stderr


def run_driver(
    server: Server,
    config: dict[str, Any],
    timeout: float,
    on_event: Callable[[dict[str, Any], DriverRun], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Mark]]:
    """Run the Node driver against `server`; return its result and a server mark per event."""
    run = DriverRun(server, config)
    marks: dict[str, Mark] = {}
    result: dict[str, Any] | None = None
    deadline = time.monotonic() + timeout
    try:
        while (msg := run.next(deadline)) is not None:
            if "event" in msg:
                if server.running():
                    marks[msg["event"]] = server.sampler_().mark(msg["event"])
                if on_event is not None:
                    on_event(msg, run)
            elif "result" in msg:
                result = msg["result"]
    finally:
        stderr = run.finish()
    if result is None:
        raise DriverError(f"driver gave no result (exit {run.proc.returncode}): {stderr[-2000:]}")
    return result, marks


def server_usage(server: Server, start: Mark, end: Mark) -> dict[str, Any]:
    wall = end.t - start.t
    cpu = end.cpu_s - start.cpu_s
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "cpu_pct": round(100 * cpu / wall, 1) if wall > 0 else None,
        "peak_rss_kb": server.sampler_().peak_kb(start.t, end.t),
        "mean_rss_kb": round(server.sampler_().mean_kb(start.t, end.t)),
        "write_bytes": end.io.get("write_bytes", 0) - start.io.get("write_bytes", 0),
        "wchar": end.io.get("wchar", 0) - start.io.get("wchar", 0),
        # Whole machine (both cores, 200% = all busy): server + driver + anything else running.
        "machine_busy_pct": round(
            200
            * (end.machine[0] - start.machine[0])
            / max(1e-9, end.machine[1] - start.machine[1]),
            1,
        ),
    }


class Bench:
    """One run of the matrix: writes JSON lines to `out`."""

    def __init__(self, out: Path, *, quick: bool, servers: list[str]) -> None:
        self.out = out
        self.quick = quick
        self.servers = servers
        self.run_id = out.stem
        self.failures = 0
        # Sample every process of a server and Redis's CPU (bench/scale_out.py sets it).
        self.observe = False
        # PairPilot on SQLite and on PostgreSQL: durability is PairPilot's own cost.
        self.durability_servers = [s for s in servers if s.startswith("pairpilot")]

    def record(self, row: dict[str, Any]) -> None:
        row = {"run": self.run_id, "quick": self.quick, **row}
        with self.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        status = "ok" if row.get("ok") else "FAIL"
        if not row.get("ok"):
            self.failures += 1
        brief = {k: row[k] for k in ("scenario", "server", "case") if k in row}
        print(f"[{status}] {json.dumps(brief)} {json.dumps(row.get('summary', {}))}", flush=True)

    def with_server(
        self, name: str, body: Callable[[Server], dict[str, Any]], env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        server = Server(SERVERS[name], env, observe=self.observe)
        try:
            server.start()
            row = body(server)
        except (DriverError, RuntimeError, subprocess.SubprocessError, OSError) as exc:
            return {"ok": False, "error": str(exc)[-2000:], "server_log": server.tail()}
        else:
            if not row.get("ok"):
                row["server_log"] = server.tail(60)  # for whoever debugs the failure
            return row
        finally:
            if server.proc is not None and server.proc.poll() not in (None, 0, -15):
                print(f"  {name} exited {server.proc.returncode}: {server.tail(5)}", flush=True)
            server.cleanup()

    # ---- scenarios -------------------------------------------------------------------------

    def fanout_case(self, name: str, k: int, n: int, r: float, duration: float) -> dict[str, Any]:
        """One fanout case; repeated (at most twice more) when other work disturbed it."""
        for attempt in range(1, 4):
            row = self._fanout_once(name, k, n, r, duration)
            row["attempt"] = attempt
            if not row.get("disturbed"):
                break
            print(f"  disturbed by other work on the machine: {row['summary']}", flush=True)
        return row

    def _fanout_once(self, name: str, k: int, n: int, r: float, duration: float) -> dict[str, Any]:
        def body(server: Server) -> dict[str, Any]:
            result, marks = run_driver(
                server,
                {
                    "mode": "fanout",
                    "rooms": k,
                    "clients": n,
                    "rate": r,
                    "durationS": duration,
                    "warmupS": 1 if self.quick else 5,
                    "roomPrefix": f"fanout-k{k}",
                },
                timeout=duration + 180,
            )
            row: dict[str, Any] = {"driver_result": result, "ok": bool(result.get("ok"))}
            if "measure_start" in marks and "send_end" in marks:
                # CPU while the load runs; peak RSS over the whole case.
                row["server_usage"] = server_usage(
                    server, marks["measure_start"], marks["send_end"]
                )
                row["server_usage"]["peak_rss_kb"] = server.sampler_().peak_kb()
            if server.observe:  # workers summed, Redis's CPU, sockets per worker
                count = (result.get("latency_ms") or {}).get("count")
                row["scale_out"] = observation(server, marks, count)
            return row

        row = self.with_server(name, body)
        res = row.get("driver_result", {})
        lat = res.get("latency_ms") or {}
        usage = row.get("server_usage", {})
        row["summary"] = {
            "p50_ms": _r(lat.get("p50")),
            "p99_ms": _r(lat.get("p99")),
            "max_ms": _r(lat.get("max")),
            "lost": res.get("lost"),
            "diverged": res.get("diverged_rooms"),
            "cpu_pct": usage.get("cpu_pct"),
            "peak_rss_mb": _mb(usage.get("peak_rss_kb")),
            "driver_cpu_pct": _r((res.get("driver") or {}).get("cpu_pct")),
        }
        scale_out = row.get("scale_out") or {}
        if scale_out:
            row["summary"]["cpu_us_per_delivery"] = scale_out.get("cpu_us_per_delivery")
            row["summary"]["redis_cpu_pct"] = scale_out.get("redis_cpu_pct")
        # CPU that neither the server nor the driver used: someone else's work on the machine.
        busy, server_cpu = usage.get("machine_busy_pct"), usage.get("cpu_pct")
        driver_cpu = row["summary"]["driver_cpu_pct"]
        if busy is not None and server_cpu is not None and driver_cpu is not None:
            others = round(max(0.0, busy - server_cpu - driver_cpu), 1)
            if SERVERS[name].redis_db is not None:  # Redis works for this server: not others'
                others = round(max(0.0, others - (scale_out.get("redis_cpu_pct") or 0.0)), 1)
            row["summary"]["others_cpu_pct"] = others
            row["disturbed"] = others > DISTURBED_PCT
        return row

    def fanout(self) -> None:
        duration = 4.0 if self.quick else 20.0
        cases = [(10, 2, 5), (100, 5, 2)] if self.quick else [(10, 2, 5), (50, 4, 2), (100, 5, 2)]
        for k, n, r in cases:
            for name in self.servers:
                row = self.fanout_case(name, k, n, r, duration)
                self.record(
                    {
                        "scenario": "fanout",
                        "server": name,
                        "case": {
                            "rooms": k,
                            "clients": n,
                            "rate": r,
                            "duration_s": duration,
                            "edits_per_s": k * n * r,
                            "deliveries_per_s": k * n * (n - 1) * r,
                        },
                        **row,
                    }
                )
        self._target_rounds(duration)

    def _target_rounds(self, duration: float) -> None:
        """K100 N5 R2 again, PairPilot and the reference taking turns, for the target's medians.

        One case's p99 is decided by a few dozen deliveries out of 80,000 and moves by a factor
        of two between identical runs of the same server; the target compares medians of rounds
        run alternately, so slow drifts of the machine hit both servers alike.
        """
        pair = [name for name in ("pairpilot", REFERENCE) if name in self.servers]
        if len(pair) < 2:
            return
        k, n, r = 100, 5, 2
        for round_ in range(1, (2 if self.quick else TARGET_ROUNDS) + 1):
            for name in pair if round_ % 2 else reversed(pair):
                row = self.fanout_case(name, k, n, r, duration)
                self.record(
                    {
                        "scenario": "fanout-round",
                        "server": name,
                        "round": round_,
                        "case": {"rooms": k, "clients": n, "rate": r, "duration_s": duration},
                        **row,
                    }
                )

    def idle(self) -> None:
        # 15 s: one awareness-renewal period of stock clients, so that every server's window
        # holds exactly one renewal per connection however fast its clients connected.
        hold = 3.0 if self.quick else IDLE_HOLD_S
        sizes = [300, 1000] if self.quick else [1000, 3000]
        for name in self.servers:
            rows = {}
            for conns in sizes:
                row = self.with_server(
                    name, lambda server, c=conns: self.idle_body(server, c, hold)
                )
                rows[conns] = row
                self.record(
                    {
                        "scenario": "idle",
                        "server": name,
                        "case": {"connections": conns, "per_room": 10, "hold_s": hold},
                        **row,
                    }
                )
            lo, hi = rows[sizes[0]], rows[sizes[1]]
            ok = bool(lo.get("ok") and hi.get("ok"))
            marginal = None
            if ok:
                delta_kb = hi["server_usage"]["mean_rss_kb"] - lo["server_usage"]["mean_rss_kb"]
                marginal = round(delta_kb / (sizes[1] - sizes[0]), 2)
            self.record(
                {
                    "scenario": "idle-marginal",
                    "server": name,
                    "case": {"from": sizes[0], "to": sizes[1]},
                    "ok": ok,
                    "kb_per_connection": marginal,
                    "summary": {"kb_per_connection": marginal},
                }
            )

    def idle_body(self, server: Server, conns: int, hold: float) -> dict[str, Any]:
        base = server.sampler_().mark("base")
        result, marks = run_driver(
            server,
            {
                "mode": "idle",
                "connections": conns,
                "perRoom": 10,
                "holdS": hold,
                "roomPrefix": f"idle-{conns}",
            },
            timeout=hold + 300,
        )
        row: dict[str, Any] = {"driver_result": result, "ok": bool(result.get("ok"))}
        if "measure_start" in marks and "measure_end" in marks:
            usage = server_usage(server, marks["measure_start"], marks["measure_end"])
            usage["base_rss_kb"] = base.rss_kb
            row["server_usage"] = usage
            row["summary"] = {
                "rss_mb": _mb(usage["mean_rss_kb"]),
                "base_rss_mb": _mb(base.rss_kb),
                "idle_cpu_pct": usage["cpu_pct"],
                "connect_s": _r(result.get("connect_ms", 0) / 1000),
                "ws_connect_s": _r(result.get("timing", {}).get("ws_connect_ms", 0) / 1000),
            }
        return row

    def capacity(self) -> None:
        """Raise K (N5 R2) until p99 passes 50 ms or a delivery is lost."""
        duration = 4.0 if self.quick else 20.0
        steps = (
            [100, 200]
            if self.quick
            else [100, 125, 150, 175, 200, 250, 300, 350, 400, 450, 500, 600, 800, 1000]
        )
        for name in self.servers:
            held, reason, errored = None, "all steps held", False
            for k in steps:
                row = self.fanout_case(name, k, 5, 2, duration)
                summary = row.get("summary", {})
                p99 = summary.get("p99_ms")
                driver_cpu = summary.get("driver_cpu_pct") or 0.0
                passed = bool(row.get("ok")) and p99 is not None and p99 <= CAPACITY_P99_MS
                self.record(
                    {
                        "scenario": "capacity-step",
                        "server": name,
                        "case": {
                            "rooms": k,
                            "clients": 5,
                            "rate": 2,
                            "duration_s": duration,
                            "edits_per_s": k * 10,
                            "deliveries_per_s": k * 40,
                        },
                        "held": passed,
                        **row,
                    }
                )
                if driver_cpu >= CLIENT_BOUND_PCT:
                    # The clients' core is saturated: beyond here latency is the driver's.
                    if passed:
                        held = k
                    reason = f"client-bound at K{k} (driver at {driver_cpu}% of its core)"
                    break
                if not passed and "driver_result" not in row:
                    errored, reason = True, f"K{k}: error: {row.get('error')}"
                    break
                if not passed and row.get("disturbed"):
                    errored = True  # not the server's verdict: the machine was busy
                    reason = f"K{k}: disturbed by other work on the machine (p99 {p99} ms)"
                    break
                if not passed:
                    reason = (
                        f"K{k}: lost {summary.get('lost')}"
                        if summary.get("lost")
                        else f"K{k}: p99 {p99} ms"
                        if p99 is not None
                        else f"K{k}: {row.get('error')}"
                    )
                    break
                held = k
            self.record(
                {
                    "scenario": "capacity",
                    "server": name,
                    "ok": held is not None and not errored,
                    "largest_k": held,
                    "stopped": reason,
                    "summary": {"largest_k": held, "stopped": reason},
                }
            )

    def coldload(self) -> None:
        loads = 3 if self.quick else 5
        unload_wait = 3.0
        env = {"BENCH_STORE": "memory", "PAIRPILOT_IDLE_UNLOAD_MS": "1000"}
        for name in self.servers:

            def body(server: Server) -> dict[str, Any]:
                def on_event(msg: dict[str, Any], run: DriverRun) -> None:
                    if msg["event"] == "stored" or (
                        msg["event"].startswith("load_end_")
                        and msg["event"] != f"load_end_{loads - 1}"
                    ):
                        time.sleep(unload_wait)  # the server stores and unloads the room
                        run.send("go")

                result, marks = run_driver(
                    server,
                    {
                        "mode": "coldload",
                        "inserts": 100_000,
                        "insertLen": 10,
                        "loads": loads,
                        "roomPrefix": "coldload",
                        "syncTimeoutMs": 120000,
                    },
                    timeout=600,
                    on_event=on_event,
                )
                row: dict[str, Any] = {"driver_result": result, "ok": bool(result.get("ok"))}
                per_load = []
                for i in range(loads):
                    start, end = marks.get(f"load_start_{i}"), marks.get(f"load_end_{i}")
                    if start is None or end is None:
                        row["ok"] = False
                        continue
                    per_load.append(server_usage(server, start, end))
                row["loads"] = per_load
                if server.spec.name.startswith("pairpilot"):
                    # Each load must be a cold one: PairPilot logs every room load.
                    loaded = server.log.read_text(errors="replace").count('"room loaded"')
                    row["room_loads_logged"] = loaded
                    if loaded < loads:
                        row["ok"] = False
                        row["error"] = f"only {loaded} room loads logged for {loads} cold loads"
                if per_load and row["ok"]:
                    synced = [x["synced_ms"] for x in result["loads"]]
                    row["summary"] = {
                        "cpu_s_median": _median([x["cpu_s"] for x in per_load]),
                        "synced_ms_median": _r(_median(synced)),
                        "peak_rss_mb": _mb(max(x["peak_rss_kb"] for x in per_load)),
                        "update_mb": _mb(result["update_bytes"] / 1024),
                    }
                return row

            row = self.with_server(name, body, env)
            self.record(
                {
                    "scenario": "coldload",
                    "server": name,
                    "case": {"characters": 1_000_000, "inserts": 100_000, "loads": loads},
                    **row,
                }
            )

    def durability(self) -> None:
        """Bytes written per keystroke edit on a 1 MB document; the rate where flushing lags."""
        step_s = 4.0 if self.quick else 10.0
        rates = [10, 200, 3200] if self.quick else [10, 50, 200, 400, 800, 1600, 3200]
        flush_ms = 200
        env = {
            "PAIRPILOT_FLUSH_MS": str(flush_ms),
            "PAIRPILOT_MESSAGES_PER_SECOND": str(DURABILITY_MESSAGES_PER_S),
            "PAIRPILOT_MESSAGE_BURST": str(3 * DURABILITY_MESSAGES_PER_S),
        }
        for name in [n for n in ("pairpilot", "pairpilot-pg") if n in self.durability_servers]:

            def body(server: Server) -> dict[str, Any]:
                wal: dict[str, int | None] = {}
                usage: dict[int, dict[str, Any]] = {}
                starts: dict[int, Any] = {}

                def on_event(msg: dict[str, Any], run: DriverRun) -> None:
                    event = msg["event"]
                    if event.startswith("step_start_"):
                        i = int(event.rsplit("_", 1)[1])
                        starts[i] = server.sampler_().mark(event)
                        wal[f"start_{i}"] = server.wal_lsn()
                    elif event.startswith("kill_"):
                        i = int(event.rsplit("_", 1)[1])
                        end = server.sampler_().mark(event)
                        wal[f"end_{i}"] = server.wal_lsn()
                        usage[i] = server_usage(server, starts[i], end)
                        usage[i]["children"] = _children_usage(server.pid)
                        server.kill()
                        server.start()
                        run.send("go")

                result, _ = run_driver(
                    server,
                    {
                        "mode": "durability",
                        "inserts": 10_000,
                        "insertLen": 100,
                        "rates": rates,
                        "stepS": step_s,
                        "writers": WRITERS,
                        "flushMs": flush_ms,
                        "roomPrefix": "durability",
                        "syncTimeoutMs": 120000,
                    },
                    timeout=900,
                    on_event=on_event,
                )
                steps = []
                for i, step in enumerate(result.get("steps", [])):
                    u = usage.get(i, {})
                    w0, w1 = wal.get(f"start_{i}"), wal.get(f"end_{i}")
                    written = (
                        (w1 - w0) if w0 is not None and w1 is not None else u.get("write_bytes")
                    )
                    sent = max(1, step["sent"])
                    steps.append(
                        {
                            **step,
                            "server_usage": u,
                            "wal_bytes": (w1 - w0) if w0 is not None and w1 is not None else None,
                            "bytes_per_edit": round((written or 0) / sent, 1),
                            "kept_up": step["lost"] == 0,
                        }
                    )
                held = [st["rate"] for st in steps if st["kept_up"]]
                row: dict[str, Any] = {
                    "driver_result": result,
                    "steps": steps,
                    "ok": bool(result.get("ok")),
                    "measure": "WAL bytes" if server.db is not None else "/proc write_bytes",
                }
                row["summary"] = {
                    "bytes_per_edit": {st["rate"]: st["bytes_per_edit"] for st in steps},
                    "largest_rate_kept_up": max(held, default=None),
                    "fell_behind_at": next((st["rate"] for st in steps if not st["kept_up"]), None),
                    # edit sent -> its "saved" message: how far the flush ran behind the edits
                    "stored_p99_ms": {
                        st["rate"]: _r((st.get("saved_ms") or {}).get("p99"), 0) for st in steps
                    },
                    "stored_max_ms": {
                        st["rate"]: _r((st.get("saved_ms") or {}).get("max"), 0) for st in steps
                    },
                }
                return row

            row = self.with_server(name, body, env)
            self.record(
                {
                    "scenario": "durability",
                    "server": name,
                    "case": {
                        "characters": 1_000_000,
                        "rates": rates,
                        "step_s": step_s,
                        "flush_ms": flush_ms,
                        "writers": WRITERS,
                        "messages_per_s": DURABILITY_MESSAGES_PER_S,
                    },
                    **row,
                }
            )


def _children_usage(pid: int) -> list[dict[str, Any]]:
    """The server's child processes (its merge worker): CPU seconds since they started, RSS."""
    out = []
    for child in child_pids(pid):
        try:
            out.append({"pid": child, "cpu_s": cpu_seconds(child), "rss_kb": rss_kb(child)})
        except FileNotFoundError:
            continue
    return out


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def _mb(kb: float | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


SCENARIOS = ["fanout", "idle", "coldload", "capacity", "durability"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short cases (a few minutes in all)")
    ap.add_argument("--only", nargs="+", choices=SCENARIOS, help="scenarios to run")
    ap.add_argument("--servers", nargs="+", choices=sorted(SERVERS), help="servers to run")
    ap.add_argument("--out", type=Path, help="JSON lines file (default: bench/results/...)")
    args = ap.parse_args(argv)

    chosen = args.servers or DEFAULT_SERVERS
    if "pycrdt-websocket" in chosen and importlib.util.find_spec("pycrdt.websocket") is None:
        raise SystemExit(
            "pycrdt-websocket is not installed: run through `uv run --group bench ...` "
            "(or `uv sync --inexact --group bench`, or `make -C bench deps`)"
        )
    if not (BENCH / "node_modules" / "yjs").exists():
        raise SystemExit("bench/node_modules is missing: run `npm ci --prefix bench`")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or (RESULTS / ("dev" if args.quick else "") / f"run-{stamp}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    bench = Bench(out, quick=args.quick, servers=args.servers or DEFAULT_SERVERS)
    if not args.servers:
        bench.durability_servers = ["pairpilot", "pairpilot-pg"]
    bench.record(
        {
            "scenario": "meta",
            "ok": True,
            "started": stamp,
            "machine": {
                "cpus": _cpus(),
                "model": _cpu_model(),
                "kernel": platform.release(),
                "mem_gb": _mem_gb(),
            },
            "versions": versions(),
            "pinning": {"server_cpu": 0, "client_cpu": 1},
        }
    )
    for scenario in args.only or SCENARIOS:
        getattr(bench, scenario.replace("-", "_"))()
    print(f"results: {out} ({bench.failures} failed)")
    return 0


def _cpus() -> int:
    import os  # noqa: PLC0415

    return os.cpu_count() or 0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _mem_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


if __name__ == "__main__":
    raise SystemExit(main())
