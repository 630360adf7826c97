"""The room's files as the client lays them out: see :mod:`pairpilot.sync.tree` for the schema.

Changes the server makes to them (a restore; an upload, :mod:`pairpilot.sync.transfer`) are
computed under a client id of their own and handed back as one Yjs update, which the room
applies and broadcasts like any other: every replica converges on it, offline ones included.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

from pycrdt import Doc, Map, Text

from pairpilot.sync.tree import (
    FILES_KEY,
    FOLDERS_KEY,
    PATHS_KEY,
    Tree,
    resolve,
    suffixed,
)

HISTORY_KEY = "history"
LAST_RESTORE = "lastRestore"


def doc_of(state: bytes | None) -> Doc[Any]:
    """A fresh document holding ``state`` (a Yjs update), or an empty one."""
    doc: Doc[Any] = Doc()
    if state:
        doc.apply_update(state)
    return doc


def _map(doc: Doc[Any], key: str) -> Map[Any]:
    found: Map[Any] = doc.get(key, type=Map)
    return found


def texts_of(doc: Doc[Any]) -> dict[str, Text]:
    """Every file's text by file id (entries that are not texts are not files)."""
    return {key: value for key, value in _map(doc, FILES_KEY).items() if isinstance(value, Text)}


def text_bytes(doc: Doc[Any]) -> int:
    """The UTF-8 bytes of every file's text: a floor of the document's encoded size.

    The encoding holds them; a text's length is its bytes, so nothing is encoded to count them.
    """
    return sum(len(text) for text in texts_of(doc).values())


def read_tree(doc: Doc[Any]) -> Tree:
    """The document's tree as every replica shows it (:func:`pairpilot.sync.tree.resolve`)."""
    paths = _map(doc, PATHS_KEY)
    wanted: dict[str, str | None] = {}
    for file_id in texts_of(doc):
        path = paths.get(file_id)
        wanted[file_id] = path if isinstance(path, str) else None
    return resolve(wanted, _map(doc, FOLDERS_KEY).keys())


def read_files(doc: Doc[Any]) -> dict[str, str]:
    """Every file's text, by the path it is shown under."""
    texts = texts_of(doc)
    return {path: str(texts[file_id]) for file_id, path in read_tree(doc).files.items()}


def new_file_id() -> str:
    """A fresh file id: random, so two replicas never pick the same one."""
    return f"id-{secrets.token_hex(12)}"


def _replace_text(text: Text, new: str) -> None:
    """Edit ``text`` into ``new`` by replacing only the middle that differs.

    pycrdt indexes texts by UTF-8 byte; the cut is found on characters and converted, so it
    never splits one. Concurrent edits outside the changed middle survive the merge.
    """
    old = str(text)
    if old == new:
        return
    prefix = 0
    limit = min(len(old), len(new))
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    start = len(old[:prefix].encode())
    removed = len(old[prefix : len(old) - suffix].encode())
    if removed:
        del text[start : start + removed]
    inserted = new[prefix : len(new) - suffix]
    if inserted:
        text.insert(start, inserted)


def _change(current: Doc[Any], edit: Callable[[Doc[Any]], None]) -> bytes:
    work = doc_of(current.get_update())
    before = work.get_state()
    with work.transaction():
        edit(work)
    return work.get_update(before)


def _restore_files(
    work: Doc[Any], target: Mapping[str, str], target_paths: Mapping[str, Any]
) -> None:
    files, paths = _map(work, FILES_KEY), _map(work, PATHS_KEY)
    for file_id in list(files.keys()):
        if file_id not in target:
            del files[file_id]
    for file_id in list(paths.keys()):
        if not isinstance(target_paths.get(file_id), str) or file_id not in target:
            del paths[file_id]
    for file_id, content in target.items():
        existing = files.get(file_id)
        if isinstance(existing, Text):
            _replace_text(existing, content)
        else:
            files[file_id] = Text(content)
        path = target_paths.get(file_id)
        if isinstance(path, str) and paths.get(file_id) != path:
            paths[file_id] = path


def _restore_folders(work: Doc[Any], target: set[str]) -> None:
    folders = _map(work, FOLDERS_KEY)
    for folder in list(folders.keys()):
        if folder not in target:
            del folders[folder]
    for folder in sorted(target - set(folders.keys())):
        folders[folder] = True


def restore_update(current: Doc[Any], version_state: bytes, note: Mapping[str, object]) -> bytes:
    """The update that makes ``current``'s files equal to the version's, and records ``note``.

    Files are matched by id, not by path: a file renamed since the version goes back to its old
    path with its own text (edited back), files added since are removed, removed ones come back
    under their old ids, and the explicit folders become the version's. Everything outside the
    tree (the shared run output) is left as it is.
    """
    version = doc_of(version_state)
    target = {file_id: str(text) for file_id, text in texts_of(version).items()}
    target_paths = dict(_map(version, PATHS_KEY).items())
    target_folders = set(_map(version, FOLDERS_KEY).keys())

    def edit(work: Doc[Any]) -> None:
        _restore_files(work, target, target_paths)
        _restore_folders(work, target_folders)
        _map(work, HISTORY_KEY)[LAST_RESTORE] = dict(note)

    update: bytes = _change(current, edit)
    return update


def unique_path(path: str, taken: set[str]) -> str:
    """``path``, or ``stem (2).ext``, ``stem (3).ext``… in its folder when it is taken."""
    counter = 1
    candidate = path
    while candidate in taken:
        counter += 1
        candidate = suffixed(path, counter)
    return candidate


__all__ = [
    "FILES_KEY",
    "doc_of",
    "new_file_id",
    "read_files",
    "read_tree",
    "restore_update",
    "texts_of",
    "unique_path",
]
