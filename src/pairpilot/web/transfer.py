"""A room's files in and out: export as a zip, upload text files or a zip (issue #13).

What uploads do with bad input: a name is cut to its last path segment (no directories, so
nothing can point outside the room), control characters are removed and it is trimmed to 128
characters; a name that is empty after that, or a file that is not UTF-8 text, is a 400 naming
it. A name already in the room (or earlier in the same upload) gets `` (2)``, `` (3)``…, so
nothing is overwritten. More than ``PAIRPILOT_UPLOAD_MAX_FILES`` files, a file over
``PAIRPILOT_UPLOAD_MAX_FILE_BYTES`` or more than ``PAIRPILOT_UPLOAD_MAX_BYTES`` in all (the zip
itself, or its entries once inflated) is a 413. Nothing is added unless the whole upload is good.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pycrdt import Doc, Map
from starlette.concurrency import run_in_threadpool

from pairpilot.access.authorizer import check_room_id
from pairpilot.errors import BadRequestError, PayloadTooLargeError
from pairpilot.guardrails import check_file_count
from pairpilot.settings import Settings
from pairpilot.sync.files import FILES_KEY, add_files_update, doc_of, read_files
from pairpilot.web.deps import Caller, ServicesDep, WriteRate, tag_room
from pairpilot.web.documents import change_room, current_state, require_room_editor
from pairpilot.web.offload import OffLoopJSONRoute
from pairpilot.web.rooms import ERRORS, WRITE_ERRORS, RoomId
from pairpilot.web.schemas import FileAddedOut, FileIn, FilesIn, FilesOut

# Inflating, decoding and deflating run in a worker thread (zlib lets go of the GIL), and the
# files upload's JSON is parsed there too: one 8 MB upload must not pause every room's fan-out.
router = APIRouter(
    prefix="/api/rooms",
    tags=["files"],
    dependencies=[Depends(tag_room)],
    route_class=OffLoopJSONRoute,
)
MAX_NAME = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Entries archivers add that are not files of the project.
_JUNK = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$)")
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


def sanitise_name(path: str) -> str | None:
    """A room file name from an uploaded path, or None when nothing usable is left."""
    last = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    name = _CONTROL.sub("", last).strip()[:MAX_NAME].strip()
    return None if name in {"", ".", ".."} else name


def _text_of(source: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"{source} is not a UTF-8 text file") from exc
    if "\x00" in text:
        raise BadRequestError(f"{source} is not a text file")
    return text


class _Budget:
    """The upload's limits, counted as files are read."""

    def __init__(self, settings: Settings) -> None:
        self.files_left = settings.upload_max_files
        self.bytes_left = settings.upload_max_bytes
        self.file_max = settings.upload_max_file_bytes

    def take(self, source: str, size: int) -> None:
        self.files_left -= 1
        self.bytes_left -= size
        if self.files_left < 0:
            raise PayloadTooLargeError("too many files in one upload")
        if size > self.file_max:
            raise PayloadTooLargeError(f"{source} is over {self.file_max} bytes")
        if self.bytes_left < 0:
            raise PayloadTooLargeError("the upload is over its size limit")


def _named(source: str) -> str:
    name = sanitise_name(source)
    if name is None:
        raise BadRequestError(f"{source!r} is not a usable file name")
    return name


def _zip_files(data: bytes, budget: _Budget) -> list[tuple[str, str, str]]:
    """Every text file of a zip, as (name, source, text); run in a worker thread."""
    return list(_zip_entries(data, budget))


def _uploaded_files(files: list[FileIn], budget: _Budget) -> list[tuple[str, str, str]]:
    """Every file of a JSON upload, as (name, source, text); run in a worker thread."""
    checked = []
    for file in files:
        data = file.text.encode("utf-8")
        budget.take(file.name, len(data))
        checked.append((_named(file.name), file.name, _text_of(file.name, data)))
    return checked


def _zip_entries(data: bytes, budget: _Budget) -> Iterator[tuple[str, str, str]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BadRequestError("the body is not a zip archive") from exc
    with archive:
        for info in archive.infolist():
            if info.is_dir() or _JUNK.search(info.filename):
                continue
            budget.take(info.filename, info.file_size)
            try:
                with archive.open(info) as entry:
                    # The header's size may lie: never inflate more than it allows.
                    content = entry.read(budget.file_max + 1)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError) as exc:
                raise BadRequestError(f"{info.filename} cannot be read: {exc}") from exc
            if len(content) != info.file_size:
                raise BadRequestError(f"{info.filename} does not match its zip header")
            yield _named(info.filename), info.filename, _text_of(info.filename, content)


async def _add(services: ServicesDep, room_id: str, files: list[tuple[str, str, str]]) -> FilesOut:
    if not files:
        raise BadRequestError("the upload holds no files")
    added: list[str] = []

    def change(doc: Doc[Any]) -> bytes:
        existing = len(doc.get(FILES_KEY, type=Map))
        check_file_count(services.settings.room_max_files, existing, len(files))
        update, names = add_files_update(doc, [(name, text) for name, _, text in files])
        added.extend(names)
        return update

    # Every text is in the update in full (UTF-8): a lower bound of its length.
    at_least = sum(len(text.encode()) for _, _, text in files)
    await change_room(services, room_id, change, at_least)
    return FilesOut(
        files=[
            FileAddedOut(name=name, source=source)
            for name, (_, source, _) in zip(added, files, strict=True)
        ]
    )


def export_archive(state: bytes | None) -> bytes:
    """Every file of a document (a Yjs update, None when empty) as a zip of UTF-8 texts."""
    files = read_files(doc_of(state))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        taken: set[str] = set()
        for name in sorted(files):
            entry = sanitise_name(name) or "unnamed"
            while entry in taken:  # names are unique already; sanitising must keep them so
                entry = f"_{entry}"
            taken.add(entry)
            archive.writestr(entry, files[name].encode("utf-8"))
    return buffer.getvalue()


@router.get("/{room_id}/export.zip", response_class=Response, responses=ZIP_ANSWER)
async def export_zip(room_id: RoomId, identity: Caller, services: ServicesDep) -> Response:
    """Every file of the room, as a zip of UTF-8 texts (members)."""
    await services.directory.membership(check_room_id(room_id), identity)
    state = await current_state(services, room_id, identity)
    return Response(
        await run_in_threadpool(export_archive, state),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{room_id}.zip"'},
    )


@router.post("/{room_id}/files", responses=WRITE_ERRORS, dependencies=[WriteRate])
async def upload_files(
    room_id: RoomId, body: FilesIn, identity: Caller, services: ServicesDep
) -> FilesOut:
    """Add text files to the room (editors and owners); taken names get a number."""
    await require_room_editor(services, room_id, identity)
    budget = _Budget(services.settings)
    return await _add(
        services, room_id, await run_in_threadpool(_uploaded_files, body.files, budget)
    )


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
    budget = _Budget(services.settings)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > services.settings.upload_max_bytes:
            raise PayloadTooLargeError("the upload is over its size limit")
    return await _add(services, room_id, await run_in_threadpool(_zip_files, bytes(data), budget))


__all__ = ["export_archive", "router", "sanitise_name"]
