"""Quotas and abuse limits in one place: every refusal, its status, its close code, its count.

A guardrail answers "allowed, or refused with this reason" by raising ``RefusedError(reason,
message)`` before any work is done. The web layer (``web/errors.py``) and the socket
(``web/ws.py``) map the reason to an HTTP status and error code, or a WebSocket close code,
from ``REFUSALS`` alone; ``Refusals.count`` counts every refusal in ``/metrics`` by reason and
logs it once per client and reason (a flood of refused messages is one log line, not many).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from pairpilot.errors import RefusedError
from pairpilot.observability.metrics import Metrics

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Refusal:
    """How one guardrail's refusal reaches a client: HTTP status and error code, close code."""

    status: int
    error: str
    close_code: int


ROOM_FULL = "room_full"  # the document would pass PAIRPILOT_ROOM_MAX_BYTES
ROOM_FILES = "room_files"  # the room would hold more than PAIRPILOT_ROOM_MAX_FILES files
ROOM_CONNECTIONS = "room_connections"  # PAIRPILOT_ROOM_MAX_CONNECTIONS sockets in the room
USER_CONNECTIONS = "user_connections"  # PAIRPILOT_USER_MAX_CONNECTIONS sockets of one user
ROOMS_OWNED = "rooms_owned"  # the user owns as many rooms as they may
SIGNIN_RATE = "signin_rate"  # anonymous sign-ins per client address
REFRESH_RATE = "refresh_rate"  # token refreshes per client address
CREATE_RATE = "create_rate"  # rooms created per user
WRITE_RATE = "write_rate"  # REST writes per user

# Close 4413 mirrors HTTP 413 and 4503 HTTP 503 ("come back later"): the page stops
# reconnecting on both and says why (client/src/connection.ts).
REFUSALS: dict[str, Refusal] = {
    ROOM_FULL: Refusal(413, "room_full", 4413),
    ROOM_FILES: Refusal(413, "room_full", 4413),
    ROOM_CONNECTIONS: Refusal(503, "room_crowded", 4503),
    USER_CONNECTIONS: Refusal(503, "too_many_connections", 4503),
    ROOMS_OWNED: Refusal(403, "quota_exceeded", 4403),
    SIGNIN_RATE: Refusal(429, "rate_limited", 4429),
    REFRESH_RATE: Refusal(429, "rate_limited", 4429),
    CREATE_RATE: Refusal(429, "rate_limited", 4429),
    WRITE_RATE: Refusal(429, "rate_limited", 4429),
}

# A client refused again for the same reason within this long is counted, not logged again.
LOG_EVERY_S = 600.0
LOGGED_KEPT = 10_000  # (client, reason) pairs remembered; the oldest is forgotten first

MIB = 1024 * 1024


def refusal_of(error: RefusedError) -> Refusal:
    """The status and codes of a refusal."""
    return REFUSALS[error.reason]


def megabytes(size: int) -> str:
    """A size as people read it in a refusal: ``"31.6 MB"`` (MiB, one decimal)."""
    return f"{size / MIB:.1f} MB"


class Refusals:
    """Counts refusals in ``/metrics`` and logs each (client, reason) at most every 10 min."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._counter = metrics.refusals
        self._logged: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._now = clock

    def count(self, error: RefusedError, client: str | None, **context: object) -> None:
        """Count ``error`` and log it unless this client was logged for its reason lately."""
        self._counter.labels(error.reason).inc()
        key = (client or "-", error.reason)
        now = self._now()
        last = self._logged.get(key)
        if last is not None and now - last < LOG_EVERY_S:
            return
        self._logged[key] = now
        self._logged.move_to_end(key)
        if len(self._logged) > LOGGED_KEPT:
            self._logged.popitem(last=False)
        log.warning("refused", reason=error.reason, message=str(error), client=client, **context)
