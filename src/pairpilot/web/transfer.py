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
from pairpilot.sync.files import FILES_KEY, add_files_update, doc_of, read_files, read_tree
from pairpilot.sync.tree import parents
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
MAX_PATH = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")
# Every entry of an exported zip is dated the same, so one room's export is the same bytes
# each time (and after a round trip through an import).
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
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


def clean_path(source: str) -> str:
    """The room path an uploaded path stands for; :class:`BadRequestError` naming it if none."""
    path = source.replace("\\", "/")
    if _CONTROL.search(path):
        raise BadRequestError(f"{source!r}: a path cannot hold control characters")
    if path.startswith("/") or _DRIVE.match(path):
        raise BadRequestError(f"{source!r}: an absolute path cannot be used")
    segments = [segment for segment in path.split("/") if segment not in {"", "."}]
    if ".." in segments:
        raise BadRequestError(f"{source!r}: '..' would leave the room")
    if not segments or any(segment.strip() != segment for segment in segments):
        raise BadRequestError(
            f"{source!r} is not a usable file name (empty, or starts or ends with a space)"
        )
    if any(len(segment) > MAX_NAME for segment in segments) or len(path) > MAX_PATH:
        raise BadRequestError(
            f"{source!r}: a name is at most {MAX_NAME} characters, a path {MAX_PATH}"
        )
    return "/".join(segments)


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


def _zip_files(data: bytes, budget: _Budget) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Every text file of a zip as (path, source, text), and its folders; in a worker thread."""
    folders: list[str] = []
    return list(_zip_entries(data, budget, folders)), folders


def _uploaded_files(files: list[FileIn], budget: _Budget) -> list[tuple[str, str, str]]:
    """Every file of a JSON upload, as (name, source, text); run in a worker thread."""
    checked = []
    for file in files:
        data = file.text.encode("utf-8")
        budget.take(file.name, len(data))
        checked.append((clean_path(file.name), file.name, _text_of(file.name, data)))
    return checked


def _zip_entries(
    data: bytes, budget: _Budget, folders: list[str]
) -> Iterator[tuple[str, str, str]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BadRequestError("the body is not a zip archive") from exc
    with archive:
        for info in archive.infolist():
            if _JUNK.search(info.filename):
                continue
            if info.is_dir():
                folders.append(clean_path(info.filename))
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
            yield clean_path(info.filename), info.filename, _text_of(info.filename, content)


async def _add(
    services: ServicesDep,
    room_id: str,
    files: list[tuple[str, str, str]],
    folders: list[str],
) -> FilesOut:
    if not files and not folders:
        raise BadRequestError("the upload holds no files")
    added: list[str] = []

    def change(doc: Doc[Any]) -> bytes:
        existing = len(doc.get(FILES_KEY, type=Map))
        check_file_count(services.settings.room_max_files, existing, len(files))
        update, names = add_files_update(doc, [(path, text) for path, _, text in files], folders)
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
    """Every file of a document (a Yjs update, None when empty) as a zip of UTF-8 texts.

    Files keep the paths the room shows them under, and empty folders are entries of their own,
    so importing the zip into an empty room gives the same tree. Dated alike, the entries make
    the same bytes for the same tree.
    """
    doc = doc_of(state)
    tree = read_tree(doc)
    texts = read_files(doc)
    holding = {parent for path in [*texts, *tree.folders] for parent in parents(path)}
    entries = [(path, texts[path].encode("utf-8")) for path in texts]
    entries += [(f"{folder}/", b"") for folder in tree.folders if folder not in holding]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name.endswith("/"):
                info.external_attr = 0o40755 << 16 | 0x10  # a directory, as archivers mark one
            else:
                info.external_attr = 0o644 << 16
            archive.writestr(info, data)
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
    """Add text files to the room at their paths (editors and owners); taken ones get a number."""
    await require_room_editor(services, room_id, identity)
    budget = _Budget(services.settings)
    files = await run_in_threadpool(_uploaded_files, body.files, budget)
    return await _add(services, room_id, files, [])


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
    files, folders = await run_in_threadpool(_zip_files, bytes(data), budget)
    return await _add(services, room_id, files, folders)


__all__ = ["clean_path", "export_archive", "router"]
