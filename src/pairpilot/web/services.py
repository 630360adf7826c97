"""The object graph a request handler may reach, built once per app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pairpilot.access.authorizer import Authorizer, MembershipAuthorizer
from pairpilot.access.identity import Identities, load_or_create_secret
from pairpilot.access.keys import SigningKeys
from pairpilot.access.live import LiveAccess
from pairpilot.bus.base import RoomBus
from pairpilot.bus.local import LocalBus
from pairpilot.guardrails import (
    CREATE_RATE,
    REFRESH_RATE,
    SIGNIN_RATE,
    WRITE_RATE,
    ConnectionLimits,
    Refusals,
)
from pairpilot.observability.metrics import Metrics
from pairpilot.observability.sentry import report
from pairpilot.ratelimit import RunLimiter, Throttle, build_run_limiter
from pairpilot.settings import Settings
from pairpilot.storage.directory import RoomDirectory
from pairpilot.storage.sql import SqlRoomStore, create_engine
from pairpilot.storage.tokens import RefreshTokens
from pairpilot.supervisor import Supervisor
from pairpilot.sync.flusher import Flusher
from pairpilot.sync.registry import RoomRegistry
from pairpilot.webhooks import WebhookOutbox, Webhooks
from pairpilot.webhooks.journal import EventJournal, orphan_after_s

if TYPE_CHECKING:
    import httpx


@dataclass(slots=True)
class Services:
    """Everything the routes and the WebSocket use."""

    settings: Settings
    store: SqlRoomStore
    directory: RoomDirectory
    identities: Identities
    flusher: Flusher
    registry: RoomRegistry
    authorizer: Authorizer
    bus: RoomBus
    limiter: RunLimiter
    metrics: Metrics
    refresh_tokens: RefreshTokens
    refusals: Refusals
    connection_limits: ConnectionLimits
    throttle: Throttle
    access: LiveAccess
    webhooks: Webhooks
    supervisor: Supervisor = field(default_factory=Supervisor)
    _http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """The outgoing HTTP client (the ``/monitoring`` tunnel's), made on first use.

        httpx and its transport stack are 2 MB that a server without a browser DSN never needs.
        """
        if self._http is None:
            import httpx  # noqa: PLC0415 - only for a configured tunnel (see above)

            self._http = httpx.AsyncClient(timeout=5.0)
        return self._http

    async def close_http(self) -> None:
        """Close the outgoing HTTP clients, if any were made."""
        if self.identities.keys is not None:
            await self.identities.keys.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def build_services(settings: Settings) -> Services:
    """Construct the object graph; the only I/O is reading (or creating) the JWT secret."""
    engine = create_engine(settings.resolved_database_url)
    store = SqlRoomStore(engine)
    directory = RoomDirectory(engine)
    secret = load_or_create_secret(settings.jwt_secret, settings.data_dir)
    identities = Identities(
        secret,
        settings.token_ttl_s,
        keys=_signing_keys(settings),
        issuer=settings.resolved_jwt_issuer,
    )
    metrics = Metrics()
    supervisor = Supervisor()
    metrics.watch_tasks(lambda: supervisor.restarts)
    flusher = Flusher(
        store,
        flush_ms=settings.flush_ms,
        retry_max_ms=settings.flush_retry_max_ms,
        compact_min_bytes=settings.compact_min_bytes,
        compact_max_updates=settings.compact_max_updates,
        version_min_s=settings.version_min_s,
        metrics=metrics,
    )
    bus = _bus(settings, supervisor)
    registry = RoomRegistry(
        store,
        bus,
        flusher,
        idle_unload_ms=settings.idle_unload_ms,
        max_awareness_bytes=settings.max_awareness_bytes,
        metrics=metrics,
        max_room_bytes=settings.room_max_bytes,
        max_pending_bytes=settings.room_max_pending_bytes,
    )
    metrics.watch_backlogs(
        lambda: sum(room.pending_bytes for room in registry.rooms.values()),
        lambda: int(getattr(bus, "outbox_bytes", 0)),  # the Redis bus only
    )
    authorizer = MembershipAuthorizer(identities, directory)
    limiter = build_run_limiter(
        settings.redis_url,
        limit=settings.run_limit,
        window_s=settings.run_window_s,
        timeout_ms=settings.redis_timeout_ms,
        on_outage=lambda error: report(error, task="ratelimit"),
    )
    throttle = Throttle(
        limiter.backend,  # one Redis pool, one warning per outage
        {
            SIGNIN_RATE: settings.signin_rate,
            REFRESH_RATE: settings.refresh_rate,
            CREATE_RATE: settings.room_create_rate,
            WRITE_RATE: settings.write_rate,
        },
        on_degraded=lambda reason: metrics.guardrail_fail_open.labels(reason).inc(),
    )
    journal = EventJournal(engine, orphan_after_s=orphan_after_s(settings))
    webhooks = Webhooks(WebhookOutbox(engine), journal, settings, metrics)
    directory.changes = journal  # events stored in the transaction of their change
    store.changes = journal
    flusher.watcher = webhooks
    return Services(
        settings,
        store,
        directory,
        identities,
        flusher,
        registry,
        authorizer,
        bus,
        limiter,
        metrics,
        RefreshTokens(engine, settings.refresh_ttl_s),
        Refusals(metrics),
        ConnectionLimits(
            per_room=settings.room_max_connections, per_user=settings.user_max_connections
        ),
        throttle=throttle,
        access=LiveAccess(authorizer, registry, bus),
        webhooks=webhooks,
        supervisor=supervisor,
    )


def _signing_keys(settings: Settings) -> SigningKeys | None:
    """Another issuer's key set (Supabase's JWKS), when one is configured."""
    url = settings.resolved_jwks_url
    if url is None:
        return None
    return SigningKeys(url, max_age_s=settings.jwks_cache_s, refetch_min_s=settings.jwks_refetch_s)


def _bus(settings: Settings, supervisor: Supervisor) -> RoomBus:
    """The in-process bus, or the Redis one when REDIS_URL is set (redis is imported only then)."""
    if not settings.redis_url:
        return LocalBus()
    from pairpilot.bus.streams import RedisStreamBus  # noqa: PLC0415 - see the docstring

    return RedisStreamBus(
        settings.redis_url,
        max_outbox_bytes=settings.bus_max_outbox_bytes,
        batch_ms=settings.bus_batch_ms,
        supervisor=supervisor,
    )
