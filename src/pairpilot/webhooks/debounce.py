"""``room.updated``, debounced: one when edits stop for ``quiet_s``, at most one per ``max_s``.

A room's first stored edit starts a wait; each later edit pushes the end of the wait to
``quiet_s`` after it, but never past ``max_s`` after the first: a room edited without a pause
gets one event every ``max_s``, and one more ``quiet_s`` after its last edit. One timer per
room with edits not yet announced; nothing per edit but moving that timer's deadline.

A window is *recorded* once its room's pending row is stored (pairpilot.webhooks.journal):
then the row, not this process's memory, is what guarantees the announcement, and the end of
the window is told whether it was (``announce(room_id, recorded)``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    """What a scheduled call returns (asyncio's TimerHandle)."""

    def cancel(self) -> None:
        """Do not make the call."""


def call_later(delay: float, call: Callable[[], None]) -> Timer:
    """Run ``call`` after ``delay`` seconds on the running loop."""
    return asyncio.get_running_loop().call_later(delay, call)


class RoomUpdates:
    """Calls ``announce(room_id, recorded)`` per the debounce above for rooms ``changed`` names."""

    def __init__(
        self,
        announce: Callable[[str, bool], None],
        *,
        quiet_s: float,
        max_s: float,
        clock: Callable[[], float] = time.monotonic,
        schedule: Callable[[float, Callable[[], None]], Timer] = call_later,
    ) -> None:
        self._announce = announce
        self._schedule = schedule
        self._quiet_s = quiet_s
        self._max_s = max_s
        self._clock = clock
        # room id -> (first unannounced edit, last edit, its timer)
        self._waiting: dict[str, tuple[float, float, Timer]] = {}
        self._recorded: set[str] = set()  # rooms whose window's pending row is stored

    def changed(self, room_id: str) -> None:
        """The room's document changed (its update was stored)."""
        now = self._clock()
        first = now
        found = self._waiting.get(room_id)
        if found is not None:
            first = found[0]
            found[2].cancel()
        due = min(now + self._quiet_s, first + self._max_s)
        timer = self._schedule(max(0.0, due - now), lambda: self._fire(room_id))
        self._waiting[room_id] = (first, now, timer)

    def unrecorded(self, room_ids: list[str]) -> list[str]:
        """Those of ``room_ids`` with no stored pending row for their window (or no window)."""
        return [room_id for room_id in room_ids if room_id not in self._recorded]

    def recorded(self, room_ids: list[str]) -> None:
        """These rooms' pending rows are stored: their windows are recorded until they end."""
        self._recorded.update(room_ids)

    def forget(self, room_id: str) -> None:
        """Drop the room's pending announcement (it was deleted)."""
        self._recorded.discard(room_id)
        found = self._waiting.pop(room_id, None)
        if found is not None:
            found[2].cancel()

    def close(self) -> None:
        """Announce what is pending now (shutdown): an edit is never left unannounced."""
        for room_id in list(self._waiting):
            self._fire(room_id)

    def _fire(self, room_id: str) -> None:
        found = self._waiting.pop(room_id, None)
        recorded = room_id in self._recorded
        self._recorded.discard(room_id)
        if found is not None:
            found[2].cancel()
            self._announce(room_id, recorded)
