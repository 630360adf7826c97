"""Release gate: is PairPilot still ahead of the reference server on the K100 fan-out case?

    uv run --group bench python bench/gate.py        # ~4 min; exit 1 when PairPilot is behind
    uv run --group bench python bench/gate.py --aa   # the noise: PairPilot against itself

K100 N5 R2 in the quick mode's cases (1 s warm-up, 4 s measured), PairPilot and the reference
(@y/websocket-server) taking turns for ``--rounds`` rounds, the order flipping each round, as
the matrix's target rounds do. The gate compares medians of the rounds: PairPilot fails when its
p99 or its server CPU is above the reference's by more than the noise, the largest ratio seen
between two identical servers in A/A runs of this same gate (``--aa`` runs PairPilot against a
second PairPilot and prints the ratios; bench/README.md, "Release gate", has the measurements
behind ``NOISE``). A case disturbed by other work on the machine is run again, as in the matrix.
Raw lines go to results/dev/gate-*.jsonl. Run it on demand and before a release, on an otherwise
idle machine; it is not part of .ci/run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import statistics
import sys
from typing import Any

from run import REFERENCE, RESULTS, Bench
from servers import SERVERS

K, N, R = 100, 5, 2
DURATION_S = 4.0
# The largest median ratio seen between two identical PairPilots (A/A) in three runs of this
# gate, rounded up (bench/README.md, "Release gate": p99 1.04, 1.01, 2.04; CPU 1.02, 1.00,
# 1.07): a gap smaller than this is not a gap.
NOISE = {"p99_ms": 2.05, "cpu_pct": 1.10}
TWIN = "pairpilot-twin"


def _medians(rows: list[dict[str, Any]], name: str) -> dict[str, float]:
    mine = [row["summary"] for row in rows if row["server"] == name]
    return {key: statistics.median(s[key] for s in mine) for key in NOISE}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per server (default 3)")
    ap.add_argument("--aa", action="store_true", help="PairPilot against a second PairPilot")
    args = ap.parse_args()
    if args.aa:
        SERVERS[TWIN] = dataclasses.replace(SERVERS["pairpilot"], name=TWIN)
    pair = ["pairpilot", TWIN if args.aa else REFERENCE]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / "dev" / f"gate-{'aa-' if args.aa else ''}{stamp}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    bench = Bench(out, quick=True, servers=pair)
    rows: list[dict[str, Any]] = []
    for round_ in range(1, args.rounds + 1):
        for name in pair if round_ % 2 else reversed(pair):
            row = bench.fanout_case(name, K, N, R, DURATION_S)
            if not row.get("ok") or row["summary"].get("lost"):
                print(f"gate: {name} failed the case itself (lost or diverged): {row['summary']}")
                return 1
            row = {"scenario": "gate", "server": name, "round": round_, **row}
            bench.record(row)
            rows.append(row)
    ours, theirs = _medians(rows, pair[0]), _medians(rows, pair[1])
    behind = []
    for key, noise in NOISE.items():
        ratio = ours[key] / max(theirs[key], 1e-9)
        verdict = "behind" if ratio > noise else "ok"
        print(
            f"gate: {key}: {pair[0]} {ours[key]:.2f}, {pair[1]} {theirs[key]:.2f}, "
            f"ratio {ratio:.2f} (noise {noise:.2f}): {verdict}"
        )
        if ratio > noise:
            behind.append(key)
    print(f"gate: raw lines in {out}")
    if args.aa:  # the noise is the larger of the ratio and its inverse
        spread = {key: max(r := ours[key] / theirs[key], 1 / r) for key in NOISE}
        print(f"gate: A/A spread: {spread}")
        return 0
    return 1 if behind else 0


if __name__ == "__main__":
    sys.exit(main())
