"""Development probe: rounds of PairPilot variants and the reference, taking turns.

    uv run --group bench python bench/probe.py [--rounds 3] [--duration 20] \
        --variant NAME[:KEY=VALUE[,KEY=VALUE...]] ... [--no-reference] [--idle CONNECTIONS] \
        [--rooms K]

The case is fan-out K100 N5 R2 (``--rooms`` sets K; ``--duration`` measured seconds), or with
``--idle`` the idle scenario's case at that many connections (10 a room, one 15 s renewal
period measured).

Each variant is PairPilot with extra environment variables, e.g. ``deferred:PAIRPILOT_FLUSH_MS=
10000`` or ``base:PYTHONPATH=/tmp/base-src`` (an earlier copy of ``src/``, to compare code).
The order flips each round, as the matrix's target rounds do; a disturbed case is run again.
Raw lines go to results/dev/probe-*.jsonl, and the medians of the rounds are printed. Not part
of the matrix: it answers "did this change help?" with the matrix's own cases.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import statistics

from run import IDLE_HOLD_S, REFERENCE, RESULTS, Bench
from servers import SERVERS

FIGURES = {"fanout": ("p99_ms", "cpu_pct", "peak_rss_mb"), "idle": ("idle_cpu_pct", "rss_mb")}


def _variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, pairs = text.partition(":")
    env = dict(pair.split("=", 1) for pair in pairs.split(",") if pair)
    return name, env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=20.0, help="measured seconds per case")
    ap.add_argument("--variant", action="append", default=[], help="NAME[:KEY=VALUE,...]")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--idle", type=int, metavar="CONNECTIONS", help="the idle case instead")
    ap.add_argument("--rooms", type=int, default=100, help="K of the fan-out case (default 100)")
    args = ap.parse_args()
    base = SERVERS["pairpilot"]
    order = []
    for text in args.variant or ["pairpilot"]:
        name, env = _variant(text)
        name = f"pairpilot-{name}" if name != "pairpilot" else name
        SERVERS[name] = dataclasses.replace(base, name=name, env={**base.env, **env})
        order.append(name)
    if not args.no_reference:
        order.append(REFERENCE)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / "dev" / f"probe-{stamp}.jsonl"
    bench = Bench(out, quick=False, servers=order)
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in order}
    kind = "idle" if args.idle else "fanout"
    for round_ in range(args.rounds):
        for name in order if round_ % 2 == 0 else reversed(order):
            if args.idle:
                conns = args.idle
                row = bench.with_server(
                    name, lambda server, c=conns: bench.idle_body(server, c, IDLE_HOLD_S)
                )
            else:
                row = bench.fanout_case(name, args.rooms, 5, 2, args.duration)
            bench.record({"scenario": f"probe-{kind}", "server": name, "round": round_, **row})
            rows[name].append(row["summary"])
    for name, summaries in rows.items():
        figures = FIGURES[kind]
        medians = {key: statistics.median(s[key] for s in summaries) for key in figures}
        rounds = {key: [s[key] for s in summaries] for key in figures}
        print(f"probe: {name}: medians {medians} rounds {rounds}")
    print(f"probe: raw lines in {out}")


if __name__ == "__main__":
    main()
