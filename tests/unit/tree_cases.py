"""Resolver cases both resolvers must answer alike (Python here, TypeScript in interop/)."""

from __future__ import annotations

from typing import NamedTuple


class Case(NamedTuple):
    """Files asked for (id → path, None: the id), explicit folders, and the tree expected."""

    name: str
    wanted: dict[str, str | None]
    folders: list[str]
    files: dict[str, str]
    tree_folders: list[str]


CASES = [
    Case(
        "legacy names are paths",
        {"main.py": None, "b.js": None},
        [],
        {"b.js": "b.js", "main.py": "main.py"},
        [],
    ),
    Case(
        "a path entry wins over the id",
        {"main.py": "src/app.py"},
        [],
        {"main.py": "src/app.py"},
        ["src"],
    ),
    Case(
        "same path: smallest id keeps it",
        {"id-b": "a.py", "id-a": "a.py", "id-c": "a.py"},
        [],
        {"id-a": "a.py", "id-b": "a (2).py", "id-c": "a (3).py"},
        [],
    ),
    Case(
        "a suffix skips a path already taken",
        {"x": "a (2).py", "y": "a.py", "z": "a.py"},
        [],
        {"x": "a (2).py", "y": "a.py", "z": "a (3).py"},
        [],
    ),
    Case(
        "a folder keeps its path over a file",
        {"f": "src", "g": "src/a.py"},
        [],
        {"f": "src (2)", "g": "src/a.py"},
        ["src"],
    ),
    Case(
        "an explicit folder keeps its path over a file",
        {"f": "docs"},
        ["docs"],
        {"f": "docs (2)"},
        ["docs"],
    ),
    Case("explicit folders bring their parents", {}, ["a/b/c"], {}, ["a", "a/b", "a/b/c"]),
    Case(
        "dot files and names without a dot get the suffix last",
        {"1": ".env", "2": ".env", "3": "Makefile", "4": "Makefile"},
        [],
        {"1": ".env", "2": ".env (2)", "3": "Makefile", "4": "Makefile (2)"},
        [],
    ),
    Case(
        "normalised: slashes, dots, control characters",
        {"1": "/a//./b/../c.py", "2": "x\\y.py", "3": "bad\x00\x1fname.py", "4": "../..", "5": ""},
        ["/", "./"],
        {"1": "a/b/c.py", "2": "x/y.py", "3": "badname.py", "4": "untitled", "5": "untitled (2)"},
        ["a", "a/b", "x"],
    ),
    Case(
        "ids order by code point, not UTF-16 unit",
        {"\U0001f600": "p", "\uff01": "p"},
        [],
        {"\uff01": "p", "\U0001f600": "p (2)"},
        [],
    ),
    Case(
        "paths order by code point",
        {"1": "\U0001f600", "2": "\uff01"},
        [],
        {"2": "\uff01", "1": "\U0001f600"},
        [],
    ),
]
