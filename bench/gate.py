"""Release gate: is PairPilot still ahead of the reference server on the K100 fan-out case?

    uv run --group bench python bench/gate.py        # ~6 min; exit 1 when PairPilot is behind
    uv run --group bench python bench/gate.py --aa   # the noise: PairPilot against itself

K100 N5 R2 (5 s warm-up, ``--seconds`` measured, 15 by default), PairPilot and the reference
(@y/websocket-server) taking turns for ``--rounds`` rounds, the order flipping each round, as
the matrix's target rounds do. Each round gives a paired ratio (PairPilot's p90, p99 and server CPU
over the other server's, measured one after the other); the gate takes the median of the
rounds' ratios and fails when it is above the noise: what the same statistic reaches between
two identical servers. The noise is derived from the A/A rounds on record with the same
measured window (``results/dev/gate-aa-*.jsonl``, written by ``--aa``; rows without a window
are the first record's 4 s cases): the 95th percentile of the median of ``--rounds`` paired
ratios drawn from them (a bootstrap), so it narrows as rounds are added and as A/A runs
accumulate; the gate prints how many it rests on. A case disturbed by other work on the
machine is run again, as in the matrix. Raw lines go to results/dev/gate-*.jsonl. Run it on
demand and before a release, on an otherwise idle machine; it is not part of .ci/run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import random
import statistics
import sys
from typing import Any

from run import REFERENCE, RESULTS, Bench
from servers import SERVERS

K, N, R = 100, 5, 2
# A 4 s window (the first record's) put a handful of pauses in its top 1 %: paired p99 ratios
# of identical servers spread from 0.16 to 2.56, so the gate let a 2x p99 regression pass.
DURATION_S = 15.0
FIRST_RECORD_S = 4.0  # the window of A/A rows recorded without one
# p90 as well as p99: between identical servers a case's p99 moves by 2x and more (the driver's
# and the kernel's pauses), its p90 by a few per cent, so p90 is what catches a slower server.
KEYS = ("p90_ms", "p99_ms", "cpu_pct")
TWIN = "pairpilot-twin"
CONFIDENCE = 0.95
BOOTSTRAP_DRAWS = 20_000


def paired_ratios(rows: list[dict[str, Any]], ours: str, theirs: str) -> dict[str, list[float]]:
    """Per round and key, ``ours``'s figure over ``theirs``'s (the two ran one after the other)."""
    by_round: dict[int, dict[str, dict[str, float]]] = {}
    for row in rows:
        latency = row.get("driver_result", {}).get("latency_ms") or {}
        figures = {**row["summary"], "p90_ms": latency.get("p90", math.nan)}
        by_round.setdefault(row["round"], {})[row["server"]] = figures
    pairs = [r for r in by_round.values() if ours in r and theirs in r]
    return {key: [r[ours][key] / max(r[theirs][key], 1e-9) for r in pairs] for key in KEYS}


def aa_ratios(seconds: float) -> tuple[dict[str, list[float]], int]:
    """The paired ratios of the A/A rounds on record measured over ``seconds``, and how many
    runs they came from."""
    found: dict[str, list[float]] = {key: [] for key in KEYS}
    runs = 0
    for path in sorted((RESULTS / "dev").glob("gate-aa-*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r.get("seconds", FIRST_RECORD_S) == seconds]
        runs += bool(rows)
        for key, ratios in paired_ratios(rows, "pairpilot", TWIN).items():
            found[key].extend(ratios)
    return found, runs


def noise(ratios: list[float], rounds: int) -> float:
    """The ratio a median of ``rounds`` A/A paired ratios stays within, at ``CONFIDENCE``.

    Either way: an identical server may come out faster or slower, so the margin is the
    quantile of ``max(m, 1/m)`` over bootstrap draws (seeded: the same record, the same margin).
    """
    rng = random.Random(22)
    spread = sorted(
        math.exp(abs(math.log(statistics.median(rng.choices(ratios, k=rounds)))))
        for _ in range(BOOTSTRAP_DRAWS)
    )
    return spread[int(CONFIDENCE * len(spread))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="rounds per server (default 5)")
    ap.add_argument("--aa", action="store_true", help="PairPilot against a second PairPilot")
    ap.add_argument(
        "--seconds", type=float, default=DURATION_S, help="measured window per case (default 15)"
    )
    args = ap.parse_args()
    if args.aa:
        SERVERS[TWIN] = dataclasses.replace(SERVERS["pairpilot"], name=TWIN)
    pair = ["pairpilot", TWIN if args.aa else REFERENCE]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / "dev" / f"gate-{'aa-' if args.aa else ''}{stamp}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    record, runs = aa_ratios(args.seconds)
    if not args.aa and not all(record.values()):
        print(f"gate: no A/A rounds of {args.seconds:g} s on record: run --aa first (no verdict)")
        return 2
    bench = Bench(out, quick=False, servers=pair)  # 5 s warm-up
    rows: list[dict[str, Any]] = []
    for round_ in range(1, args.rounds + 1):
        for name in pair if round_ % 2 else reversed(pair):
            row = bench.fanout_case(name, K, N, R, args.seconds)
            if not row.get("ok") or row["summary"].get("lost"):
                print(f"gate: {name} failed the case itself (lost or diverged): {row['summary']}")
                return 1
            row = {"scenario": "gate", "server": name, "round": round_, **row}
            row["seconds"] = args.seconds
            bench.record(row)
            rows.append(row)
    ratios = paired_ratios(rows, pair[0], pair[1])
    behind = []
    for key in KEYS:
        ratio = statistics.median(ratios[key])
        margin = noise(record[key], args.rounds) if record[key] else float("nan")
        verdict = "behind" if ratio > margin else "ok"
        print(
            f"gate: {key}: median paired ratio {ratio:.2f} over {len(ratios[key])} rounds "
            f"(noise {margin:.2f}, from {len(record[key])} A/A rounds in {runs} runs): {verdict}"
        )
        if ratio > margin:
            behind.append(key)
    print(f"gate: raw lines in {out}")
    if args.aa:
        print(f"gate: A/A paired ratios of this run: {ratios}")
        return 0
    return 1 if behind else 0


if __name__ == "__main__":
    sys.exit(main())
