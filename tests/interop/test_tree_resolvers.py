"""The browser's tree resolver (TypeScript) and the server's (Python) agree, and converge.

The property test drives three pycrdt replicas with random tree operations, exchanges their
updates in random orders, and checks that every replica shows the same tree, with no cycle and
no file left out, and that the TypeScript resolver shows the very same tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Text
from tests import tree_ops
from tests.interop.tree_support import NodeResolver
from tests.unit.tree_cases import CASES, Case

from pairpilot.sync.files import read_tree, texts_of
from pairpilot.sync.tree import FOLDERS_KEY, PATHS_KEY, Tree, parents


@pytest.fixture(scope="module")
def node_resolver(node: str) -> Iterator[NodeResolver]:
    resolver = NodeResolver(node)
    yield resolver
    resolver.close()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_typescript_resolver_answers_each_case(node_resolver: NodeResolver, case: Case) -> None:
    tree = node_resolver.resolve(case.wanted, case.folders)
    assert tree.files == case.files
    assert list(tree.files.values()) == sorted(case.files.values())  # in code point order
    assert tree.folders == case.tree_folders


def _inputs(doc: Doc[Any]) -> tuple[dict[str, str | None], list[str]]:
    paths = doc.get(PATHS_KEY, type=Map)
    wanted = {}
    for file_id in texts_of(doc):
        path = paths.get(file_id)
        wanted[file_id] = path if isinstance(path, str) else None
    return wanted, list(doc.get(FOLDERS_KEY, type=Map).keys())


SEGMENTS = st.sampled_from(["a", "b", "c"])
NAMES = st.sampled_from(["x.py", "y.py", "a", "b"])
PATHS = st.builds(
    lambda folders, name: "/".join([*folders, name]), st.lists(SEGMENTS, max_size=2), NAMES
)
FOLDERS = st.builds("/".join, st.lists(SEGMENTS, min_size=1, max_size=3))
OPS = st.one_of(
    st.tuples(st.just("create"), PATHS),
    st.tuples(st.just("folder"), FOLDERS),
    st.tuples(st.just("rename"), st.integers(0, 20), PATHS),
    st.tuples(st.just("edit"), st.integers(0, 20), st.text(max_size=3)),
    st.tuples(st.just("delete"), st.integers(0, 20)),
    st.tuples(st.just("move_folder"), FOLDERS, FOLDERS),
    st.tuples(st.just("delete_folder"), FOLDERS),
    st.tuples(st.just("legacy"), NAMES),
)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("op"), st.integers(0, 2), OPS),
        st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2)),
    ),
    max_size=40,
)


def _apply(doc: Doc[Any], op: tuple[Any, ...]) -> None:
    kind = op[0]
    ids = sorted(texts_of(doc))
    if kind == "create":
        tree_ops.create_file(doc, op[1], "new\n")
    elif kind == "folder":
        tree_ops.create_folder(doc, op[1])
    elif kind == "legacy":
        # What a stock client of the old schema does: the name is the key, no path entry.
        doc.get("files", type=Map)[op[1]] = Text("old style\n")
    elif kind == "move_folder":
        folder, to = op[1], op[2]
        if to != folder and not to.startswith(f"{folder}/"):  # the page refuses those locally
            tree_ops.move_folder(doc, folder, to)
    elif kind == "delete_folder":
        tree_ops.delete_folder(doc, op[1])
    elif ids:
        file_id = ids[op[1] % len(ids)]
        if kind == "rename":
            tree_ops.rename_file(doc, file_id, op[2])
        elif kind == "edit":
            tree_ops.edit_file(doc, file_id, op[2])
        else:
            tree_ops.delete_file(doc, file_id)


def _sync(source: Doc[Any], target: Doc[Any]) -> None:
    target.apply_update(source.get_update(target.get_state()))


def _check_tree(doc: Doc[Any], tree: Tree) -> None:
    shown = list(tree.files.values())
    assert len(shown) == len(set(shown)), "two files shown under one path"
    assert set(tree.files) == set(texts_of(doc)), "a file is missing from the tree"
    folders = set(tree.folders)
    assert not folders & set(shown), "a path is both a file and a folder"
    for path in [*shown, *folders]:
        # Every file and folder hangs from the root through folders that exist: no cycle, no
        # unreachable subtree.
        assert set(parents(path)) <= folders, path


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS, order=st.permutations([(0, 1), (1, 2), (2, 0), (1, 0), (2, 1), (0, 2)]))
def test_three_replicas_converge_on_one_tree(
    node_resolver: NodeResolver, steps: list[tuple[Any, ...]], order: list[tuple[int, int]]
) -> None:
    base = Doc()
    tree_ops.create_file(base, "a/x.py", "one\n", file_id="id-1")
    tree_ops.create_file(base, "b/y.py", "two\n", file_id="id-2")
    base.get("files", type=Map)["main.py"] = Text("legacy\n")
    replicas = []
    for _ in range(3):
        replica: Doc[Any] = Doc()
        replica.apply_update(base.get_update())
        replicas.append(replica)
    for step in steps:
        if step[0] == "op":
            _apply(replicas[step[1]], step[2])
        else:
            _sync(replicas[step[1]], replicas[step[2]])
    for _ in range(2):  # twice round, in the drawn order: everyone has everything
        for source, target in order:
            _sync(replicas[source], replicas[target])
    trees = [read_tree(replica) for replica in replicas]
    texts = [{k: str(v) for k, v in texts_of(replica).items()} for replica in replicas]
    assert trees[0] == trees[1] == trees[2]
    assert texts[0] == texts[1] == texts[2]
    _check_tree(replicas[0], trees[0])
    wanted, folders = _inputs(replicas[0])
    assert node_resolver.resolve(wanted, folders) == trees[0]
