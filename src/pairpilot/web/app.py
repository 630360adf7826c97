"""create_app: the one place where settings, storage, bus, rooms and routes are wired."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import structlog
from fastapi import FastAPI

from pairpilot import __version__
from pairpilot.access import AllowEveryone, Authorizer
from pairpilot.bus import LocalBus, RoomBus
from pairpilot.observability.logging import configure_logging
from pairpilot.settings import Settings
from pairpilot.storage.migrate import migrate
from pairpilot.storage.sql import SqlRoomStore, create_engine
from pairpilot.sync.flusher import Flusher
from pairpilot.sync.registry import RoomRegistry
from pairpilot.web import health, ws

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request handler may reach, built once per app."""

    settings: Settings
    store: SqlRoomStore
    flusher: Flusher
    registry: RoomRegistry
    authorizer: Authorizer


def build_services(settings: Settings, *, bus: RoomBus | None = None) -> Services:
    """Construct the object graph (no I/O yet)."""
    store = SqlRoomStore(create_engine(settings.resolved_database_url))
    flusher = Flusher(
        store,
        flush_ms=settings.flush_ms,
        retry_max_ms=settings.flush_retry_max_ms,
        compact_min_bytes=settings.compact_min_bytes,
        compact_max_updates=settings.compact_max_updates,
    )
    registry = RoomRegistry(
        store,
        bus or LocalBus(),
        flusher,
        idle_unload_ms=settings.idle_unload_ms,
        max_awareness_bytes=settings.max_awareness_bytes,
    )
    return Services(settings, store, flusher, registry, AllowEveryone())


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task died", task=task.get_name(), exc_info=task.exception())


def create_app(settings: Settings) -> FastAPI:
    """The ASGI application for these settings."""
    configure_logging(settings.log_level)
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if services.store.engine.dialect.name == "sqlite":
            await migrate(services.store.engine)
        flusher = asyncio.create_task(services.flusher.run(), name="flusher")
        flusher.add_done_callback(_report_crash)
        try:
            yield
        finally:
            try:
                await services.registry.close()
            finally:
                flusher.cancel()
                with suppress(asyncio.CancelledError):
                    await flusher
                await services.store.close()

    app = FastAPI(title="PairPilot", version=__version__, lifespan=lifespan)
    app.state.services = services
    app.include_router(health.router)
    app.include_router(ws.router)
    return app
