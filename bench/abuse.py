"""Issue #21's abusive visitor: what it costs an honest pair editing another room.

    uv run python bench/abuse.py [--rounds 3]

Each round runs two cases on fresh servers with the documented guardrail defaults, in turns
(the order flips each round): "quiet", the honest pair alone for the floods' duration, and
"abuse", the same pair while tests/interop/abuse.mjs grows a room with 8 MiB inserts (4 a
second for 10 s), opens 500 sockets to one room, signs in 1,000 times and creates 1,000 rooms,
and a zip bomb and snapshot POSTs past the quota arrive (tests/abuse.py). Figures: the honest
pair's typed-to-seen latency (p50, p99), the server's peak RSS with its merge worker, and what
each flood got back. The server runs on CPU 0, the clients on CPU 1. Raw rounds go to
results/abuse-<stamp>.json; medians are printed as the table bench/README.md quotes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.abuse import AbuseReport, run_abuse, server_env  # noqa: E402

from pairpilot.testing import ServerProcess  # noqa: E402

RESULTS = Path(__file__).parent / "results"


# As in the matrix (bench/servers.py): the server (and the merge worker it spawns) on CPU 0,
# this process, the honest pair and the Node floods on CPU 1, so the figures are the server's.
SERVER_CPU, CLIENT_CPU = 0, 1


def _pin(pid: int, cpu: int) -> None:
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})


async def _case(node: str, *, abuse: bool) -> AbuseReport:
    with tempfile.TemporaryDirectory() as data:
        server = ServerProcess(server_env(Path(data)))
        server.start()
        _pin(server.pid, SERVER_CPU)
        try:
            return await run_abuse(server, node, abuse=abuse)
        finally:
            server.stop()


async def _rounds(rounds: int, node: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for round_ in range(rounds):
        order = (False, True) if round_ % 2 == 0 else (True, False)
        for abuse in order:
            report = await _case(node, abuse=abuse)
            row = {"round": round_, "case": "abuse" if abuse else "quiet"}
            row |= dataclasses.asdict(report)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "floods"}), flush=True)
    return rows


def _median(rows: list[dict[str, object]], case: str, key: str) -> float:
    return statistics.median(float(str(r[key])) for r in rows if r["case"] == case)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is needed (scripts/setup.sh installs the interop packages)")
    os.sched_setaffinity(0, {CLIENT_CPU})  # the Node floods inherit it
    rows = asyncio.run(_rounds(args.rounds, node))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"abuse-{stamp}.json"
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"\nraw rounds: {out.relative_to(ROOT)}\n")
    print("| case | honest p50 ms | honest p99 ms | peak RSS MB | typed / stored |")
    print("|---|---|---|---|---|")
    for case in ("quiet", "abuse"):
        typed = _median(rows, case, "honest_typed")
        stored = _median(rows, case, "honest_stored")
        print(
            f"| {case} | {_median(rows, case, 'p50_ms')} | {_median(rows, case, 'p99_ms')} |"
            f" {_median(rows, case, 'peak_rss_mb')} | {typed:.0f} / {stored:.0f} |"
        )
    ratio = _median(rows, "abuse", "p99_ms") / _median(rows, "quiet", "p99_ms")
    print(f"\np99 under abuse / quiet (medians of {args.rounds} rounds): {ratio:.2f}x")


if __name__ == "__main__":
    main()
