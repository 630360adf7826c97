"""`pairpilot serve | migrate | rooms`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pairpilot import __version__
from pairpilot.errors import ConfigurationError

if TYPE_CHECKING:
    from pairpilot.settings import Settings
    from pairpilot.web.affinity import WorkerPlace

# Everything else is imported by the command that needs it: the compaction's merge worker is a
# spawned process, which imports the console script's module again before it merges; the
# settings' pydantic and the logging's structlog there cost the worker ~13 MB of its ~44.

MALLOC_ARENAS = 2  # the event loop's thread, and one for every other thread


def serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    place: WorkerPlace | None = None,
) -> None:
    """Run the server until interrupted (on a SO_REUSEPORT socket when one of several).

    ``place`` names a worker of ``serve --workers N``: with ``PAIRPILOT_WORKER_AFFINITY`` on
    (the default), a room's sockets are passed to the room's home worker (``web.affinity``).
    """
    from pairpilot.observability.memory import limit_arenas  # noqa: PLC0415 - see the top
    from pairpilot.web import create_app  # noqa: PLC0415
    from pairpilot.web.affinity import RoomAffinity  # noqa: PLC0415
    from pairpilot.web.server import make_server, reuse_port_socket  # noqa: PLC0415

    if "MALLOC_ARENA_MAX" not in os.environ:  # glibc's own variable wins
        # Before any thread starts. The worker threads allocate little; glibc's default, 8
        # arenas per core, kept ~4 MB free in 15 thread arenas at K100, and the cap took
        # ~2 MB off the peak (bench/README.md, "Where memory goes").
        limit_arenas(MALLOC_ARENAS)
    app = create_app(settings)
    affinity = None
    if place is not None and settings.worker_affinity:
        affinity = RoomAffinity(place, app.state.services.metrics)
    server = make_server(app, host, port, affinity=affinity)
    server.run(sockets=[reuse_port_socket(host, port)] if reuse_port else None)


async def _migrate(settings: Settings) -> None:
    # Alembic costs seconds to import: a restarted server should not pay for it.
    from pairpilot.storage.migrate import migrate  # noqa: PLC0415
    from pairpilot.storage.sql import create_engine  # noqa: PLC0415

    engine = create_engine(settings.resolved_database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    root = argparse.ArgumentParser(
        prog="pairpilot",
        description="PairPilot collaboration server. Configuration comes from the environment "
        "(PAIRPILOT_DATA_DIR, DATABASE_URL, PAIRPILOT_FLUSH_MS, ...; see README).",
    )
    root.add_argument("--version", action="version", version=f"pairpilot {__version__}")
    commands = root.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the server (embedded SQLite when unconfigured)")
    run.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT); more than 1 needs REDIS_URL",
    )
    # A worker of `serve --workers N` (workers.py): its index, N, and the run's private directory.
    run.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    run.add_argument("--worker-count", type=int, help=argparse.SUPPRESS)
    run.add_argument("--worker-dir", help=argparse.SUPPRESS)
    commands.add_parser("migrate", help="apply the database migrations and exit")
    operate = commands.add_parser("rooms", help="list, show, delete or export stored rooms")
    actions = operate.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every stored room, biggest first")
    for action, text in (
        ("show", "one room's sizes and members"),
        ("delete", "delete a room for good (as DELETE /api/rooms/{id})"),
        ("export", "write the room's files as a zip to stdout (as GET .../export.zip)"),
    ):
        actions.add_parser(action, help=text).add_argument("room_id", help="the room id")
    return root


def _place(args: argparse.Namespace) -> WorkerPlace | None:
    """Which worker this process is, when the supervisor of `serve --workers N` started it."""
    if args.worker_dir is None or args.worker_index is None or args.worker_count is None:
        return None
    from pairpilot.web.affinity import WorkerPlace  # noqa: PLC0415

    return WorkerPlace(args.worker_index, args.worker_count, Path(args.worker_dir))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `pairpilot` console script."""
    import asyncio  # noqa: PLC0415 - see the top

    from pairpilot.observability.logging import configure_logging  # noqa: PLC0415
    from pairpilot.settings import load_settings  # noqa: PLC0415

    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"pairpilot: {exc}", file=sys.stderr)  # noqa: T201 - the one line an operator sees
        raise SystemExit(2) from exc
    configure_logging(settings.log_level)
    if args.command == "serve" and args.workers > 1:
        if not settings.redis_url:
            print("pairpilot: --workers above 1 needs REDIS_URL", file=sys.stderr)  # noqa: T201
            raise SystemExit(2)
        from pairpilot.workers import supervise  # noqa: PLC0415

        if settings.resolved_database_url.startswith("sqlite"):
            asyncio.run(_migrate(settings))  # once, before the workers race for it
        raise SystemExit(supervise(args.workers, args.host, args.port))
    if args.command == "serve":
        serve(settings, args.host, args.port, reuse_port=args.reuse_port, place=_place(args))
    elif args.command == "rooms":
        from pairpilot.operations import run  # noqa: PLC0415

        raise SystemExit(asyncio.run(run(settings, args.action, getattr(args, "room_id", None))))
    else:
        asyncio.run(_migrate(settings))
