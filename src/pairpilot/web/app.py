"""create_app: the one place where settings, storage, bus, rooms and routes are wired."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from pairpilot import __version__
from pairpilot.observability.logging import RequestIdMiddleware, configure_logging
from pairpilot.observability.memory import (
    freeze_startup_objects,
    release_free_memory,
    thaw_startup_objects,
)
from pairpilot.observability.sentry import close_sentry, init_sentry, report
from pairpilot.observability.tracing import (
    SPAN_COUNTS,
    TracingMiddleware,
    close_tracing,
    init_tracing,
)
from pairpilot.settings import Settings
from pairpilot.storage.schema_version import at_head
from pairpilot.web import (
    auth,
    client,
    comments,
    deletion,
    health,
    invites,
    monitoring,
    moving,
    rooms,
    runs,
    transfer,
    versions,
    webhooks,
)
from pairpilot.web.body_limit import BodyLimitMiddleware
from pairpilot.web.errors import install_error_handlers
from pairpilot.web.services import Services, build_services

log = structlog.get_logger(__name__)


def warm_routes(app: FastAPI) -> None:
    """Let FastAPI build its routes now, not in the first request while rooms are live.

    FastAPI builds an included router's routes (dependencies, pydantic validators) when a
    request first reaches it: about 100 ms for all of PairPilot's, measured as a pause of every
    room's fan-out at the first upload after a start. Matching any path builds them.
    """
    scope = {"type": "http", "method": "GET", "path": "/", "root_path": "", "headers": []}
    for route in app.router.routes:
        route.matches(scope)


def _report_crash(task: asyncio.Task[None]) -> None:
    error = None if task.cancelled() else task.exception()
    if error is not None:
        log.error("background task died", task=task.get_name(), exc_info=error)
        report(error, task=task.get_name())


def create_app(settings: Settings) -> FastAPI:
    """The ASGI application for these settings."""
    configure_logging(settings.log_level)
    init_sentry(settings)
    tracing = init_tracing(settings)
    services = build_services(settings)
    if tracing:
        services.metrics.watch_spans(lambda: dict(SPAN_COUNTS))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine = services.store.engine
        if engine.dialect.name == "sqlite" and not await at_head(engine):
            # Imported here: Alembic costs seconds, and PostgreSQL is never migrated implicitly.
            from pairpilot.storage.migrate import migrate  # noqa: PLC0415

            await migrate(engine)
        await services.bus.start()
        services.flusher.start(services.supervisor).add_done_callback(_report_crash)
        services.webhooks.start(services.supervisor)
        warm_routes(app)
        # What the imports and the migration left free goes back to the OS, once; what they
        # keep for the process's life is kept out of the garbage collector's full collections.
        release_free_memory()
        freeze_startup_objects()
        try:
            yield
        finally:
            thaw_startup_objects()  # collectable again once this app is gone (tests start many)
            try:
                await services.access.close()
                await services.registry.close()  # stops the flusher's loop too
                await services.webhooks.close()  # after the last flush's room.updated
            finally:
                await services.bus.close()
                await services.store.close()
                await services.limiter.close()
                await services.close_http()
                close_sentry()
                close_tracing()

    app = FastAPI(title="PairPilot", version=__version__, lifespan=lifespan)
    app.state.services = services
    install_error_handlers(app)
    # Base64 inflates by 4/3; the JSON around it is small.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_message_bytes * 4 // 3 + 65536)
    app.add_middleware(RequestIdMiddleware)
    if tracing:
        app.add_middleware(TracingMiddleware)
    routers = (
        health,
        auth,
        rooms,
        invites,
        deletion,
        moving,
        versions,
        comments,
        transfer,
        runs,
        client,
        monitoring,
        webhooks,
    )
    for module in routers:
        app.include_router(module.router)
    client.mount_client(app, settings.client_dir)
    return app


__all__ = ["Services", "create_app"]
