"""Fan-out of room frames: one narrow seam, in-process or across processes through Redis."""

from typing import TYPE_CHECKING

from pairpilot.bus.base import PERSIST_ELSEWHERE, PERSIST_HERE, Persistence, Replica, RoomBus
from pairpilot.bus.local import LocalBus

if TYPE_CHECKING:
    from pairpilot.bus.streams import RedisStreamBus


def __getattr__(name: str) -> object:
    """``RedisStreamBus`` on first use: redis is 7 MB a server without REDIS_URL never needs."""
    if name == "RedisStreamBus":
        from pairpilot.bus.streams import RedisStreamBus  # noqa: PLC0415

        return RedisStreamBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PERSIST_ELSEWHERE",
    "PERSIST_HERE",
    "LocalBus",
    "Persistence",
    "RedisStreamBus",
    "Replica",
    "RoomBus",
]
