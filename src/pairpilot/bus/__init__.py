"""Fan-out of room frames: one narrow seam, in-process or across processes through Redis."""

from pairpilot.bus.base import PERSIST_ELSEWHERE, PERSIST_HERE, Persistence, Replica, RoomBus
from pairpilot.bus.local import LocalBus
from pairpilot.bus.streams import RedisStreamBus

__all__ = [
    "PERSIST_ELSEWHERE",
    "PERSIST_HERE",
    "LocalBus",
    "Persistence",
    "RedisStreamBus",
    "Replica",
    "RoomBus",
]
