"""The guardrails' rates: sign-ins and refreshes per address, rooms created and writes per user.

``Throttle.hit(reason, who)`` counts one action and returns, or raises
``RefusedError(reason, message, retry_after_s=N)`` when ``who`` has used up the reason's rate.
It lives in the Run limiter's storage (Redis with REDIS_URL, else memory) and fails open the
same way: with Redis down or slower than PAIRPILOT_REDIS_TIMEOUT_MS the action is allowed,
counted in ``pairpilot_guardrail_fail_open_total{reason}``, and one warning is logged per outage.

Why fixed windows (the window opens at a key's first hit and lasts the rate's period): a hit
is one Redis command (``EVALSHA`` of INCRBY + EXPIRE) and one integer per key. The moving
window is one command too, but keeps a list of ``limit`` timestamps per key (1,800 per address
for the refresh rate) and trims it on every hit. A fixed window lets a client spend twice its
rate across a window's end, which is fine for abuse bounds. A refusal costs one more command
(``TTL``, for Retry-After), and the refusal is remembered here until its window ends: a client
that keeps trying costs no Redis command at all until then.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from limits import RateLimitItem, parse
from limits.aio.strategies import FixedWindowRateLimiter

from pairpilot.errors import RefusedError
from pairpilot.guardrails import CREATE_RATE, REFRESH_RATE, SIGNIN_RATE, WRITE_RATE
from pairpilot.ratelimit.limiter import LimitStorage

# What a refusal says, by reason; " — try again in …" follows.
MESSAGES = {
    SIGNIN_RATE: "Too many sign-ins from your address",
    REFRESH_RATE: "Too many token refreshes from your address",
    CREATE_RATE: "You have created too many rooms lately",
    WRITE_RATE: "Too many changes from your account",
}
REFUSED_KEPT = 10_000  # refusals remembered; the oldest is forgotten first

DegradedHook = Callable[[str], None]


def wait_text(seconds: int) -> str:
    """A wait as people read it: ``"40 s"`` up to two minutes, ``"12 min"`` beyond."""
    return f"{seconds} s" if seconds <= 120 else f"{math.ceil(seconds / 60)} min"


class Throttle:
    """Counts actions per reason and client (address or user) against the configured rates."""

    def __init__(
        self,
        backend: LimitStorage,
        rates: Mapping[str, str],
        *,
        on_degraded: DegradedHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._backend = backend
        self._strategy = FixedWindowRateLimiter(backend.storage)
        self._items: dict[str, RateLimitItem] = {
            reason: parse(rate) for reason, rate in rates.items()
        }
        self._on_degraded = on_degraded
        self._now = clock
        self._refused: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.fail_open_count = 0

    async def hit(self, reason: str, who: str) -> None:
        """Count one ``reason`` action of ``who``; RefusedError when its rate is used up."""
        item = self._items[reason]
        key = (reason, who)
        now = self._now()
        until = self._refused.get(key)
        if until is not None:
            if now < until:
                raise _refusal(reason, until - now)
            del self._refused[key]
        try:
            async with asyncio.timeout(self._backend.timeout_s):
                if await self._strategy.hit(item, reason, who):
                    until = None
                else:
                    # One TTL, not get_window_stats' GET + TTL: the count is known (over).
                    until = await self._backend.storage.get_expiry(item.key_for(reason, who))
        except self._backend.failures as exc:
            self._fail_open(reason, exc)
            return
        self._backend.answered()
        if until is not None:
            self._remember(key, until)
            raise _refusal(reason, until - now)

    def _remember(self, key: tuple[str, str], until: float) -> None:
        self._refused[key] = until
        self._refused.move_to_end(key)
        if len(self._refused) > REFUSED_KEPT:
            self._refused.popitem(last=False)

    def _fail_open(self, reason: str, error: BaseException) -> None:
        self.fail_open_count += 1
        self._backend.failed(error)
        if self._on_degraded is not None:
            self._on_degraded(reason)


def _refusal(reason: str, wait_s: float) -> RefusedError:
    seconds = max(1, math.ceil(wait_s))
    message = f"{MESSAGES[reason]} — try again in {wait_text(seconds)}"
    return RefusedError(reason, message, retry_after_s=seconds)
