"""A room's files in and out: export as a zip, upload text files or a zip (issues #13, #24).

Uploads keep their paths (``src/utils/strings.py``), and a zip's folders, empty ones included.
What they do with bad input: backslashes count as slashes and ``.`` segments are dropped; a
path that is absolute, climbs out with ``..``, holds control characters, is empty, has a name
that starts or ends with a space or is over 128 characters, or is over 1024 in all, or a file
that is not UTF-8 text, is a 400 naming it. A path already in the room (or earlier in the same
upload) gets `` (2)``, `` (3)``…, so nothing is overwritten. More than
``PAIRPILOT_UPLOAD_MAX_FILES`` files, a file over ``PAIRPILOT_UPLOAD_MAX_FILE_BYTES`` or more
than ``PAIRPILOT_UPLOAD_MAX_BYTES`` in all (the zip itself, or its entries once inflated) is a
413. Nothing is added unless the whole upload is good.

A big upload or export is read, checked and built in the merge worker process
(:mod:`pairpilot.sync.transfer`): the event loop only applies the update that comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from functools import partial

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pycrdt import Map

from pairpilot.access.authorizer import check_room_id
from pairpilot.errors import ConflictError, PayloadTooLargeError
from pairpilot.guardrails import check_file_count
from pairpilot.sync.files import FILES_KEY
from pairpilot.sync.transfer import (
    RoomTree,
    Upload,
    UploadLimits,
    clean_path,
    export_archive,
    export_parts,
    files_upload,
    zip_size,
    zip_upload,
)
from pairpilot.web.deps import Caller, ServicesDep, WriteRate, tag_room
from pairpilot.web.documents import current_state, from_storage_if_big, require_room_editor
from pairpilot.web.offload import OffLoopJSONRoute
from pairpilot.web.rooms import ERRORS, WRITE_ERRORS, RoomId
from pairpilot.web.schemas import FileAddedOut, FilesIn, FilesOut
from pairpilot.web.services import Services
from pairpilot.web.spool import Spool

# A files upload's JSON (up to 8 MB of text) is parsed in a thread, its texts checked and
# built into an update in the merge worker.
router = APIRouter(
    prefix="/api/rooms",
    tags=["files"],
    dependencies=[Depends(tag_room)],
    route_class=OffLoopJSONRoute,
)
ZIP_BODY = {
    "requestBody": {
        "required": True,
        # Any content type is read as the zip's bytes; octet-stream is what generic clients send.
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in ("application/zip", "application/octet-stream")
        },
    }
}
ZIP_ANSWER: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/zip": {}}, "description": "The room's files"},
    **ERRORS,
}


# A room whose files change while an upload is built in the worker gets it built again against
# the new tree (its paths must not take one that appeared meanwhile), this many times at most.
BUILDS = 3


def _limits(services: Services) -> UploadLimits:
    settings = services.settings
    return UploadLimits(
        settings.upload_max_files, settings.upload_max_file_bytes, settings.upload_max_bytes
    )


async def _add(
    services: Services, room_id: str, size: int, build: Callable[[RoomTree], Upload]
) -> FilesOut:
    """Build an upload (``build(tree)``, in the worker unless ``size`` is small) and apply it.

    The room is refused as before: backlogged (503), full on the texts' size (413, before
    the update is even built: the worker stops once it knows the size), too many files (413),
    then the update's own quota check.
    """
    room = await services.registry.acquire(room_id)
    try:
        room_left: int | None = room.quota.limit - room.quota.size
        for _ in range(BUILDS):
            tree = RoomTree.of(room.doc, room_left)
            upload: Upload = await services.store.merger.run_sized(size, build, tree)
            async with room.bulk:  # another upload's pieces are all applied before this looks
                room.refuse_if_backlogged()
                # A measure the quota needs is made now, off the loop. Under ``room.bulk`` no
                # other upload takes one of this one's paths until its last piece is applied.
                needed = sum(map(len, upload.pieces or [])) or upload.text_bytes
                await room.quota.settle(needed)
                room.quota.check_at_least(upload.text_bytes)
                room_left = None  # the quota, measured again, found room: build it whole
                if upload.pieces is None or not tree.same_files(room.doc):
                    continue
                existing = len(room.doc.get(FILES_KEY, type=Map))
                check_file_count(services.settings.room_max_files, existing, len(upload.names))
                await room.apply_pieces(upload.pieces)
            return FilesOut(
                files=[
                    FileAddedOut(name=name, source=source)
                    for name, source in zip(upload.names, upload.sources, strict=True)
                ]
            )
        raise ConflictError("the room's files kept changing during the upload: try again")
    finally:
        services.registry.release(room)


@router.get("/{room_id}/export.zip", response_class=Response, responses=ZIP_ANSWER)
async def export_zip(room_id: RoomId, identity: Caller, services: ServicesDep) -> Response:
    """Every file of the room, as a zip of UTF-8 texts (members)."""
    await services.directory.membership(check_room_id(room_id), identity)
    archive = await from_storage_if_big(services, room_id, export_parts, "export")
    if archive is None:
        state = await current_state(services, room_id, identity)
        archive = await services.store.merger.run_sized(len(state or b""), export_archive, state)
    return Response(
        archive,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{room_id}.zip"'},
    )


@router.post("/{room_id}/files", responses=WRITE_ERRORS, dependencies=[WriteRate])
async def upload_files(
    room_id: RoomId, body: FilesIn, identity: Caller, services: ServicesDep
) -> FilesOut:
    """Add text files to the room at their paths (editors and owners); taken ones get a number."""
    await require_room_editor(services, room_id, identity)
    files = [(file.name, file.text) for file in body.files]
    limits = _limits(services)
    size = sum(len(text) for _, text in files)
    return await _add(services, room_id, size, partial(files_upload, files, limits))


@router.post(
    "/{room_id}/import.zip",
    responses=WRITE_ERRORS,
    dependencies=[WriteRate],
    openapi_extra=ZIP_BODY,
)
async def upload_zip(
    room_id: RoomId, request: Request, identity: Caller, services: ServicesDep
) -> FilesOut:
    """Add every text file of a zip to the room (editors and owners)."""
    await require_room_editor(services, room_id, identity)
    limits = _limits(services)
    offload_min_bytes = services.store.merger.offload_min_bytes
    with closing(Spool(offload_min_bytes)) as body:
        async for chunk in request.stream():
            body.write(chunk)
            if body.size > services.settings.upload_max_bytes:
                raise PayloadTooLargeError("the upload is over its size limit")
        archive = body.source()
        # A small zip may inflate to megabytes; a big one (in a file) goes to the worker
        # without its central directory read here (a 7 MB one can list 100,000 entries).
        size = body.size if isinstance(archive, str) else zip_size(archive)
        return await _add(services, room_id, size, partial(zip_upload, archive, limits))


__all__ = ["clean_path", "export_archive", "router"]
