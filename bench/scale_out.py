"""Several processes (issue #14): what the Redis hop costs, and capacity of 2 processes against 1.

    uv run --group bench python bench/scale_out.py            # ~15 min: rounds, capacity, report
    uv run --group bench python bench/scale_out.py --quick    # a development check (results/dev/)
    uv run --group bench python bench/scale_out.py --report results/scale-out-....jsonl

Servers (bench/servers.py), each started fresh per case with a fresh data dir (embedded SQLite):

- `pairpilot`: one process, no Redis (the matrix's server);
- `pairpilot-redis`: one process with REDIS_URL: every frame goes through its room's Redis
  stream, but every client is on the one process (the Redis hop's cost without a second process);
- `pairpilot-2p`: `pairpilot serve --workers 2` with REDIS_URL and room affinity off
  (`PAIRPILOT_WORKER_AFFINITY=0`: rooms shared by both workers, what this bench measures), both
  workers on CPU 0 (taskset applies to the supervisor's children): the single server's CPU
  budget;
- `pairpilot-2p-2cores`: the same with the second worker moved to CPU 1, where the load driver
  runs: the two compete for that core.

The Redis variants use their own Redis database (`BENCH_REDIS_DB`, default 5), flushed before
each case. Server CPU is the sum over the supervisor and its workers; Redis's own CPU comes from
redis-server's /proc/<pid>/stat over the same window; the established sockets per worker pid
(`ss -tnp`) are counted once all clients are connected, and the rooms that both workers loaded
are counted from the log.

1. Rounds: the fanout case K100 N5 R2 (20 s after a 5 s warm-up), every server once a round, the
   order flipping each round as the matrix does for its target; medians of the rounds.
2. Capacity: the matrix's ladder (N5 R2, K = 100, 125, 150, ...; a step holds when no delivery
   is lost and p99 ≤ 50 ms; "client-bound" when the driver's core passes 85 %), the servers
   taking turns at each K, until each has stopped or the time budget is spent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import statistics
import time
from pathlib import Path
from types import FrameType
from typing import Any

from procstat import machine_busy_s
from report import fmt, load, table
from run import (
    CAPACITY_P99_MS,
    CLIENT_BOUND_PCT,
    DISTURBED_PCT,
    RESULTS,
    Bench,
    _cpu_model,
    _cpus,
    _mem_gb,
)
from servers import REDIS_ADMIN_URL, SCALE_OUT_REDIS_DB, _redis, versions

ROUND_SERVERS = ["pairpilot", "pairpilot-redis", "pairpilot-2p", "pairpilot-2p-2cores"]
CAPACITY_SERVERS = ["pairpilot", "pairpilot-2p"]
STEPS = [100, 125, 150, 175, 200, 250, 300, 400]
K, N, R = 100, 5, 2

Row = dict[str, Any]
QUIET_WINDOW_S = 3.0


def machine_busy_pct(window_s: float = QUIET_WINDOW_S) -> float:
    """The whole machine's busy CPU % (of 200 on two cores) over the next `window_s`."""
    b0, t0 = machine_busy_s()
    time.sleep(window_s)
    b1, t1 = machine_busy_s()
    return 200 * (b1 - b0) / max(1e-9, t1 - t0)


class ScaleOutBench(Bench):
    """The matrix's Bench, waiting (bounded) for a quiet machine before each fanout case.

    The machine is shared: a case run while other work takes a core is marked disturbed and run
    again (at most twice), as the matrix does. Waiting first, for at most `wait_quiet_s`, until
    the machine is below the disturbance threshold over a 3 s window, spends that time idle
    instead of on cases that will be thrown away. What each case waited is in its line.
    """

    wait_quiet_s = 0.0
    retry_until = float("inf")  # monotonic time after which a disturbed case is not re-run

    def fanout_case(self, name: str, k: int, n: int, r: float, duration: float) -> Row:
        """The matrix's case (re-run at most twice while disturbed), re-runs time-bounded."""
        for attempt in range(1, 4):
            row = self._fanout_once(name, k, n, r, duration)
            row["attempt"] = attempt
            if not row.get("disturbed"):
                break
            print(f"  disturbed by other work on the machine: {row['summary']}", flush=True)
            if time.monotonic() > self.retry_until:
                print("  (past the run's re-run deadline: kept as it is)", flush=True)
                break
        return row

    def _fanout_once(self, name: str, k: int, n: int, r: float, duration: float) -> Row:
        waited, busy = 0.0, None
        began = time.monotonic()
        while self.wait_quiet_s > 0:
            busy = machine_busy_pct()
            waited = time.monotonic() - began
            if busy <= DISTURBED_PCT or waited >= self.wait_quiet_s:
                break
        row = super()._fanout_once(name, k, n, r, duration)
        row["quiet_wait"] = {"waited_s": round(waited, 1), "busy_pct_before": _round(busy)}
        return row


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def rounds(bench: Bench, servers: list[str], count: int, duration: float) -> None:
    for round_ in range(1, count + 1):
        order = servers if round_ % 2 else list(reversed(servers))
        for name in order:
            row = bench.fanout_case(name, K, N, R, duration)
            bench.record(
                {
                    "scenario": "scale-out-round",
                    "server": name,
                    "round": round_,
                    "case": _case(K, duration),
                    **row,
                }
            )


def _case(k: int, duration: float) -> dict[str, Any]:
    return {
        "rooms": k,
        "clients": N,
        "rate": R,
        "duration_s": duration,
        "edits_per_s": k * N * R,
        "deliveries_per_s": k * N * (N - 1) * R,
    }


def _verdict(row: Row, k: int) -> tuple[bool, str | None, bool]:
    """(held, why the ladder stops here or None, the stop is not the server's verdict)."""
    summary = row.get("summary", {})
    p99 = summary.get("p99_ms")
    driver_cpu = summary.get("driver_cpu_pct") or 0.0
    held = bool(row.get("ok")) and p99 is not None and p99 <= CAPACITY_P99_MS
    if driver_cpu >= CLIENT_BOUND_PCT:
        return held, f"client-bound at K{k} (driver at {driver_cpu}% of its core)", False
    if held:
        return True, None, False
    if "driver_result" not in row:
        return False, f"K{k}: error: {row.get('error')}", True
    if row.get("disturbed"):
        return False, f"K{k}: disturbed by other work on the machine (p99 {p99} ms)", True
    if summary.get("lost"):
        return False, f"K{k}: lost {summary.get('lost')}", False
    return False, f"K{k}: p99 {p99} ms", False


def capacity(
    bench: Bench, servers: list[str], steps: list[int], duration: float, budget_s: float
) -> None:
    """The matrix's ladder for each server, the servers taking turns at each K, time-bounded."""
    began = time.monotonic()
    held: dict[str, int | None] = dict.fromkeys(servers)
    stopped: dict[str, str] = {}
    errored: dict[str, bool] = dict.fromkeys(servers, False)
    for i, k in enumerate(steps):
        live = [s for s in servers if s not in stopped]
        if not live:
            break
        spent = time.monotonic() - began
        if spent > budget_s:
            for name in live:
                stopped[name] = f"time budget ({budget_s:.0f} s) spent before K{k}"
            break
        for name in live if i % 2 == 0 else reversed(live):
            row = bench.fanout_case(name, k, N, R, duration)
            passed, reason, not_server = _verdict(row, k)
            bench.record(
                {
                    "scenario": "scale-out-capacity-step",
                    "server": name,
                    "case": _case(k, duration),
                    "held": passed,
                    **row,
                }
            )
            if passed:
                held[name] = k
            if reason is not None:
                stopped[name] = reason
                errored[name] = not_server
    for name in servers:
        reason = stopped.get(name, "all steps held")
        bench.record(
            {
                "scenario": "scale-out-capacity",
                "server": name,
                "ok": held[name] is not None and not errored[name],
                "largest_k": held[name],
                "stopped": reason,
                "summary": {"largest_k": held[name], "stopped": reason},
            }
        )


# ---- report --------------------------------------------------------------------------------


def _med(values: list[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return statistics.median(clean) if clean else None


def _clean(rows: list[Row], server: str) -> list[Row]:
    return [
        r
        for r in rows
        if r.get("scenario") == "scale-out-round"
        and r["server"] == server
        and r.get("ok")
        and not r.get("disturbed")
    ]


def medians(rows: list[Row]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    names = list(dict.fromkeys(r["server"] for r in rows if r.get("scenario") == "scale-out-round"))
    for name in names:
        clean = _clean(rows, name)
        every = [r for r in rows if r.get("scenario") == "scale-out-round" and r["server"] == name]
        # No clean round: the medians of every round that answered right, said so.
        mine = clean or [r for r in every if r.get("ok")]
        so = [r.get("scale_out", {}) for r in mine]
        out[name] = {
            "rounds": len(clean),
            "disturbed_medians": not clean,
            "of": len(every),
            "p50": _med([r["summary"]["p50_ms"] for r in mine]),
            "p99": _med([r["summary"]["p99_ms"] for r in mine]),
            "cpu": _med([r["server_usage"]["cpu_pct"] for r in mine]),
            "us": _med([s.get("cpu_us_per_delivery") for s in so]),
            "redis": _med([s.get("redis_cpu_pct") for s in so]),
            "redis_us": _med([s.get("redis_us_per_delivery") for s in so]),
            "xread": _med([_per_s(r, "calls_xread") for r in mine]),
            "xadd": _med([_per_s(r, "calls_xadd") for r in mine]),
            "redis_in": _med([_per_s(r, "total_net_input_bytes", 1 / 1024) for r in mine]),
            "driver": _med([r["summary"]["driver_cpu_pct"] for r in mine]),
            "others": _med([r["summary"].get("others_cpu_pct") for r in mine]),
            "busy": _med([r["server_usage"].get("machine_busy_pct") for r in mine]),
            "rss": _med([r["summary"].get("peak_rss_mb") for r in mine]),
            "each": [
                f"{fmt(r['summary']['p99_ms'], 1)} / {fmt(r['server_usage']['cpu_pct'], 1)}"
                + (" (disturbed)" if r.get("disturbed") else "")
                if r.get("ok")
                else "FAIL"
                for r in sorted(every, key=lambda r: r["round"])
            ],
            "split": [_split(r) for r in sorted(every, key=lambda r: r["round"])],
            "attempts": sum(r.get("attempt", 1) - 1 for r in every),
        }
    return out


def _per_s(row: Row, counter: str, scale: float = 1.0) -> float | None:
    """A Redis counter's rate over the measured window (commands are Redis-wide)."""
    counters = (row.get("scale_out") or {}).get("redis_counters")
    wall = (row.get("server_usage") or {}).get("wall_s")
    if not counters or not wall:
        return None
    return scale * counters.get(counter, 0) / wall


def _split(row: Row) -> str:
    so = row.get("scale_out") or {}
    workers = [str(p) for p in so.get("worker_pids") or []]
    sockets = so.get("sockets_by_pid") or {}
    if not workers:
        return ""
    counts = "/".join(str(sockets.get(p, 0)) for p in workers)
    both = so.get("rooms_on_both_workers")
    return f"{counts} ({both} rooms on both)"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def render(rows: list[Row], source: Path, plot: Path | None) -> str:
    meta = next((r for r in rows if r.get("scenario") == "meta"), {})
    m = meta.get("machine", {})
    med = medians(rows)
    base = med.get("pairpilot", {})
    head = [
        "server",
        "clean rounds",
        "p50 ms",
        "p99 ms",
        "server CPU %",
        "CPU µs / delivery",
        "p50 / p99 / CPU per delivery vs 1 process",
        "Redis CPU %",
        "Redis µs / delivery",
        "Redis XADD / XREAD per s, KB/s in",
        "client CPU %",
        "machine busy % (of 200)",
        "other work %",
    ]
    body = []
    for name, x in med.items():
        vs = (
            " / ".join(_ratio(x[key], base.get(key)) for key in ("p50", "p99", "us"))
            if name != "pairpilot"
            else "1 / 1 / 1"
        )
        body.append(
            [
                name,
                f"{x['rounds']} of {x['of']}"
                + (" (medians of disturbed rounds)" if x["disturbed_medians"] else ""),
                fmt(x["p50"], 2),
                fmt(x["p99"], 1),
                fmt(x["cpu"], 1),
                fmt(x["us"], 1),
                vs,
                fmt(x["redis"], 1),
                fmt(x["redis_us"], 1),
                f"{fmt(x['xadd'], 0)} / {fmt(x['xread'], 0)}, {fmt(x['redis_in'], 0)}",
                fmt(x["driver"], 1),
                fmt(x["busy"], 1),
                fmt(x["others"], 1),
            ]
        )
    parts = [
        (
            f"Run `{meta.get('run')}` (started {meta.get('started')}): {m.get('cpus')} x "
            f"{m.get('model')}, Linux {m.get('kernel')}; Redis {meta.get('redis_version')} "
            f"(db {meta.get('redis_db')}). Raw lines: `{source.name}`."
        ),
        f"#### Fanout K{K} N{N} R{R} (1,000 edits/s in, 4,000 deliveries/s out): medians of "
        "the clean rounds\n\n" + table(head, body),
    ]
    each = [
        [name, " · ".join(x["each"]), " · ".join(s for s in x["split"] if s) or "-"]
        for name, x in med.items()
    ]
    parts.append(
        "#### Every round (p99 ms / server CPU %, in order; sockets per worker, and rooms "
        "loaded on both workers)\n\n"
        + table(["server", "rounds", "sockets per worker (rooms on both)"], each)
    )
    cap = [r for r in rows if r.get("scenario") == "scale-out-capacity"]
    if cap:
        steps: dict[str, list[str]] = {}
        for r in rows:
            if r.get("scenario") == "scale-out-capacity-step":
                s = r.get("summary", {})
                mark = "held" if r.get("held") else "no"
                steps.setdefault(r["server"], []).append(
                    f"K{r['case']['rooms']}: {fmt(s.get('p99_ms'), 1)} ms, "
                    f"{fmt(s.get('cpu_pct'), 1)} % CPU, client {fmt(s.get('driver_cpu_pct'), 0)} %"
                    f", other {fmt(s.get('others_cpu_pct'), 0)} % ({mark})"
                )
        parts.append(
            "#### Capacity (N5 R2; p99 ≤ 50 ms and nothing lost)\n\n"
            + table(
                ["server", "largest K held", "stopped by", "steps: p99, server CPU, client CPU"],
                [
                    [
                        r["server"],
                        str(r.get("largest_k") or "none"),
                        str(r.get("stopped")),
                        " · ".join(steps.get(r["server"], [])),
                    ]
                    for r in cap
                ],
            )
        )
    if plot is not None:
        parts.append(f"![scale-out]({plot.name})")
    return "\n\n".join(parts) + "\n"


def plot_rounds(rows: list[Row], path: Path) -> Path | None:
    """Rounds (p99, p50, CPU per delivery) and the capacity ladders, in one PNG."""
    import matplotlib as mpl  # noqa: PLC0415

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    every = [r for r in rows if r.get("scenario") == "scale-out-round" and r.get("ok")]
    names = list(dict.fromkeys(r["server"] for r in rows if r.get("scenario") == "scale-out-round"))
    if not names:
        return None
    med = medians(rows)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    for ax, key, label in [(axes[0], "p99", "p99 ms"), (axes[1], "p50", "p50 ms")]:
        for i, name in enumerate(names):
            for r in (r for r in every if r["server"] == name):
                hollow = bool(r.get("disturbed"))
                ax.scatter(
                    i,
                    r["summary"][f"{key}_ms"],
                    s=22,
                    facecolors="none" if hollow else f"C{i}",
                    edgecolors=f"C{i}",
                    alpha=0.8,
                )
            if med[name][key] is not None:
                ax.hlines(med[name][key], i - 0.3, i + 0.3, color=f"C{i}", lw=2)
        ax.set_title(f"K{K} N{N} R{R}: {label} (bar: median of clean rounds)", fontsize=9)
        ax.set_yscale("log")
    ax = axes[2]
    for i, name in enumerate(names):
        us, rus = med[name]["us"] or 0.0, med[name]["redis_us"] or 0.0
        ax.bar(i, us, color=f"C{i}")
        if name != "pairpilot":
            ax.bar(i, rus, bottom=us, color=f"C{i}", alpha=0.35, hatch="//")
    ax.set_title("CPU µs per delivery: server, + Redis (hatched)", fontsize=9)
    for ax in axes[:3]:
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([n.replace("pairpilot", "pp") for n in names], fontsize=8)
        ax.grid(visible=True, axis="y", alpha=0.3)
    ax = axes[3]
    steps = [r for r in rows if r.get("scenario") == "scale-out-capacity-step" and r.get("ok")]
    for name in dict.fromkeys(r["server"] for r in steps):
        pts = sorted(
            (r["case"]["rooms"], r["summary"]["p99_ms"]) for r in steps if r["server"] == name
        )
        color = f"C{names.index(name)}" if name in names else None
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=color, label=name)
    ax.axhline(CAPACITY_P99_MS, color="grey", lw=0.8, ls=":", label="50 ms limit")
    ax.set_yscale("log")
    ax.set_xlabel("K rooms (N5 R2)")
    ax.set_title("capacity ladder: p99 ms", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(visible=True, which="both", alpha=0.3)
    fig.suptitle("Several processes (issue #14): hollow = disturbed round, not in the medians")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(source: Path) -> Path:
    """`<run>.md` (the tables) and `<run>.png` next to the run's JSON lines."""
    source = source.resolve()
    rows = load(source)
    plot = plot_rounds(rows, source.with_suffix(".png"))
    md = source.with_suffix(".md")
    md.write_text(render(rows, source, plot))
    return md


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 s cases, 1 round, K100 and K200")
    ap.add_argument("--rounds", type=int, default=3, help="K100 rounds per server (default 3)")
    ap.add_argument("--servers", nargs="+", default=ROUND_SERVERS, help="servers of the rounds")
    ap.add_argument("--capacity-servers", nargs="*", default=CAPACITY_SERVERS)
    ap.add_argument(
        "--capacity-budget-s",
        type=float,
        default=240.0,
        help="no new capacity step is begun after this many seconds (default 240)",
    )
    ap.add_argument(
        "--wait-quiet-s",
        type=float,
        default=30.0,
        help="before each case, wait at most this long for the machine to be quiet (default 30)",
    )
    ap.add_argument(
        "--retry-deadline-min",
        type=float,
        default=12.0,
        help="disturbed cases are re-run (at most twice) only this long into the run (default 12)",
    )
    ap.add_argument("--out", type=Path, help="JSON lines file (default results/scale-out-*.jsonl)")
    ap.add_argument("--report", type=Path, metavar="JSONL", help="only render an existing run")
    args = ap.parse_args()
    if args.report:
        print(report(args.report).read_text())
        return 0
    # SIGTERM (or SIGINT, even where a shell ignored it) stops the run through the `finally`s
    # that stop each case's server and driver.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = RESULTS / "dev" if args.quick else RESULTS
    out = args.out or folder / f"scale-out-{stamp}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    bench = ScaleOutBench(out, quick=args.quick, servers=args.servers)
    bench.wait_quiet_s = args.wait_quiet_s
    bench.retry_until = time.monotonic() + 60 * args.retry_deadline_min
    bench.observe = True  # Redis's CPU for every server, the single process's as a baseline
    info = _redis().info("server")
    bench.record(
        {
            "scenario": "meta",
            "ok": True,
            "started": stamp,
            "machine": {
                "cpus": _cpus(),
                "model": _cpu_model(),
                "kernel": Path("/proc/sys/kernel/osrelease").read_text().strip(),
                "mem_gb": _mem_gb(),
            },
            "versions": versions(),
            "redis_version": info.get("redis_version"),
            "redis_url": REDIS_ADMIN_URL,
            "redis_db": SCALE_OUT_REDIS_DB,
            "pinning": {
                "server_cpu": 0,
                "client_cpu": 1,
                "pairpilot-2p": "both workers on CPU 0",
                "pairpilot-2p-2cores": "worker 1 on CPU 0, worker 2 on CPU 1 (with the driver)",
                "redis": "not pinned (the machine's redis-server)",
            },
        }
    )
    duration = 4.0 if args.quick else 20.0
    began = time.monotonic()
    rounds(bench, args.servers, 1 if args.quick else args.rounds, duration)
    print(f"rounds took {time.monotonic() - began:.0f} s", flush=True)
    if args.capacity_servers:
        steps = [100, 200] if args.quick else STEPS
        capacity(bench, args.capacity_servers, steps, duration, args.capacity_budget_s)
    print(f"all took {time.monotonic() - began:.0f} s; results: {out} ({bench.failures} failed)")
    md = report(out)
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
