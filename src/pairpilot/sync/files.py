"""The room's files as the client lays them out: ``Y.Map("files")`` of ``Y.Text``.

Changes the server makes to them (a restore, an upload) are computed on a copy of the live
document under a client id of their own and handed back as one Yjs update, which the room
applies and broadcasts like any other: every replica converges on it, offline ones included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pycrdt import Doc, Map, Text

FILES_KEY = "files"
HISTORY_KEY = "history"
LAST_RESTORE = "lastRestore"


def doc_of(state: bytes | None) -> Doc[Any]:
    """A fresh document holding ``state`` (a Yjs update), or an empty one."""
    doc: Doc[Any] = Doc()
    if state:
        doc.apply_update(state)
    return doc


def read_files(doc: Doc[Any]) -> dict[str, str]:
    """Every file's text, by name (entries that are not texts are not files)."""
    files = doc.get(FILES_KEY, type=Map)
    return {name: str(text) for name, text in files.items() if isinstance(text, Text)}


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


def restore_update(current: Doc[Any], version_state: bytes, note: Mapping[str, object]) -> bytes:
    """The update that makes ``current``'s files equal to the version's, and records ``note``.

    Files added since the version are removed, removed ones come back, changed ones are edited
    back; everything outside ``files`` (the shared run output) is left as it is.
    """
    target = read_files(doc_of(version_state))

    def edit(work: Doc[Any]) -> None:
        files = work.get(FILES_KEY, type=Map)
        for name in list(files.keys()):
            if name not in target:
                del files[name]
        for name, content in target.items():
            existing = files.get(name)
            if isinstance(existing, Text):
                _replace_text(existing, content)
            else:
                files[name] = Text(content)
        work.get(HISTORY_KEY, type=Map)[LAST_RESTORE] = dict(note)

    update: bytes = _change(current, edit)
    return update


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``stem (2).ext``, ``stem (3).ext``… when it is taken."""
    if name not in taken:
        return name
    stem, dot, ext = name.rpartition(".")
    if not stem:  # no extension, or a dot file such as ".env"
        stem, dot, ext = name, "", ""
    counter = 2
    while True:
        candidate = f"{stem} ({counter}){dot}{ext}"
        if candidate not in taken:
            return candidate
        counter += 1


def add_files_update(
    current: Doc[Any], files: Iterable[tuple[str, str]]
) -> tuple[bytes, list[str]]:
    """The update adding ``(name, text)`` files, renamed where a name is taken; the names."""
    taken = set(read_files(current)) | set(current.get(FILES_KEY, type=Map).keys())
    names: list[str] = []
    contents: list[str] = []
    for name, text in files:
        final = unique_name(name, taken)
        taken.add(final)
        names.append(final)
        contents.append(text)

    def edit(work: Doc[Any]) -> None:
        target = work.get(FILES_KEY, type=Map)
        for name, text in zip(names, contents, strict=True):
            target[name] = Text(text)

    update: bytes = _change(current, edit)
    return update, names
