"""The page's tree operations (client/src/files.ts) on a pycrdt document, for the tests.

Each one is what a replica writes, as the schema in README.md says: a rename or move sets a
file's ``paths`` entry, a folder move sets every file's under it, a delete removes the file's
``files`` and ``paths`` entries.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map, Text

from pairpilot.sync.files import new_file_id, read_tree, texts_of
from pairpilot.sync.tree import FILES_KEY, FOLDERS_KEY, PATHS_KEY


def _maps(doc: Doc[Any]) -> tuple[Map[Any], Map[Any], Map[Any]]:
    return (
        doc.get(FILES_KEY, type=Map),
        doc.get(PATHS_KEY, type=Map),
        doc.get(FOLDERS_KEY, type=Map),
    )


def create_file(doc: Doc[Any], path: str, content: str = "", file_id: str | None = None) -> str:
    """A new file at ``path``; its id."""
    file_id = file_id or new_file_id()
    files, paths, _ = _maps(doc)
    with doc.transaction():
        files[file_id] = Text(content)
        paths[file_id] = path
    return file_id


def create_folder(doc: Doc[Any], path: str) -> None:
    """An explicit (empty) folder."""
    with doc.transaction():
        _maps(doc)[2][path] = True


def rename_file(doc: Doc[Any], file_id: str, path: str) -> None:
    """Rename or move one file: its text stays the same object."""
    with doc.transaction():
        _maps(doc)[1][file_id] = path


def edit_file(doc: Doc[Any], file_id: str, addition: str) -> None:
    """Append to a file's text."""
    text = texts_of(doc)[file_id]
    with doc.transaction():
        text += addition


def delete_file(doc: Doc[Any], file_id: str) -> None:
    """Remove a file."""
    files, paths, _ = _maps(doc)
    with doc.transaction():
        del files[file_id]
        if file_id in paths:
            del paths[file_id]


def _under(path: str, folder: str) -> bool:
    return path.startswith(f"{folder}/")


def move_folder(doc: Doc[Any], folder: str, to: str) -> None:
    """Rename or move a folder: every file and explicit folder under it, as shown now."""
    tree = read_tree(doc)
    _, paths, folders = _maps(doc)
    with doc.transaction():
        for file_id, path in tree.files.items():
            if _under(path, folder):
                paths[file_id] = to + path[len(folder) :]
        for explicit in list(folders.keys()):
            if explicit == folder or _under(explicit, folder):
                del folders[explicit]
                folders[to + explicit[len(folder) :]] = True


def delete_folder(doc: Doc[Any], folder: str) -> int:
    """Remove a folder with everything in it; how many files went."""
    tree = read_tree(doc)
    files, paths, folders = _maps(doc)
    gone = [file_id for file_id, path in tree.files.items() if _under(path, folder)]
    with doc.transaction():
        for file_id in gone:
            del files[file_id]
            if file_id in paths:
                del paths[file_id]
        for explicit in list(folders.keys()):
            if explicit == folder or _under(explicit, folder):
                del folders[explicit]
    return len(gone)
