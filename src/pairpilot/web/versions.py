"""Version history of a room: list, read, name the current state, restore (issue #13).

Non-members get 404 for everything, viewers 403 on writes, as for the rest of a room.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from pairpilot.access.authorizer import check_room_id
from pairpilot.access.identity import Identity
from pairpilot.errors import StorageError
from pairpilot.observability.tracing import span
from pairpilot.storage.b64 import b64encode
from pairpilot.storage.versions import Version, VersionKind
from pairpilot.sync.files import doc_of, read_files, restore_update
from pairpilot.web.deps import Caller, ServicesDep, WriteRate, tag_room
from pairpilot.web.documents import current_state, require_room_editor
from pairpilot.web.rooms import ERRORS, WRITE_ERRORS, RoomId
from pairpilot.web.schemas import (
    RestoreOut,
    VersionDetailOut,
    VersionNameIn,
    VersionOut,
    VersionPageOut,
)
from pairpilot.web.services import Services

router = APIRouter(prefix="/api/rooms", tags=["versions"], dependencies=[Depends(tag_room)])
VersionId = Annotated[int, Path(ge=1, le=2**62, description="The version id")]
# A restore point is taken, then the room is checked unchanged; edits landing in between make
# it take another (a bounded number of times).
RESTORE_POINT_TRIES = 3


def _out(version: Version) -> VersionOut:
    return VersionOut(
        id=version.id,
        room_id=version.room_id,
        kind=version.kind,
        name=version.name,
        author_id=version.author_id,
        author_name=version.author_name,
        created_at=version.created_at,
        size_bytes=version.size_bytes,
    )


def _label(version: Version) -> str:
    if version.name:
        return f"“{version.name}”"
    return f"the version of {version.created_at:%Y-%m-%d %H:%M} UTC"


@router.get("/{room_id}/versions", responses=ERRORS)
async def list_versions(
    room_id: RoomId,
    identity: Caller,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> VersionPageOut:
    """The room's versions, newest first; pass ``next_before`` as ``before`` for the next page."""
    found = await services.directory.versions(
        check_room_id(room_id), identity, limit=limit + 1, before=before
    )
    page = found[:limit]
    more = len(found) > limit
    return VersionPageOut(
        versions=[_out(version) for version in page], next_before=page[-1].id if more else None
    )


@router.get("/{room_id}/versions/{version_id}", responses=ERRORS)
async def get_version(
    room_id: RoomId, version_id: VersionId, identity: Caller, services: ServicesDep
) -> VersionDetailOut:
    """One version: its files as text and its whole state."""
    version, state = await services.directory.version(check_room_id(room_id), identity, version_id)
    return VersionDetailOut(
        **_out(version).model_dump(),
        files=read_files(doc_of(state)),
        snapshot_b64=await b64encode(state),
    )


@router.post(
    "/{room_id}/versions",
    status_code=201,
    responses=WRITE_ERRORS,
    dependencies=[WriteRate],
)
async def name_version(
    room_id: RoomId, body: VersionNameIn, identity: Caller, services: ServicesDep
) -> VersionOut:
    """Keep the room's current state as a named version (editors and owners)."""
    await require_room_editor(services, room_id, identity)
    state = await current_state(services, room_id, identity) or doc_of(None).get_update()
    version = await services.directory.add_version(
        room_id, identity, VersionKind.NAMED, state, body.name.strip() or body.name
    )
    return _out(version)


@router.post(
    "/{room_id}/versions/{version_id}/restore",
    responses=WRITE_ERRORS,
    dependencies=[WriteRate],
)
async def restore_version(
    room_id: RoomId, version_id: VersionId, identity: Caller, services: ServicesDep
) -> RestoreOut:
    """Make every file equal to the version's, as a forward change everyone converges on.

    The state it replaces is kept first as a restore point, so a restore can be undone: a
    restore point that cannot be written, or not with exactly the state being replaced (edits
    kept landing while it was written), refuses the restore (503) and changes nothing.
    """
    with span("restore", room_id=room_id, user_id=identity.user_id, version_id=version_id):
        return await _restore(room_id, version_id, identity, services)


async def _restore(
    room_id: str, version_id: int, identity: Identity, services: Services
) -> RestoreOut:
    await require_room_editor(services, room_id, identity)
    target, state = await services.directory.version(room_id, identity, version_id)
    room = await services.registry.acquire(room_id)
    try:
        # A restore the quota refuses (413 room_full), or a backlog (503), must not leave a
        # restore point behind.
        room.refuse_if_backlogged()
        restoring = restore_update(room.doc, state, {})
        await room.quota.settle(len(restoring))  # a measure it needs, off the loop
        room.quota.check(restoring)
        for _ in range(RESTORE_POINT_TRIES):
            before = room.doc.get_state()
            backup = await services.directory.add_version(
                room_id,
                identity,
                VersionKind.RESTORE,
                room.doc.get_update(),
                f"Before restoring {_label(target)}",
            )
            if room.doc.get_state() == before:
                break
        else:
            raise StorageError("the room kept changing while its restore point was written")
        note = {
            "version_id": target.id,
            "version_name": target.name,
            "version_kind": target.kind.value,
            "version_created_at": target.created_at.isoformat(),
            "by_id": identity.user_id,
            "by_name": identity.name,
            "at": int(services.directory.clock().timestamp() * 1000),
            "backup_version_id": backup.id,
        }
        room.apply_update(restore_update(room.doc, state, note))
    finally:
        services.registry.release(room)
    return RestoreOut(restored=_out(target), backup=_out(backup))
