"""Which automatic checkpoints a room keeps: a pure rule, applied after each new checkpoint.

Named versions and restore points are kept for the room's life. Automatic checkpoints (at most
one per ``PAIRPILOT_VERSION_MIN_S`` while edits come in) are all kept for a day, then thinned to
the newest of each hour until a week, the newest of each day until 90 days, and dropped after
that; the newest checkpoint is always kept. So a room holds at most about 24·3600/min_s + 144 +
83 + 1 automatic checkpoints (516 at the default 300 s), however long it lives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Retention:
    """The thinning thresholds (ages)."""

    keep_all: timedelta = timedelta(days=1)
    hourly_until: timedelta = timedelta(days=7)
    daily_until: timedelta = timedelta(days=90)

    def expired(self, checkpoints: Iterable[tuple[int, datetime]], now: datetime) -> list[int]:
        """Ids of the automatic checkpoints ``(id, created_at)`` to delete at ``now``."""
        newest_first = sorted(checkpoints, key=lambda item: (item[1], item[0]), reverse=True)
        seen: set[tuple[str, str]] = set()
        drop: list[int] = []
        for position, (version_id, created) in enumerate(newest_first):
            age = now - created
            if position == 0 or age < self.keep_all:
                continue
            if age < self.hourly_until:
                bucket = ("hour", created.strftime("%Y-%m-%dT%H"))
            elif age < self.daily_until:
                bucket = ("day", created.strftime("%Y-%m-%d"))
            else:
                drop.append(version_id)
                continue
            if bucket in seen:
                drop.append(version_id)
            else:
                seen.add(bucket)
        return drop
