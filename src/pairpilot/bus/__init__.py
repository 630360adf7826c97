"""Fan-out of room frames: one narrow seam so that processes can later share rooms."""

from pairpilot.bus.base import Deliver, RoomBus
from pairpilot.bus.local import LocalBus

__all__ = ["Deliver", "LocalBus", "RoomBus"]
