"""Development probe: K100 N5 R2 rounds of PairPilot, the reference server, and PairPilot with
its flush deferred to 10 s (and no compaction), taking turns. Not part of the matrix.

    uv run --group bench python bench/probe_flush.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt

from run import RESULTS, Bench
from servers import SERVERS

DEFERRED = "pairpilot-flush-10s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    base = SERVERS["pairpilot"]
    env = {**base.env, "PAIRPILOT_FLUSH_MS": "10000", "PAIRPILOT_COMPACT_MIN_BYTES": "100000000"}
    SERVERS[DEFERRED] = dataclasses.replace(base, name=DEFERRED, env=env)
    order = ["pairpilot", "y-websocket-server", DEFERRED]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    bench = Bench(RESULTS / "dev" / f"probe-flush-{stamp}.jsonl", quick=False, servers=order)
    for round_ in range(args.rounds):
        for name in order if round_ % 2 == 0 else reversed(order):
            row = bench.fanout_case(name, 100, 5, 2, 20.0)
            bench.record({"scenario": "probe-flush", "server": name, "round": round_, **row})


if __name__ == "__main__":
    main()
