"""`pairpilot serve | migrate`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pairpilot import __version__
from pairpilot.errors import ConfigurationError
from pairpilot.observability.logging import configure_logging
from pairpilot.settings import Settings, load_settings
from pairpilot.storage.migrate import migrate
from pairpilot.storage.sql import create_engine


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the server until interrupted."""
    from pairpilot.web import create_app  # noqa: PLC0415 - keep `--help` fast
    from pairpilot.web.server import make_server  # noqa: PLC0415

    make_server(create_app(settings), host, port).run()


async def _migrate(settings: Settings) -> None:
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
    commands.add_parser("migrate", help="apply the database migrations and exit")
    return root


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `pairpilot` console script."""
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"pairpilot: {exc}", file=sys.stderr)  # noqa: T201 - the one line an operator sees
        raise SystemExit(2) from exc
    configure_logging(settings.log_level)
    if args.command == "serve":
        serve(settings, args.host, args.port)
    else:
        asyncio.run(_migrate(settings))
