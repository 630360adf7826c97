"""Rooms, members and snapshots (DESIGN.md §4). Non-members always get 404."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from pairpilot.access.authorizer import ROOM_ID_PATTERN, check_room_id
from pairpilot.access.invites import InviteTokens
from pairpilot.access.policy import (
    link_settings,
    require_owner,
)
from pairpilot.errors import BadRequestError, ProtocolError
from pairpilot.storage.b64 import b64encode
from pairpilot.storage.directory import Member, RoomInfo
from pairpilot.storage.store import utc
from pairpilot.sync.protocol import EMPTY_UPDATE
from pairpilot.sync.transfer import snapshot_body, snapshot_part
from pairpilot.web.creation import RoomCreation
from pairpilot.web.deps import Caller, ServicesDep, WriteRate, tag_room
from pairpilot.web.documents import from_storage_if_big, require_room_editor
from pairpilot.web.schemas import (
    ErrorOut,
    JoinIn,
    JoinOut,
    MemberOut,
    MergedOut,
    RoleIn,
    RoomOut,
    RoomSettingsIn,
    SnapshotIn,
    SnapshotOut,
)

router = APIRouter(
    prefix="/api/rooms",
    tags=["rooms"],
    dependencies=[Depends(tag_room)],
)
RoomId = Annotated[str, Path(pattern=ROOM_ID_PATTERN, description="The room id")]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 503)
}
WRITE_ERRORS = {**ERRORS, 429: {"model": ErrorOut}}  # routes with ``WriteRate``


def _room_out(room: RoomInfo) -> RoomOut:
    return RoomOut(
        id=room.id,
        owner_id=room.owner_id,
        default_role=room.default_role,
        created_at=room.created_at,
        link_access=room.link_access,
    )


def _member_out(member: Member) -> MemberOut:
    return MemberOut(user_id=member.user_id, role=member.role, name=member.name)


@router.post("/{room_id}/join", responses=WRITE_ERRORS)
async def join(
    room_id: RoomId, identity: Caller, services: ServicesDep, body: JoinIn | None = None
) -> JoinOut:
    """Create the room (the caller owns it) and the caller's membership when missing.

    Creating one counts against the caller's rooms quota (403) and creation rate (429). A
    room whose link access is ``none`` answers 404 unless ``invite`` is one of its invites;
    403 ``invite_invalid`` / ``invite_expired`` / ``invite_revoked`` for one that is not.
    """
    check_room_id(room_id)
    invite = None
    if body is not None and body.invite is not None:
        invite = InviteTokens(services.identities).read(body.invite, room_id)
    creating = RoomCreation(services, identity)
    room, member = await services.directory.join(room_id, identity, creating, invite)
    return JoinOut(room=_room_out(room), member=_member_out(member))


@router.get("/{room_id}/members", responses=ERRORS)
async def members(room_id: RoomId, identity: Caller, services: ServicesDep) -> list[MemberOut]:
    """Every member with its role, for members."""
    found = await services.directory.members(check_room_id(room_id), identity)
    return [_member_out(member) for member in found]


@router.put("/{room_id}/members/{user_id}", responses=WRITE_ERRORS, dependencies=[WriteRate])
async def set_member_role(
    room_id: RoomId, user_id: str, body: RoleIn, identity: Caller, services: ServicesDep
) -> MemberOut:
    """Owners change a member's role; it applies to the member's open sockets everywhere."""
    member = await services.directory.set_role(check_room_id(room_id), identity, user_id, body.role)
    services.access.role_changed(room_id, user_id, member.role)  # on every process
    return _member_out(member)


@router.delete("/{room_id}/members/{user_id}", responses=WRITE_ERRORS, dependencies=[WriteRate])
async def remove_member(
    room_id: RoomId, user_id: str, identity: Caller, services: ServicesDep
) -> MemberOut:
    """Owners remove a member (a member may leave); the member's open sockets close (4403)."""
    member = await services.directory.remove_member(check_room_id(room_id), identity, user_id)
    services.access.removed(room_id, user_id, "you were removed from this room")
    return _member_out(member)


@router.patch("/{room_id}", responses=WRITE_ERRORS, dependencies=[WriteRate])
async def set_room_settings(
    room_id: RoomId, body: RoomSettingsIn, identity: Caller, services: ServicesDep
) -> RoomOut:
    """Owners choose what joining by link does (``link_access``: edit, view or none).

    ``default_role`` (editor or viewer) is the older spelling of the same setting.
    """
    current, me = await services.directory.membership(check_room_id(room_id), identity)
    require_owner(me.role)
    access, role = link_settings(current.link_access, body.link_access, body.default_role)
    room = await services.directory.set_link_access(room_id, identity, access, role)
    return _room_out(room)


@router.get("/{room_id}/snapshot", response_model=SnapshotOut, responses=ERRORS)
async def get_snapshot(
    room_id: RoomId, identity: Caller, services: ServicesDep
) -> SnapshotOut | Response:
    """The room's current state: live from memory when open, else from storage.

    A big live room's answer is made by the worker from storage once the room is flushed
    (web/documents.py ``from_storage_if_big``), its JSON included.
    """
    await services.directory.membership(check_room_id(room_id), identity)
    live = services.registry.rooms.get(room_id)
    if live is not None:
        stamp = live.updated_at
        updated = datetime.fromtimestamp(stamp, UTC) if stamp else None
        head = SnapshotOut(room_id=room_id, snapshot_b64=None, updated_at=updated)
        job = partial(snapshot_body, head.model_dump(mode="json"))
        body = await from_storage_if_big(services, room_id, job, "snapshot")
        if body is not None:
            return Response(body, media_type="application/json")
        state = live.doc.get_update()
        empty = state == EMPTY_UPDATE
        return SnapshotOut(
            room_id=room_id,
            snapshot_b64=None if empty else await b64encode(state),
            updated_at=updated,
        )
    stored = await services.directory.stored_room(room_id, identity)
    merged = stored.merged()
    return SnapshotOut(
        room_id=room_id,
        snapshot_b64=await b64encode(merged) if merged else None,
        updated_at=utc(stored.updated_at) if stored.updated_at else None,
    )


@router.post(
    "/{room_id}/snapshot",
    responses=WRITE_ERRORS,
    dependencies=[WriteRate],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SnapshotIn.model_json_schema()}},
        }
    },
)
async def merge_snapshot(
    room_id: RoomId, request: Request, identity: Caller, services: ServicesDep
) -> MergedOut:
    """CRDT-merge a Yjs update into the room and broadcast it; never last-write-wins.

    The body is ``SnapshotIn``. Parsing it (up to ~21 MB of JSON), decoding its base64 and
    cutting the update to what the room lacks hold the GIL for tens of milliseconds: a big
    body is handled in the merge worker, and only the part the room lacks comes back (nothing
    when the same snapshot is posted again).
    """
    await require_room_editor(services, room_id, identity)
    body = await request.body()
    content_type = request.headers.get("content-type")
    limit = services.settings.max_message_bytes
    was_live = room_id in services.registry.rooms
    room = await services.registry.acquire(room_id)
    merger = services.store.merger
    try:
        # A big one is cut, in the worker, to what the room lacks: applied whole on the loop,
        # one repeated 15 MiB snapshot stalled every room. A small one is applied whole.
        state_vector = room.doc.get_state() if len(body) >= merger.offload_min_bytes else None
        new, length = await merger.run_sized(
            len(body), snapshot_part, body, content_type, limit, state_vector
        )
        # The live apply decodes the whole update before it changes anything, so bytes that
        # are not a Yjs update are refused there, as on the socket.
        if new != EMPTY_UPDATE:  # nothing the room lacks: nothing to apply or relay
            await room.quota.settle(len(new))  # a measure the quota needs, off the loop
            room.apply_update(new)
        else:
            room.refuse_if_backlogged()
    except ProtocolError as exc:
        raise BadRequestError("snapshot_b64 is not a Yjs update") from exc
    finally:
        services.registry.release(room)
    return MergedOut(room_id=room_id, merged_bytes=length, live=was_live)
