"""Run limiting on the `limits` library (moving window), with a fail-open wrapper.

With REDIS_URL the window lives in Redis (atomic Lua, shared by every server process);
without it, in this process's memory. When Redis is unreachable or slower than the timeout,
a call is allowed and marked ``degraded``: the IDE keeps working. One warning is logged per
outage (not per call), and limiting resumes on its own once Redis answers again.

``LimitStorage`` is that storage with its outage state; the guardrails' rates
(``ratelimit.throttle``) share it with the Run limiter: one pool, one warning per outage.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.errors import StorageError as LimitsStorageError

from pairpilot.errors import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import ConnectionPool

# What a failing storage raises; redis-py's own errors are added when Redis is the storage.
_FAILURES: tuple[type[BaseException], ...] = (TimeoutError, OSError, LimitsStorageError)

log = structlog.get_logger(__name__)

OutageHook = Callable[[BaseException], None]


@dataclass(frozen=True, slots=True)
class Decision:
    """One answer of the limiter."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    degraded: bool = False


class LimitStorage:
    """The `limits` storage every limiter of a process shares, and whether it is in an outage."""

    def __init__(
        self,
        storage: Storage,
        *,
        timeout_s: float,
        on_outage: OutageHook | None = None,
        pool: ConnectionPool | None = None,
    ) -> None:
        self.storage = storage
        self.timeout_s = timeout_s
        self.failures = _FAILURES
        if pool is not None:
            from redis.exceptions import RedisError  # noqa: PLC0415 - redis only with REDIS_URL

            self.failures = (*_FAILURES, RedisError)
        self._pool = pool
        self._on_outage = on_outage
        self.in_outage = False

    def failed(self, error: BaseException) -> None:
        """A call failed or timed out: warn (and report) once per outage."""
        if not self.in_outage:
            self.in_outage = True
            log.warning("rate limiter storage unreachable; failing open", error=repr(error))
            if self._on_outage is not None:
                self._on_outage(error)

    def answered(self) -> None:
        """A call succeeded: an outage, if any, is over."""
        if self.in_outage:
            self.in_outage = False
            log.info("rate limiter storage is back; limiting resumes")

    async def ping(self) -> bool:
        """True when the storage answers within the timeout."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return bool(await self.storage.check())
        except self.failures:
            return False

    async def close(self) -> None:
        """Close the Redis connections, if any."""
        if self._pool is not None:
            await self._pool.aclose()


class RunLimiter:
    """Decides whether a user may start a run in a room now (``check``)."""

    def __init__(self, backend: LimitStorage, *, limit: int, window_s: int) -> None:
        self.backend = backend
        self._strategy = MovingWindowRateLimiter(backend.storage)
        self._item = RateLimitItemPerSecond(limit, window_s)
        self._limit = limit
        self.fail_open_count = 0

    @property
    def in_outage(self) -> bool:
        """True while the storage is unreachable (runs are allowed, marked degraded)."""
        return self.backend.in_outage

    async def check(self, room_id: str, user_id: str) -> Decision:
        """Count one run attempt; allowed, or not with the seconds until a slot frees."""
        try:
            async with asyncio.timeout(self.backend.timeout_s):
                allowed = await self._strategy.hit(self._item, "run", room_id, user_id)
                stats = await self._strategy.get_window_stats(self._item, "run", room_id, user_id)
        except self.backend.failures as exc:
            return self._fail_open(exc)
        self.backend.answered()
        reset_s = max(0, math.ceil(stats.reset_time - time.time()))
        return Decision(
            allowed=allowed, limit=self._limit, remaining=stats.remaining, reset_s=reset_s
        )

    async def ping(self) -> bool:
        """True when the storage answers within the timeout."""
        return await self.backend.ping()

    async def close(self) -> None:
        """Close the Redis connections, if any (the shared storage's)."""
        await self.backend.close()

    def _fail_open(self, error: BaseException) -> Decision:
        self.fail_open_count += 1
        self.backend.failed(error)
        return Decision(
            allowed=True, limit=self._limit, remaining=self._limit, reset_s=0, degraded=True
        )


def build_limit_storage(
    redis_url: str | None, *, timeout_ms: int, on_outage: OutageHook | None = None
) -> LimitStorage:
    """The limiters' storage: Redis when a URL is given, else this process's memory."""
    storage: Storage = MemoryStorage()
    pool = None
    if redis_url:
        from redis.asyncio import ConnectionPool  # noqa: PLC0415 - redis only with REDIS_URL

        # Short socket timeouts: a dead Redis must cost one timeout, not a TCP retry storm.
        pool = ConnectionPool.from_url(
            redis_url, socket_timeout=timeout_ms / 1000, socket_connect_timeout=timeout_ms / 1000
        )
        try:
            storage = RedisStorage(
                f"async+{redis_url}",
                implementation="redispy",
                wrap_exceptions=True,
                connection_pool=pool,  # type: ignore[arg-type]  # forwarded to redis-py
            )
        except LimitsConfigurationError as exc:
            raise ConfigurationError(f"REDIS_URL: {exc}") from exc
    return LimitStorage(storage, timeout_s=timeout_ms / 1000, on_outage=on_outage, pool=pool)


def build_run_limiter(
    redis_url: str | None,
    *,
    limit: int,
    window_s: int,
    timeout_ms: int,
    on_outage: OutageHook | None = None,
) -> RunLimiter:
    """A Run limiter on a storage of its own (``RunLimiter.backend``, for the other limiters)."""
    backend = build_limit_storage(redis_url, timeout_ms=timeout_ms, on_outage=on_outage)
    return RunLimiter(backend, limit=limit, window_s=window_s)
