"""Quotas and abuse limits in one place: every refusal, its status, its close code, its count.

A guardrail answers "allowed, or refused with this reason" by raising ``RefusedError(reason,
message)`` before any work is done. The web layer (``web/errors.py``) and the socket
(``web/ws.py``) map the reason to an HTTP status and error code, or a WebSocket close code,
from ``REFUSALS`` alone; ``Refusals.count`` counts every refusal in ``/metrics`` by reason and
logs it once per client and reason (a flood of refused messages is one log line, not many).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from pairpilot.errors import RefusedError
from pairpilot.observability.metrics import Metrics

if TYPE_CHECKING:
    from pycrdt import Doc

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
COMMENT_SIZE = "comment_size"  # a comment's body or quote past its bound
COMMENTS_PER_ROOM = "comments_per_room"  # threads per room, replies per thread
BACKLOG = "backlog"  # updates waiting for storage (the room's) or Redis (the bus's) at the bound

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
    # REST only (comments travel over HTTP): the close codes are never sent.
    COMMENT_SIZE: Refusal(413, "comment_too_long", 4413),
    COMMENTS_PER_ROOM: Refusal(413, "too_many_comments", 4413),
    # 1013 "try again later": the page reconnects (with backoff) and sends its edits again.
    BACKLOG: Refusal(503, "try_again_later", 1013),
}

# A client refused again for the same reason within this long is counted, not logged again.
LOG_EVERY_S = 600.0
LOGGED_KEPT = 10_000  # (client, reason) pairs remembered; the oldest is forgotten first

MIB = 1024 * 1024


def refusal_of(error: RefusedError) -> Refusal:
    """The status and codes of a refusal."""
    return REFUSALS[error.reason]


def human_size(size: int) -> str:
    """A size as people read it in a refusal: ``"31.6 MB"``, ``"64 KB"`` (binary units)."""
    if size >= MIB:
        return f"{size / MIB:.1f} MB"
    return f"{size / 1024:.0f} KB" if size >= 1024 else f"{size} bytes"


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


# A room at its quota re-measures its encoded size at most this often; in between, its size is
# the last measure plus every update accepted since (an upper bound).
REMEASURE_S = 1.0

# Where a quota measured its document (``pairpilot_quota_measures_total{place}``).
MEASURED_LIVE = "live"  # an encoding of the live document, on the event loop
MEASURED_STORED = "stored"  # the stored document, encoded in the merge worker when it is big


class DocumentQuota:
    """A room's encoded size (``Y.encodeStateAsUpdate``'s length) held against its quota.

    Measuring the document costs an encoding of all of it, so the size is kept as an upper
    bound instead: the last measure plus the length of every update applied since (an update
    never grows the encoded state by more than its own length, and usually by much less). Only
    an update that would take that bound past the quota makes the room measure itself again,
    at most once a second and only if anything was admitted since the last measure; it is
    refused when the measured size plus its length is over.
    An update without insertions (deletions only: its struct count, its first byte, is 0)
    is always admitted, so a room over its quota (made before it existed, or by a lower quota
    since) still loads and can be shrunk.

    Before measuring, ``floor`` (a size the encoding cannot be under: the UTF-8 bytes of the
    files' texts, which the encoding holds) is tried: when the floor plus the update is already
    over, the update is refused without the measure.

    A REST write can wait, so it awaits ``settle`` first: with a ``measurer`` (the room's
    stored document encoded in the merge worker, after a flush), the measure a write needs is
    made off the event loop, where an encoding of a 32 MiB document held the loop 60-290 ms
    (bench/README.md, "Off the event loop"). A socket's update cannot wait (the next one is
    behind it), so the check itself still measures on the loop when it must.
    """

    __slots__ = (
        "_doc",
        "_floor",
        "_measured_at",
        "_measured_size",
        "_measuring",
        "admitted",
        "limit",
        "measurer",
        "on_measure",
        "size",
    )

    def __init__(
        self, limit: int, size: int, doc: Doc[Any], floor: Callable[[], int] = lambda: 0
    ) -> None:
        self.limit = limit
        self.size = size
        self.admitted = 0  # bytes of every update counted since the room loaded
        self._doc = doc
        self._floor = floor
        self._measured_at = float("-inf")
        self._measured_size = -1  # the size the last measure found
        # The room's encoded size measured off the loop (None when it cannot be here and now).
        self.measurer: Callable[[], Awaitable[int | None]] | None = None
        self.on_measure: Callable[[str], None] = lambda _place: None
        self._measuring: asyncio.Task[None] | None = None

    def check(self, update: bytes) -> int:
        """The size bound with ``update``, or RefusedError(ROOM_FULL) if it would pass the quota.

        Nothing is counted: the room calls ``count`` once the update is applied.
        """
        return self._admit(len(update), inserts=update[:1] != b"\x00")

    def count(self, length: int) -> None:
        """An update of ``length`` bytes was applied: the bound grows by it."""
        self.size += length
        self.admitted += length

    def check_at_least(self, length: int) -> None:
        """RefusedError(ROOM_FULL) if an update of at least ``length`` bytes would be refused.

        For a change the server is about to compute (an upload holds at least the bytes of its
        texts): a full room refuses it before the room's document is copied to build it.
        """
        self._admit(length, inserts=True)

    async def settle(self, length: int) -> None:
        """Measure off the loop if an update of ``length`` bytes needs a measure to be admitted.

        Concurrent callers share one measure. A failed or unavailable one changes nothing:
        the check after it decides as before.
        """
        if self.measurer is None or not self._measure_would_help(length):
            return
        if self._measuring is None or self._measuring.done():
            self._measuring = asyncio.create_task(self._measure_off_loop(self.measurer))
        await asyncio.shield(self._measuring)

    async def _measure_off_loop(self, measurer: Callable[[], Awaitable[int | None]]) -> None:
        admitted_then = self.admitted
        measured = await measurer()  # of a state holding every update counted before it
        if measured is None:
            return
        self.on_measure(MEASURED_STORED)
        # Updates counted while it ran may or may not be in it: counted again (an upper bound).
        self.size = min(self.size, measured + self.admitted - admitted_then)
        self._measured_size = self.size
        self._measured_at = time.monotonic()

    def _measure_would_help(self, length: int) -> bool:
        return (
            self.size + length > self.limit
            and self.size != self._measured_size
            and self._floor() + length <= self.limit
        )

    def _admit(self, length: int, *, inserts: bool) -> int:
        grown = self.size + length
        if grown > self.limit and inserts:
            # Re-measured only if something was admitted since the last measure (refusals
            # alone, a client hammering a full room, cost no encoding at all), and only if the
            # floor leaves the update a chance.
            if self._measure_would_help(length) and (
                time.monotonic() - self._measured_at >= REMEASURE_S
            ):
                self.measured()
                grown = self.size + length
            if grown > self.limit:
                message = f"This room is full ({human_size(self.size)} of {human_size(self.limit)})"
                raise RefusedError(ROOM_FULL, message)
        return grown

    def measured(self) -> int:
        """The exact size now (an encoding of the whole document); resets the bound."""
        self.on_measure(MEASURED_LIVE)
        self._measured_size = self.size = len(self._doc.get_update())
        self._measured_at = time.monotonic()
        return self.size


class ConnectionLimits:
    """Open sockets per room and per user in this process, against their limits.

    ``enter`` refuses (ROOM_CONNECTIONS or USER_CONNECTIONS, close 4503) before the socket
    joins its room; ``leave`` gives the slot back. The per-user count is this process's: behind
    a load balancer each process allows a user ``per_user`` sockets.
    """

    def __init__(self, *, per_room: int, per_user: int) -> None:
        self.per_room = per_room
        self.per_user = per_user
        self._users: dict[str, int] = {}

    def enter(self, user_id: str, in_room: int) -> None:
        """Take a slot for a socket of ``user_id`` joining a room of ``in_room`` sockets."""
        if in_room >= self.per_room:
            message = f"Room is full: {in_room} people are connected (the limit)"
            raise RefusedError(ROOM_CONNECTIONS, message)
        mine = self._users.get(user_id, 0)
        if mine >= self.per_user:
            message = f"Too many connections: you have {mine} open (the limit)"
            raise RefusedError(USER_CONNECTIONS, message)
        self._users[user_id] = mine + 1

    def leave(self, user_id: str) -> None:
        """Give back the slot ``enter`` took."""
        left = self._users.get(user_id, 0) - 1
        if left > 0:
            self._users[user_id] = left
        else:
            self._users.pop(user_id, None)


def check_file_count(limit: int, existing: int, added: int) -> None:
    """RefusedError(ROOM_FILES) when ``added`` files would take a room past ``limit``."""
    if existing + added > limit:
        message = (
            f"A room holds at most {limit} files: this one has {existing}, and {added} more"
            " would pass that"
        )
        raise RefusedError(ROOM_FILES, message)
