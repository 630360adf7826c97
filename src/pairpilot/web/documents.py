"""A room's document as the REST routes read and change it: live when open, else stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pycrdt import Doc

from pairpilot.access.authorizer import check_room_id
from pairpilot.access.identity import Identity
from pairpilot.access.policy import require_editor
from pairpilot.web.services import Services

T = TypeVar("T")


async def require_room_editor(services: Services, room_id: str, identity: Identity) -> None:
    """NotFoundError for a non-member, ForbiddenError for a viewer (the room's writes)."""
    _, me = await services.directory.membership(check_room_id(room_id), identity)
    require_editor(me.role)


async def from_storage_if_big(
    services: Services, room_id: str, job: Callable[[list[bytes]], T], what: str
) -> T | None:
    """``job(parts)`` of a big live room, made by the worker from storage once it is flushed.

    Encoding a 32 MiB live document held the event loop ~60 ms (an export, a snapshot GET).
    None when the room is not live or small (its quota's bound under the worker's threshold),
    or storage cannot give it (another process writes the room): the caller reads the live
    document then. Call after the membership check.
    """
    room = services.registry.rooms.get(room_id)
    if room is None or room.quota.size < services.store.merger.offload_min_bytes:
        return None
    room = await services.registry.acquire(room_id)  # held: not unloaded meanwhile
    try:
        return await services.flusher.on_stored(room, job, what)
    finally:
        services.registry.release(room)


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
