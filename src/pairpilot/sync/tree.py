"""The room's file tree: which path each file is shown under (issue #24).

The document holds three maps. ``files``: file id → ``Y.Text`` (a file's identity is its key,
so renames and moves never replace its text). ``paths``: file id → path, a last-writer-wins
string per file. ``folders``: folder path → ``true``, for folders that hold no file. A file
with no ``paths`` entry is shown under its id: that is every file of a room made before
folders, and every file a stock client adds the old way (``files.set("main.py", text)``).

The tree is computed from these maps by :func:`resolve`, a pure function that
``client/src/tree-model.ts`` implements identically (both are tested on the same cases):
paths are normalised, folders are the explicit ones plus every file's parent folders, and
where two files (or a file and a folder) want one path, the folder and then the smallest id
keep it and the others are shown as ``name (2).ext``, ``name (3).ext``… Because a folder is
only ever a prefix of paths, no cycle can form and every file is reachable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FILES_KEY = "files"
PATHS_KEY = "paths"
FOLDERS_KEY = "folders"
# The path a file is shown under when nothing usable is left of the one it asks for.
UNTITLED = "untitled"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalise(path: str) -> str:
    """``path`` without control characters, empty, ``.`` or ``..`` segments ("" if none)."""
    segments = _CONTROL.sub("", path).replace("\\", "/").split("/")
    return "/".join(segment for segment in segments if segment not in {"", ".", ".."})


def parents(path: str) -> list[str]:
    """The folders ``path`` is in, outermost first: ``a/b/c`` → ``a``, ``a/b``."""
    segments = path.split("/")
    return ["/".join(segments[:end]) for end in range(1, len(segments))]


def suffixed(path: str, counter: int) -> str:
    """``dir/stem (counter).ext``; a dot file or a name without a dot gets the suffix last."""
    folder, slash, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not stem:
        stem, dot, ext = name, "", ""
    return f"{folder}{slash}{stem} ({counter}){dot}{ext}"


@dataclass(frozen=True)
class Tree:
    """A resolved tree: every file's shown path by id, and every folder, sorted."""

    files: dict[str, str]
    folders: list[str]

    def ids_by_path(self) -> dict[str, str]:
        """File ids by shown path."""
        return {path: file_id for file_id, path in self.files.items()}


def resolve(wanted: Mapping[str, str | None], explicit_folders: Iterable[str]) -> Tree:
    """The tree of files ``wanted`` (id → path asked for, None: the id) and folders.

    Deterministic in its inputs alone, so every replica that holds the same document shows
    the same tree. Orders compare strings by code point, as ``tree-model.ts`` does.
    """
    asked = {}
    for file_id, path in wanted.items():
        asked[file_id] = normalise(file_id if path is None else path) or UNTITLED
    folders: set[str] = set()
    for folder in explicit_folders:
        clean = normalise(folder)
        if clean:
            folders.add(clean)
            folders.update(parents(clean))
    for path in asked.values():
        folders.update(parents(path))
    taken = set(folders)
    shown: dict[str, str] = {}
    waiting: list[str] = []
    for file_id in sorted(asked, key=lambda i: (asked[i], i)):
        if asked[file_id] in taken:
            waiting.append(file_id)
        else:
            taken.add(asked[file_id])
            shown[file_id] = asked[file_id]
    for file_id in waiting:
        counter = 2
        while suffixed(asked[file_id], counter) in taken:
            counter += 1
        shown[file_id] = suffixed(asked[file_id], counter)
        taken.add(shown[file_id])
    return Tree(
        files=dict(sorted(shown.items(), key=lambda item: (item[1], item[0]))),
        folders=sorted(folders),
    )


__all__ = [
    "FILES_KEY",
    "FOLDERS_KEY",
    "PATHS_KEY",
    "UNTITLED",
    "Tree",
    "normalise",
    "parents",
    "resolve",
    "suffixed",
]
