"""A room's document as the REST routes read and change it: live when open, else stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycrdt import Doc

from pairpilot.access.authorizer import check_room_id
from pairpilot.access.identity import Identity
from pairpilot.access.policy import require_editor
from pairpilot.web.services import Services


async def require_room_editor(services: Services, room_id: str, identity: Identity) -> None:
    """NotFoundError for a non-member, ForbiddenError for a viewer (the room's writes)."""
    _, me = await services.directory.membership(check_room_id(room_id), identity)
    require_editor(me.role)


async def current_state(services: Services, room_id: str, identity: Identity) -> bytes | None:
    """The room's whole document as one update (None when it has never had content).

    Call after the membership check: storage is read as the caller.
    """
    live = services.registry.rooms.get(room_id)
    if live is not None:
        return live.doc.get_update()
    return (await services.directory.stored_room(room_id, identity)).merged()


async def change_room(
    services: Services, room_id: str, change: Callable[[Doc[Any]], bytes], at_least: int = 0
) -> bool:
    """Apply ``change(live doc)``'s update to the room, loading it if needed; True if it was live.

    ``change`` runs on the live document with nothing awaited before the update is applied,
    so no edit can slip in between. ``at_least`` is a lower bound of the update's length: a
    room that is full (413) or backlogged (503) refuses before ``change`` runs, so a loop of
    uploads into a full room costs no copy of its document.
    """
    was_live = room_id in services.registry.rooms
    room = await services.registry.acquire(room_id)
    try:
        if at_least:
            await room.quota.settle(at_least)  # a measure it needs, off the loop
            room.refuse_if_backlogged()
            room.quota.check_at_least(at_least)
        room.apply_update(change(room.doc))
    finally:
        services.registry.release(room)
    return was_live
