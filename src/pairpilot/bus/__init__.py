"""Fan-out of room frames: one narrow seam, in-process or across processes through Redis."""

from pairpilot.bus.base import Replica, RoomBus
from pairpilot.bus.local import LocalBus
from pairpilot.bus.redis import RedisBus

__all__ = ["LocalBus", "RedisBus", "Replica", "RoomBus"]
