"""Tables (markdown, into bench/README.md between markers) and PNG plots from one run's JSON lines.

`uv run python bench/report.py [--results FILE] [--dev] [--no-readme]`

Every cell comes from the one results file given (default: the newest full run in
bench/results/; with --dev the newest quick run in bench/results/dev/, whose tables are printed
but never written into the README). A case whose correctness check failed has no speed: its
cells read FAIL.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
README = BENCH / "README.md"
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
REFERENCE = "y-websocket-server"
FAIL = "FAIL"

Row = dict[str, Any]


def load(path: Path) -> list[Row]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def newest(folder: Path) -> Path:
    files = sorted(folder.glob("run-*.jsonl"))
    if not files:
        raise SystemExit(f"no results in {folder}: run bench/run.py first")
    return files[-1]


def fmt(x: float | None, nd: int = 1) -> str:
    if x is None:
        return "-"
    return f"{x:,.{nd}f}"


def cell(text: str, limit: int = 120) -> str:
    """One line of a markdown cell: the last line of a traceback says what went wrong."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    one = lines[0] if len(lines) <= 1 else f"{lines[0]} ... {lines[-1]}"
    one = one.replace("|", "/")
    return one if len(one) <= limit else one[: limit - 3] + "..."


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def by(rows: list[Row], scenario: str) -> list[Row]:
    return [r for r in rows if r.get("scenario") == scenario]


def meta_section(rows: list[Row]) -> str:
    meta = next((r for r in rows if r.get("scenario") == "meta"), {})
    m = meta.get("machine", {})
    v = meta.get("versions", {})
    vers = ", ".join(f"{k} {val}" for k, val in v.items())
    mode = "quick (development) run" if meta.get("quick") else "full run"
    return (
        f"Run `{meta.get('run')}` ({mode}, started {meta.get('started')}): "
        f"{m.get('cpus')} x {m.get('model')}, {m.get('mem_gb')} GB, Linux {m.get('kernel')}; "
        f"server on CPU 0, clients on CPU 1.\n\nVersions: {vers}."
    )


def fanout_section(rows: list[Row]) -> str:
    out = []
    for r in by(rows, "fanout"):
        c = r["case"]
        s = r.get("summary", {})
        u = r.get("server_usage", {})
        ok = r.get("ok")
        case = f"K{c['rooms']} N{c['clients']} R{c['rate']}"
        if r.get("disturbed"):
            case += " (disturbed)"
        load_ = f"{c['edits_per_s']:,} in / {c['deliveries_per_s']:,} out"
        lat = [fmt(s.get(k), 1) for k in ("p50_ms", "p99_ms", "max_ms")] if ok else [FAIL] * 3
        out.append(
            [
                case,
                load_,
                r["server"],
                *lat,
                fmt(u.get("cpu_pct")) if ok else FAIL,
                fmt(s.get("peak_rss_mb")),
                str(s.get("lost")),
                "yes" if s.get("diverged") == 0 else "NO",
                fmt(s.get("driver_cpu_pct")),
                _gc(r),
                fmt(_others(u, s)),
            ]
        )
    head = [
        "case",
        "edits/s",
        "server",
        "p50 ms",
        "p99 ms",
        "max ms",
        "server CPU %",
        "peak RSS MB",
        "lost",
        "converged",
        "client CPU %",
        "client GC pauses ms (longest)",
        "other work on the machine %",
    ]
    return table(head, out)


def _gc(row: Row) -> str:
    """The driver's GC pauses during the load: total ms and the longest (older runs: -)."""
    gc = ((row.get("driver_result") or {}).get("driver") or {}).get("gc")
    if not gc:
        return "-"
    return f"{gc['ms']:,.0f} ({gc['max_ms']:.0f})"


def _others(usage: dict[str, Any], summary: dict[str, Any]) -> float | None:
    """CPU % used by neither the server nor the driver: noise from outside the benchmark."""
    busy, server, driver = (
        usage.get("machine_busy_pct"),
        usage.get("cpu_pct"),
        summary.get("driver_cpu_pct"),
    )
    if busy is None or server is None or driver is None:
        return None
    return max(0.0, busy - server - driver)


def capacity_section(rows: list[Row]) -> str:
    out = [
        [r["server"], str(r.get("largest_k") or FAIL), str(r.get("stopped"))]
        for r in by(rows, "capacity")
    ]
    return table(["server", "largest K held (N5 R2)", "stopped by"], out)


def coldload_section(rows: list[Row]) -> str:
    out = []
    for r in by(rows, "coldload"):
        s = r.get("summary", {})
        ok = r.get("ok")
        out.append(
            [
                r["server"],
                fmt(s.get("cpu_s_median"), 2) if ok else FAIL,
                fmt(s.get("synced_ms_median"), 0) if ok else FAIL,
                fmt(s.get("peak_rss_mb")),
                fmt(s.get("update_mb"), 2),
            ]
        )
    head = ["server", "server CPU s / load", "time to synced ms", "peak RSS MB", "update MB"]
    loads = {r["case"]["loads"] for r in by(rows, "coldload")}
    n = "/".join(str(x) for x in sorted(loads)) or "5"
    return table(head, out) + f"\n\nMedian of {n} cold loads of a 1,000,000-character document."


def idle_section(rows: list[Row]) -> str:
    per: dict[str, dict[int, Row]] = defaultdict(dict)
    for r in by(rows, "idle"):
        per[r["server"]][r["case"]["connections"]] = r
    marginal = {r["server"]: r for r in by(rows, "idle-marginal")}
    out = []
    sizes = [1000, 3000]
    for server, cases in per.items():
        sizes = sorted(cases)
        lo, hi = cases.get(sizes[0], {}), cases.get(sizes[-1], {})
        m = marginal.get(server, {})
        out.append(
            [
                server,
                fmt(lo.get("summary", {}).get("base_rss_mb")),
                fmt(lo.get("summary", {}).get("rss_mb")) if lo.get("ok") else FAIL,
                fmt(hi.get("summary", {}).get("rss_mb")) if hi.get("ok") else FAIL,
                fmt(m.get("kb_per_connection")) if m.get("ok") else FAIL,
                fmt(lo.get("summary", {}).get("idle_cpu_pct")),
                fmt(hi.get("summary", {}).get("idle_cpu_pct")),
            ]
        )
    head = [
        "server",
        "RSS empty MB",
        f"RSS @{sizes[0]:,} MB",
        f"RSS @{sizes[-1]:,} MB",
        "KB / connection",
        f"idle CPU % @{sizes[0]:,}",
        f"idle CPU % @{sizes[-1]:,}",
    ]
    return table(head, out)


def durability_section(rows: list[Row]) -> str:
    out = []
    for r in by(rows, "durability"):
        if not r.get("ok"):
            out.append([r["server"], FAIL, FAIL, str(r.get("error", ""))[:80]])
            continue
        steps = ", ".join(
            f"{st['rate']}/s: {fmt(st['bytes_per_edit'], 0)} B" for st in r.get("steps", [])
        )
        s = r.get("summary", {})
        fell = s.get("fell_behind_at")
        out.append(
            [
                r["server"],
                steps,
                str(s.get("largest_rate_kept_up")),
                f"at {fell}/s" if fell else "not within the steps",
            ]
        )
    head = ["server", "bytes written per edit, by edit rate", "edits/s kept up", "fell behind"]
    return table(head, out) + (
        "\n\nSQLite: the server's `/proc/<pid>/io` write_bytes; PostgreSQL: WAL bytes "
        "(`pg_current_wal_lsn()`). Kept up: a SIGKILL 2 x PAIRPILOT_FLUSH_MS after the last edit "
        "lost no edit."
    )


def _round_medians(rows: list[Row], server: str) -> tuple[float, float, int] | None:
    """Median p99 and median CPU of a server's K100 rounds (None without clean rounds)."""
    mine = [r for r in by(rows, "fanout-round") if r["server"] == server]
    if not mine or not all(r.get("ok") and not r.get("disturbed") for r in mine):
        return None
    p99 = statistics.median(r["summary"]["p99_ms"] for r in mine)
    cpu = statistics.median(r["server_usage"]["cpu_pct"] for r in mine)
    return round(p99, 2), round(cpu, 1), len(mine)


def rounds_section(rows: list[Row]) -> str:
    """Every K100 round of the fanout target, and the medians the target is judged on."""
    per: dict[str, list[Row]] = defaultdict(list)
    for r in by(rows, "fanout-round"):
        per[r["server"]].append(r)
    out = []
    for server, mine in per.items():
        mine.sort(key=lambda r: r["round"])
        cells = [
            f"{fmt(r['summary']['p99_ms'], 1)} / {fmt(r['server_usage']['cpu_pct'], 1)}"
            if r.get("ok")
            else FAIL
            for r in mine
        ]
        medians = _round_medians(rows, server)
        median = f"**{medians[0]} / {medians[1]}**" if medians else FAIL
        out.append([server, " · ".join(cells), median, " · ".join(_gc(r) for r in mine)])
    head = [
        "server",
        "p99 ms / server CPU % of each round, in order",
        "median",
        "client GC pauses ms (longest), each round",
    ]
    return table(head, out)


# Issue #16's targets, each a ratio to the reference in the same run.
P99_RATIO, CPU_RATIO, RSS_RATIO = 0.75, 0.75, 0.8
CAPACITY_RATIO, COLDLOAD_RATIO = 1.25, 0.5
DURABILITY_RATE = 3200
DURABILITY_BYTES = {"pairpilot": 1024, "pairpilot-pg": 200}


def _round_rss(rows: list[Row], server: str) -> float | None:
    mine = [r for r in by(rows, "fanout-round") if r["server"] == server and r.get("ok")]
    peaks = [r["summary"]["peak_rss_mb"] for r in mine if r["summary"].get("peak_rss_mb")]
    return round(statistics.median(peaks), 1) if peaks else None


def _ratio_row(what: str, ours: float, theirs: float, unit: str, limit: float) -> list[str]:
    ratio = ours / theirs if theirs else float("inf")
    measured = f"{ours} vs {theirs} {unit} (x{ratio:.2f})"
    return [f"{what} ≤ {limit}x reference", measured, _yn(met=ratio <= limit)]


def _fanout_targets(rows: list[Row]) -> list[list[str]]:
    ours, theirs = _round_medians(rows, "pairpilot"), _round_medians(rows, REFERENCE)
    if not (ours and theirs):
        return [["fanout K100 (medians of the rounds)", "rounds failed or disturbed", "**no**"]]
    what = f"fanout K100 {{}} (median of {ours[2]} rounds)"
    checks = [
        _ratio_row(what.format("p99"), ours[0], theirs[0], "ms", P99_RATIO),
        _ratio_row(what.format("CPU"), ours[1], theirs[1], "%", CPU_RATIO),
    ]
    rss, rss_ref = _round_rss(rows, "pairpilot"), _round_rss(rows, REFERENCE)
    if rss and rss_ref:
        checks.append(_ratio_row(what.format("peak RSS"), rss, rss_ref, "MB", RSS_RATIO))
    return checks


def _capacity_targets(rows: list[Row]) -> list[list[str]]:
    cap = {r["server"]: r for r in by(rows, "capacity")}
    if "pairpilot" not in cap or REFERENCE not in cap:
        return []
    a, b = cap["pairpilot"].get("largest_k"), cap[REFERENCE].get("largest_k")
    stops = [str(cap[s].get("stopped", "")) for s in ("pairpilot", REFERENCE)]
    both_client_bound = all("client-bound" in stop for stop in stops)
    if not (cap["pairpilot"].get("ok") and cap[REFERENCE].get("ok") and a and b):
        met = "not comparable (a run failed or was disturbed)"
    elif both_client_bound:
        met = "both client-bound (see Capacity)"
    else:
        met = _yn(met=a >= CAPACITY_RATIO * b)
    return [[f"capacity largest K ≥ {CAPACITY_RATIO}x reference", f"{a} vs {b}", met]]


def _cases(rows: list[Row]) -> list[dict[str, Any]]:
    return [r["case"] for r in by(rows, "idle")]


def _idle_targets(rows: list[Row]) -> list[list[str]]:
    checks: list[list[str]] = []
    idle = {r["server"]: r for r in by(rows, "idle-marginal") if r.get("ok")}
    if "pairpilot" in idle and REFERENCE in idle:
        a, b = idle["pairpilot"]["kb_per_connection"], idle[REFERENCE]["kb_per_connection"]
        checks.append(["idle RSS / connection ≤ reference", f"{a} vs {b} KB", _yn(met=a <= b)])
    largest = max((c["connections"] for c in _cases(rows)), default=None)
    busy = {
        r["server"]: r["summary"]["idle_cpu_pct"]
        for r in by(rows, "idle")
        if r.get("ok") and r["case"]["connections"] == largest
    }
    if "pairpilot" in busy and REFERENCE in busy:
        a, b = busy["pairpilot"], busy[REFERENCE]
        checks.append([f"idle CPU @{largest:,} ≤ reference", f"{a} vs {b} %", _yn(met=a <= b)])
    return checks


def _durability_targets(rows: list[Row]) -> list[list[str]]:
    checks: list[list[str]] = []
    dur = {r["server"]: r for r in by(rows, "durability") if r.get("ok")}
    for server, limit in DURABILITY_BYTES.items():
        if server not in dur or not dur[server].get("steps"):
            continue
        summary = dur[server]["summary"]
        kept = summary.get("largest_rate_kept_up") or 0
        checks.append(
            [
                f"{server}: no edit lost at {DURABILITY_RATE:,} edits/s",
                f"kept up to {kept:,}/s",
                _yn(met=kept >= DURABILITY_RATE),
            ]
        )
        worst = max(st["bytes_per_edit"] for st in dur[server]["steps"])
        checks.append(
            [f"{server}: ≤ {limit} B / edit (worst step)", f"{worst} B", _yn(met=worst <= limit)]
        )
    return checks


def targets_section(rows: list[Row]) -> str:
    """Issue #16's targets, PairPilot against the reference, as measured (not judged by hand)."""
    checks = _fanout_targets(rows) + _capacity_targets(rows) + _idle_targets(rows)
    cold = {r["server"]: r for r in by(rows, "coldload") if r.get("ok")}
    if "pairpilot" in cold and REFERENCE in cold:
        a = cold["pairpilot"]["summary"]["cpu_s_median"]
        b = cold[REFERENCE]["summary"]["cpu_s_median"]
        checks.append(_ratio_row("coldload CPU / load", a, b, "s", COLDLOAD_RATIO))
    checks += _durability_targets(rows)
    return table(["target", "measured", "met"], checks)


def _yn(*, met: bool) -> str:
    return "yes" if met else "**no**"


def plots(rows: list[Row], folder: Path) -> list[Path]:
    made = []
    series: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    seen: set[tuple[str, int]] = set()
    for r in by(rows, "fanout") + by(rows, "capacity-step"):  # one point per load: fanout's
        key = (r["server"], r["case"]["deliveries_per_s"])
        if key in seen or not r.get("ok") or r.get("summary", {}).get("p99_ms") is None:
            continue
        seen.add(key)
        s = r["summary"]
        series[r["server"]].append((key[1], s["p50_ms"], s["p99_ms"]))
    if series:
        fig, ax = plt.subplots(figsize=(8, 5))
        for i, (server, pts) in enumerate(sorted(series.items())):
            pts.sort()
            xs = [p[0] for p in pts]
            color = f"C{i}"
            ax.plot(xs, [p[2] for p in pts], "o-", color=color, label=f"{server} p99")
            ax.plot(xs, [p[1] for p in pts], "x--", color=color, label=f"{server} p50")
        ax.axhline(50, color="grey", lw=0.8, ls=":", label="50 ms (capacity limit)")
        ax.set_xlabel("deliveries per second (edits in x (N-1))")
        ax.set_ylabel("send → observe latency, ms")
        ax.set_yscale("log")
        ax.set_title("Latency against load (fanout and capacity steps)")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(visible=True, which="both", alpha=0.3)
        path = folder / "latency.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)
    mem: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in by(rows, "idle"):
        if r.get("ok"):
            s = r["summary"]
            mem[r["server"]].append((0, s["base_rss_mb"]))
            mem[r["server"]].append((r["case"]["connections"], s["rss_mb"]))
    if mem:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for server, raw in sorted(mem.items()):
            pts = sorted(dict(raw).items())
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=server)
        ax.set_xlabel("idle connections (10 per room)")
        ax.set_ylabel("server RSS, MB")
        ax.set_title("Memory against connections")
        ax.legend(fontsize=8)
        ax.grid(visible=True, alpha=0.3)
        path = folder / "memory.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)
    return made


def render(rows: list[Row], results: Path, images: list[Path]) -> str:
    rel = results.relative_to(BENCH) if results.is_relative_to(BENCH) else results
    parts = [
        meta_section(rows),
        f"Raw JSON lines: `{rel}`.",
        "### Targets\n\n" + targets_section(rows),
        "### Fanout\n\n" + fanout_section(rows),
        "### Fanout target: K100 rounds\n\n"
        + rounds_section(rows)
        + "\n\nK100 N5 R2 again, PairPilot and the reference taking turns (the order flips each "
        "round); the target is judged on the medians.",
        "### Capacity\n\n" + capacity_section(rows),
        "### Cold load\n\n" + coldload_section(rows),
        "### Idle connections\n\n" + idle_section(rows),
        "### Durability cost (PairPilot)\n\n" + durability_section(rows),
    ]
    for img in images:
        rimg = img.relative_to(BENCH) if img.is_relative_to(BENCH) else img
        parts.append(f"![{img.stem}]({rimg})")
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--results", type=Path, help="a results .jsonl file")
    ap.add_argument("--dev", action="store_true", help="newest quick run (bench/results/dev/)")
    ap.add_argument("--no-readme", action="store_true", help="print only; leave README.md")
    args = ap.parse_args(argv)
    results = args.results or newest(RESULTS / "dev" if args.dev else RESULTS)
    rows = load(results)
    images = plots(rows, results.parent)
    text = render(rows, results, images)
    quick = any(r.get("quick") for r in rows)
    if args.no_readme or quick:
        sys.stdout.write(text)
        if quick and not args.no_readme:
            print("(a quick run: tables printed, README.md left as it is)", file=sys.stderr)
        return 0
    readme = README.read_text()
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the markers {BEGIN} … {END}")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")
    print(f"README.md tables updated from {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
