"""Files in and out of a room in bulk (zips, uploads, snapshots), pure: the merge worker runs it.

Inflating a zip, decoding its texts, building the update that adds them, parsing a 21 MB
snapshot body and decoding its base64 each hold the GIL for milliseconds to tens of
milliseconds (zlib lets go of it, the rest does not): in the server they paused every room's
fan-out (bench/README.md, "Off the event loop"). Each function here takes and returns bytes and
small values only, so ``Merger.run`` (storage/merging.py) can run it in its worker process and
what comes back costs the event loop a copy, not a decode. Imports stay light: the worker
imports this module, not the web stack.

Bad input is a BadRequestError (400) or PayloadTooLargeError (413) naming it; both cross the
process boundary unchanged.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from pycrdt import Doc, Map, Text

from pairpilot.errors import BadRequestError, PayloadTooLargeError
from pairpilot.storage.merging import missing_part
from pairpilot.storage.store import fold
from pairpilot.sync.files import doc_of, new_file_id, read_files, read_tree, unique_path
from pairpilot.sync.protocol import EMPTY_UPDATE
from pairpilot.sync.tree import FILES_KEY, FOLDERS_KEY, PATHS_KEY, parents

MAX_NAME = 128
MAX_PATH = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")
# Every entry of an exported zip is dated the same, so one room's export is the same bytes
# each time (and after a round trip through an import).
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Entries archivers add that are not files of the project.
_JUNK = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$)")
# An upload's update comes in pieces of whole files, each about this many bytes of text at most
# (one file may be bigger): the room applies them with its event loop running between them. An
# 8 MB update applied at once held the loop for 10-20 ms (bench/README.md, "Off the event loop").
PIECE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """``PAIRPILOT_UPLOAD_MAX_FILES``, ``_MAX_FILE_BYTES`` and ``_MAX_BYTES``."""

    files: int
    file_bytes: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class RoomTree:
    """What of the room an upload is built against.

    ``taken``: every path the room shows a file or a folder under; ``folders``: its folders;
    ``room_left``: the bytes its quota still allows at least (None: build whatever the size).
    """

    taken: frozenset[str]
    folders: frozenset[str]
    room_left: int | None = None

    @classmethod
    def of(cls, doc: Doc[Any], room_left: int | None = None) -> RoomTree:
        """The tree of ``doc`` (a live room's document: reads its maps, copies nothing)."""
        tree = read_tree(doc)
        taken = frozenset(tree.files.values()) | frozenset(tree.folders)
        return cls(taken, frozenset(tree.folders), room_left)

    def same_files(self, doc: Doc[Any]) -> bool:
        """Whether ``doc`` still shows the paths and folders this tree was read with."""
        now = RoomTree.of(doc)
        return (now.taken, now.folders) == (self.taken, self.folders)


@dataclass(frozen=True, slots=True)
class Upload:
    """An upload checked and made into updates (:func:`files_updates`: pieces of whole files).

    ``names``: the paths its files get (taken ones numbered), in upload order; ``sources``:
    the names they were uploaded as; ``text_bytes``: the UTF-8 bytes of their texts, a lower
    bound of the updates' length; ``pieces``: None when ``text_bytes`` is past the room's
    ``room_left`` (the room refuses it before anything is built).
    """

    names: list[str]
    sources: list[str]
    text_bytes: int
    pieces: list[bytes] | None


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

    def __init__(self, limits: UploadLimits) -> None:
        self.files_left = limits.files
        self.bytes_left = limits.total_bytes
        self.file_max = limits.file_bytes

    def take(self, source: str, size: int) -> None:
        self.files_left -= 1
        self.bytes_left -= size
        if self.files_left < 0:
            raise PayloadTooLargeError("too many files in one upload")
        if size > self.file_max:
            raise PayloadTooLargeError(f"{source} is over {self.file_max} bytes")
        if self.bytes_left < 0:
            raise PayloadTooLargeError("the upload is over its size limit")


# (path in the room, name as uploaded, text, its UTF-8 bytes)
_File = tuple[str, str, str, int]


class _PastRoom(Exception):  # noqa: N818 - not an error: the zip's texts outgrow the room
    def __init__(self, inflated: int) -> None:
        self.inflated = inflated


def _zip_entries(
    data: bytes | str, budget: _Budget, folders: list[str], room_left: int | None
) -> Iterator[_File]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except zipfile.BadZipFile as exc:
        raise BadRequestError("the body is not a zip archive") from exc
    inflated = 0
    with archive:
        for info in archive.infolist():
            if _JUNK.search(info.filename):
                continue
            if info.is_dir():
                folders.append(clean_path(info.filename))
                continue
            budget.take(info.filename, info.file_size)
            # The header's size may lie: never inflate more than it allows, nor more than one
            # byte past what the room can take (a full room's zip stops at its first byte).
            most = budget.file_max + 1
            if room_left is not None:
                most = min(most, max(room_left - inflated, 0) + 1)
            try:
                with archive.open(info) as entry:
                    content = entry.read(most)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError) as exc:
                raise BadRequestError(f"{info.filename} cannot be read: {exc}") from exc
            inflated += len(content)
            if room_left is not None and inflated > room_left:
                raise _PastRoom(inflated)
            if len(content) != info.file_size:
                raise BadRequestError(f"{info.filename} does not match its zip header")
            text = _text_of(info.filename, content)
            yield clean_path(info.filename), info.filename, text, len(content)


def zip_size(data: bytes) -> int:
    """The bytes a zip's entries say they inflate to (at least its own size).

    The headers may lie: a lie is found when the entry is read, having inflated at most
    ``PAIRPILOT_UPLOAD_MAX_FILE_BYTES`` + 1 bytes of it. Bytes that are not a zip count as
    themselves (reading them refuses them).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return max(len(data), sum(info.file_size for info in archive.infolist()))
    except (zipfile.BadZipFile, OSError, ValueError):
        return len(data)


def zip_upload(data: bytes | str, limits: UploadLimits, room: RoomTree) -> Upload:
    """A zip (its bytes, or the path of a file holding them: web/spool.py) made into an upload.

    Its text files and folders are checked and made into the updates adding them.

    Its entries are inflated only until their bytes pass ``room.room_left``: such a zip is
    not read further, and comes back with its bytes so far and no update (the room refuses
    it; entries past that point are not checked).
    """
    folders: list[str] = []
    try:
        files = list(_zip_entries(data, _Budget(limits), folders, room.room_left))
    except _PastRoom as past:
        return Upload([], [], past.inflated, None)
    return _upload(files, folders, room)


def files_upload(files: list[tuple[str, str]], limits: UploadLimits, room: RoomTree) -> Upload:
    """``(name, text)`` files of a JSON upload, checked and made into the update adding them."""
    budget = _Budget(limits)
    checked = []
    for name, text in files:
        data = text.encode("utf-8")
        budget.take(name, len(data))
        checked.append((clean_path(name), name, _text_of(name, data), len(data)))
    return _upload(checked, [], room)


def _upload(files: list[_File], folders: list[str], room: RoomTree) -> Upload:
    if not files and not folders:
        raise BadRequestError("the upload holds no files")
    names = assign_paths([path for path, _, _, _ in files], room.taken)
    # Every text is in the update in full (UTF-8): a lower bound of its length.
    text_bytes = sum(size for _, _, _, size in files)
    pieces = None
    if room.room_left is None or text_bytes <= room.room_left:
        new_folders = [folder for folder in folders if folder not in room.folders]
        texts = [text for _, _, text, _ in files]
        pieces = files_updates(zip(names, texts, strict=True), new_folders)
    return Upload(names, [source for _, source, _, _ in files], text_bytes, pieces)


def assign_paths(paths: Iterable[str], taken: Iterable[str]) -> list[str]:
    """Each path, or ``stem (2).ext``… where the room (or an earlier one) already has it."""
    used = set(taken)
    names = []
    for path in paths:
        final = unique_path(path, used)
        used.add(final)
        used.update(parents(final))
        names.append(final)
    return names


def files_updates(
    files: Iterable[tuple[str, str]], folders: Iterable[str] = (), piece_bytes: int = PIECE_BYTES
) -> list[bytes]:
    """The updates adding ``(path, text)`` files under fresh ids, and empty ``folders``.

    Each update adds whole files (and the first the folders), about ``piece_bytes`` of text at
    most unless one file is bigger; applied in order they make the whole upload. Made in a
    document of its own: every key they set is new (a fresh file id, or a folder the room
    lacked), so they apply to the room as they would had they been made on a copy of the
    room's document, without that copy.
    """
    doc: Doc[Any] = Doc()
    texts: Map[Any] = doc.get(FILES_KEY, type=Map)
    paths: Map[Any] = doc.get(PATHS_KEY, type=Map)
    marked: Map[Any] = doc.get(FOLDERS_KEY, type=Map)
    with doc.transaction():
        for folder in folders:
            marked[folder] = True
    pieces: list[bytes] = []
    for batch in _batches(files, piece_bytes):
        before = doc.get_state() if pieces else b"\x00"  # the first piece holds the folders
        with doc.transaction():
            for path, text in batch:
                file_id = new_file_id()
                texts[file_id] = Text(text)
                paths[file_id] = path
        pieces.append(doc.get_update(before))
    return pieces or [doc.get_update()]


def _batches(files: Iterable[tuple[str, str]], piece_bytes: int) -> Iterator[list[tuple[str, str]]]:
    batch: list[tuple[str, str]] = []
    size = 0
    for path, text in files:
        if batch and size + len(text) > piece_bytes:
            yield batch
            batch, size = [], 0
        batch.append((path, text))
        size += len(text)
    if batch:
        yield batch


def export_parts(parts: list[bytes]) -> bytes:
    """:func:`export_archive` of a stored room's snapshot and log.

    Run by the worker, which read them: a big live room's export no longer encodes its
    document on the event loop.
    """
    return export_archive(fold(parts) if parts else None)


def snapshot_body(head: dict[str, Any], parts: list[bytes]) -> bytes:
    """A snapshot GET's JSON body for a stored room's snapshot and log, made in the worker.

    ``head``: the answer's other fields as JSON values, in order (``snapshot_b64`` among
    them, set here: null for an empty document). The body is what FastAPI would write for
    them; a 32 MiB room's base64 is 44 MB of JSON the event loop no longer builds.
    """
    state = fold(parts) if parts else EMPTY_UPDATE
    encoded = None
    if state != EMPTY_UPDATE:
        encoded = binascii.b2a_base64(state, newline=False).decode("ascii")
    fields = {**head, "snapshot_b64": encoded}
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


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


class SnapshotPart(NamedTuple):
    """What a snapshot POST brings: the part the room lacks, and the snapshot's own length."""

    update: bytes
    length: int


# A snapshot POST's body refused as FastAPI would word it for ``SnapshotIn``
# (``{"snapshot_b64": str, min 1 character}``): the messages are pydantic's.
_NOT_AN_OBJECT = "body: Input should be a valid dictionary or object to extract fields from"


def snapshot_part(
    body: bytes, content_type: str | None, limit: int, state_vector: bytes | None
) -> SnapshotPart:
    """What of a snapshot POST's JSON body a room at ``state_vector`` lacks (None: all of it).

    400 for a body that is not ``{"snapshot_b64": "..."}`` (worded as FastAPI words it), for
    bad base64 and for bytes that are not a Yjs update (when cut; else the live apply refuses
    them); 413 for a snapshot over ``limit``.
    """
    encoded = _snapshot_b64(body, content_type)
    if len(encoded) * 3 // 4 > limit:
        raise PayloadTooLargeError(f"snapshot over {limit} bytes")
    try:
        update = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError("snapshot_b64 is not valid base64") from exc
    if state_vector is None:
        return SnapshotPart(update, len(update))
    try:
        return SnapshotPart(missing_part(update, state_vector), len(update))
    except ValueError as exc:
        raise BadRequestError("snapshot_b64 is not a Yjs update") from exc


def _snapshot_b64(body: bytes, content_type: str | None) -> str:
    if not body:
        raise BadRequestError("body: Field required")
    if not _is_json(content_type):
        raise BadRequestError(_NOT_AN_OBJECT)
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"body.{exc.pos}: JSON decode error") from exc
    except (ValueError, RecursionError) as exc:  # not UTF-8, or nested past the parser
        raise BadRequestError("There was an error parsing the body") from exc
    if not isinstance(value, dict):
        raise BadRequestError(_NOT_AN_OBJECT)
    if "snapshot_b64" not in value:
        raise BadRequestError("body.snapshot_b64: Field required")
    encoded = value["snapshot_b64"]
    if not isinstance(encoded, str):
        raise BadRequestError("body.snapshot_b64: Input should be a valid string")
    if not encoded:
        raise BadRequestError("body.snapshot_b64: String should have at least 1 character")
    return encoded


def _is_json(content_type: str | None) -> bool:
    """FastAPI's test: ``application/json`` or ``application/*+json``, parameters aside."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
