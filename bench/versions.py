"""Version history storage: bytes kept for 1,000 edit sessions on a 100 KB document.

Each edit session is what a person's visit does to a room: a few dozen keystroke updates
appended to the log, then the unload's compaction, which stores an automatic checkpoint and
thins the older ones by the retention rule (src/pairpilot/storage/retention.py). The clock is
simulated (SESSION_GAP between sessions), so 1,000 sessions span weeks and thinning applies.
Runs through the real SqlRoomStore on SQLite and, when reachable, PostgreSQL.

    uv run --group bench python bench/versions.py [--sessions 1000] [--gap-minutes 90]
    uv run --group bench python bench/versions.py --plot results/versions-<stamp>.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import sqlalchemy as sa
from pycrdt import Doc, Map, Text

from pairpilot.storage.migrate import migrate
from pairpilot.storage.schema import room_versions
from pairpilot.storage.sql import SqlRoomStore, create_engine

RESULTS = Path(__file__).parent / "results"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
DOC_BYTES = 100 * 1024
KEYSTROKES = 40


def _source(size: int, rng: random.Random) -> str:
    words = ["def", "return", "self", "value", "items", "for", "in", "if", "else", "print"]
    lines: list[str] = []
    total = 0
    while total < size:
        line = "    " * rng.randint(0, 3) + " ".join(rng.choices(words, k=rng.randint(3, 9)))
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)[:size]


async def _measure(store: SqlRoomStore, room: str) -> tuple[int, int, int]:
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(sa.func.length(room_versions.c.state)), 0),
                    sa.func.coalesce(sa.func.sum(room_versions.c.size_bytes), 0),
                ).where(room_versions.c.room_id == room)
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


async def run_backend(url: str, sessions: int, gap: timedelta) -> list[dict[str, object]]:
    engine = create_engine(url)
    await migrate(engine)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store = SqlRoomStore(engine, clock=lambda: now)
    room = f"bench-{uuid.uuid4().hex[:8]}"
    rng = random.Random(1)
    doc: Doc = Doc()
    files = doc.get("files", type=Map)
    names = [f"module_{i}.py" for i in range(4)]
    with doc.transaction():
        for name in names:
            files[name] = Text(_source(DOC_BYTES // len(names), rng))
    await store.append([(room, doc.get_update())])
    await store.compact(room)
    rows: list[dict[str, object]] = []
    started = time.perf_counter()
    for session in range(1, sessions + 1):
        now += gap
        store.clock = lambda now=now: now
        # A visit: a new page (a new client id) types two runs of 20 characters at two places
        # and deletes a word, each keystroke its own update, as the browser sends them.
        visit: Doc = Doc()
        visit.apply_update(doc.get_update())
        for _ in range(2):
            text = visit.get("files", type=Map)[rng.choice(names)]
            position = rng.randint(0, len(str(text)))
            position = len(str(text)[:position].encode())
            for char in rng.choices("abcdefghij ();\n", k=KEYSTROKES // 2):
                before = visit.get_state()
                text.insert(position, char)
                position += 1
                await store.append([(room, visit.get_update(before))])
        text = visit.get("files", type=Map)[rng.choice(names)]
        before = visit.get_state()
        start = rng.randint(0, max(0, len(text) - 6))
        del text[start : start + 5]
        await store.append([(room, visit.get_update(before))])
        doc.apply_update(visit.get_update(doc.get_state()))
        await store.compact(room, checkpoint=True)
        if session in {1, 10, 50} or session % 100 == 0:
            kept, stored, raw = await _measure(store, room)
            rows.append(
                {
                    "sessions": session,
                    "simulated_days": round((session * gap).total_seconds() / 86400, 1),
                    "versions_kept": kept,
                    "bytes_stored": stored,
                    "bytes_per_version": stored // kept,
                    "state_bytes_per_version": raw // kept,
                    "doc_bytes": len(doc.get_update()),
                    "doc_compressed_bytes": len(zlib.compress(doc.get_update(), 6)),
                }
            )
    elapsed = time.perf_counter() - started
    await engine.dispose()
    rows[-1]["seconds"] = round(elapsed, 1)
    return rows


async def _postgres_url() -> tuple[str, str] | None:
    name = f"pairpilot_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", name


async def _drop(name: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN, timeout=3)
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _table(backend: str, rows: list[dict[str, object]]) -> str:
    header = (
        "| sessions | simulated days | versions kept | bytes stored | bytes / version |"
        " document (compressed) | bytes / version ÷ document | document (Yjs update) |"
    )
    lines = [f"### {backend}", "", header, "|" + "---|" * 8]
    lines += [
        f"| {row['sessions']} | {row['simulated_days']} | {row['versions_kept']} |"
        f" {row['bytes_stored']:,} | {row['bytes_per_version']:,} |"
        f" {row['doc_compressed_bytes']:,} |"
        f" {row['bytes_per_version'] / row['doc_compressed_bytes']:.2f} |"
        f" {row['doc_bytes']:,} |"
        for row in rows
    ]
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--gap-minutes", type=float, default=90)
    args = parser.parse_args()
    gap = timedelta(minutes=args.gap_minutes)
    results: dict[str, list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/versions.sqlite3"
        results["sqlite"] = await run_backend(url, args.sessions, gap)
    postgres = await _postgres_url()
    if postgres is not None:
        try:
            results["postgresql"] = await run_backend(postgres[0], args.sessions, gap)
        finally:
            await _drop(postgres[1])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"versions-{stamp}.json").write_text(json.dumps(results, indent=1) + "\n")
    report = "\n\n".join(_table(backend, rows) for backend, rows in results.items())
    (RESULTS / f"versions-{stamp}.md").write_text(report + "\n")
    print(report)
    _plot(results, RESULTS / "versions.png")


def _plot(results: dict[str, list[dict[str, object]]], path: Path) -> None:
    import matplotlib as mpl  # noqa: PLC0415 - only the bench group has it

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for backend, rows in results.items():
        sessions = [row["sessions"] for row in rows]
        left.plot(sessions, [row["versions_kept"] for row in rows], marker="o", label=backend)
        right.plot(
            sessions,
            [row["bytes_per_version"] for row in rows],
            marker="o",
            label=f"{backend}: stored bytes per version",
        )
        right.plot(
            sessions,
            [row["doc_compressed_bytes"] for row in rows],
            linestyle="--",
            label=f"{backend}: the document now, compressed",
        )
    left.set(xlabel="edit sessions", ylabel="versions kept", title="versions kept (retention)")
    right.set(
        xlabel="edit sessions", ylabel="bytes", title="a version costs one (compressed) document"
    )
    right.set_ylim(bottom=0)
    for axis in (left, right):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--plot":  # redraw from a results .json
        _plot(json.loads(Path(sys.argv[2]).read_text()), RESULTS / "versions.png")
    else:
        asyncio.run(main())
