"""Fan-out of room frames: one narrow seam, in-process or across processes through Redis."""

from pairpilot.bus.base import Replica, RoomBus
from pairpilot.bus.local import LocalBus
from pairpilot.bus.streams import RedisStreamBus

__all__ = ["LocalBus", "RedisStreamBus", "Replica", "RoomBus"]
