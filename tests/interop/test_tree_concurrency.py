"""Concurrent tree operations by two stock Yjs clients against the real server.

Each test seeds a room, takes both clients offline, has each apply one operation (so neither
saw the other's), brings them back, waits until both clients and the server hold the same
document, and checks the tree every replica shows (README, "Concurrent tree operations").
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pycrdt import Doc, Map, Text
from tests import tree_ops
from tests.interop.tree_support import NodeResolver, TreePeer, state_vector
from tests.support import User, new_user

from pairpilot.sync.files import doc_of, read_tree
from pairpilot.sync.tree import Tree, parents, resolve

pytestmark = pytest.mark.anyio

Command = tuple[str, dict[str, object]]


@pytest.fixture(scope="module")
def node_resolver(node: str) -> Iterator[NodeResolver]:
    resolver = NodeResolver(node)
    yield resolver
    resolver.close()


@pytest.fixture
async def owner(server: Any, room: str) -> User:
    user = await new_user(server.http_url, "Owner")
    assert (await user.join(room)).status_code == 200
    return user


async def _seed(user: User, room: str, build: Callable[[Doc[Any]], None]) -> None:
    doc: Doc[Any] = Doc()
    build(doc)
    update = base64.b64encode(doc.get_update()).decode()
    response = await user.call("POST", f"/api/rooms/{room}/snapshot", json={"snapshot_b64": update})
    assert response.status_code == 200, response.text


async def _server_doc(user: User, room: str) -> Doc[Any]:
    response = await user.call("GET", f"/api/rooms/{room}/snapshot")
    assert response.status_code == 200, response.text
    return doc_of(base64.b64decode(response.json()["snapshot_b64"] or ""))


def _state(doc: Doc[Any]) -> dict[str, Any]:
    files = {k: str(v) for k, v in doc.get("files", type=Map).items() if isinstance(v, Text)}
    return {
        "files": files,
        "paths": dict(doc.get("paths", type=Map).items()),
        "folders": sorted(doc.get("folders", type=Map).keys()),
    }


async def _server_state(user: User, room: str) -> dict[str, Any]:
    return _state(await _server_doc(user, room))


def _tree_of(state: dict[str, Any]) -> Tree:
    wanted = {file_id: state["paths"].get(file_id) for file_id in state["files"]}
    return resolve(
        {k: v if isinstance(v, str) else None for k, v in wanted.items()}, state["folders"]
    )


@pytest.fixture
async def peers(node: str, server: Any, room: str, owner: User) -> AsyncIterator[list[TreePeer]]:
    started = []
    for name in ("Ada", "Bob"):
        user = await new_user(server.http_url, name)
        assert (await user.join(room)).status_code == 200
        started.append(
            await TreePeer.start(node, f"ws://127.0.0.1:{server.port}/collab", room, user.token)
        )
    yield started
    for peer in started:
        await peer.stop()


async def _concurrently(
    peers: list[TreePeer], owner: User, room: str, first: Command, second: Command
) -> dict[str, Any]:
    """Both peers offline, one command each, both online; the state all three converge on."""
    ada, bob = peers
    for peer in peers:
        await peer.do("offline")
    offline = [await ada.do(first[0], **first[1]), await bob.do(second[0], **second[1])]
    for peer in peers:
        await peer.do("online")
    deadline = time.monotonic() + 60
    while True:
        doc = await _server_doc(owner, room)
        seen = state_vector(doc.get_state())
        reports = [await peer.do("report") for peer in peers]
        # The server holds what each one did offline, and both peers hold all the server has.
        if all(
            all(seen.get(client, 0) >= clock for client, clock in report["seen"].items())
            for report in offline
        ) and all(report["seen"] == seen for report in reports):
            server = _state(doc)
            assert reports[0]["state"] == reports[1]["state"] == server
            return server
        assert time.monotonic() < deadline, f"no convergence: {seen} {reports}"
        await asyncio.sleep(0.02)


def _check(state: dict[str, Any], resolver: NodeResolver) -> Tree:
    tree = _tree_of(state)
    wanted = {
        k: (v if isinstance(v := state["paths"].get(k), str) else None) for k in state["files"]
    }
    assert resolver.resolve(wanted, state["folders"]) == tree, "the page would show another tree"
    assert set(tree.files) == set(state["files"])
    for path in tree.files.values():
        assert set(parents(path)) <= set(tree.folders)
    return tree


def _files(doc: Doc[Any], **paths: tuple[str, str]) -> None:
    for file_id, (path, text) in paths.items():
        tree_ops.create_file(doc, path, text, file_id=file_id.replace("_", "-"))


async def test_a_rename_keeps_an_edit_made_at_the_same_time(peers, owner, room, node_resolver):
    await _seed(owner, room, lambda doc: _files(doc, id_1=("a.py", "one\n")))
    state = await _concurrently(
        peers,
        owner,
        room,
        ("rename", {"id": "id-1", "path": "src/a.py"}),
        ("edit", {"id": "id-1", "text": "two\n"}),
    )
    tree = _check(state, node_resolver)
    assert tree.files == {"id-1": "src/a.py"}
    assert state["files"] == {"id-1": "one\ntwo\n"}


async def test_two_renames_of_one_file_leave_one_file_with_one_name(
    peers, owner, room, node_resolver
):
    await _seed(owner, room, lambda doc: _files(doc, id_1=("a.py", "one\n")))
    state = await _concurrently(
        peers,
        owner,
        room,
        ("rename", {"id": "id-1", "path": "x.py"}),
        ("rename", {"id": "id-1", "path": "lib/y.py"}),
    )
    tree = _check(state, node_resolver)
    assert list(tree.files) == ["id-1"]
    assert tree.files["id-1"] in {"x.py", "lib/y.py"}
    assert state["files"] == {"id-1": "one\n"}


async def test_two_files_given_one_path_are_both_kept_one_with_a_suffix(
    peers, owner, room, node_resolver
):
    await _seed(owner, room, lambda doc: _files(doc, id_1=("a.py", "one\n")))
    state = await _concurrently(
        peers,
        owner,
        room,
        ("create", {"id": "id-b", "path": "src/new.py", "text": "from bob\n"}),
        ("create", {"id": "id-a", "path": "src/new.py", "text": "from ada\n"}),
    )
    tree = _check(state, node_resolver)
    assert tree.files == {"id-1": "a.py", "id-a": "src/new.py", "id-b": "src/new (2).py"}


async def test_folders_moved_into_each_other_make_no_cycle_and_lose_no_file(
    peers, owner, room, node_resolver
):
    await _seed(
        owner, room, lambda doc: _files(doc, id_1=("A/a.py", "a\n"), id_2=("B/b.py", "b\n"))
    )
    state = await _concurrently(
        peers,
        owner,
        room,
        ("move_folder", {"from": "A", "to": "B/A"}),
        ("move_folder", {"from": "B", "to": "A/B"}),
    )
    tree = _check(state, node_resolver)
    assert tree.files == {"id-2": "A/B/b.py", "id-1": "B/A/a.py"}
    assert state["files"] == {"id-1": "a\n", "id-2": "b\n"}


async def test_a_folder_deleted_while_a_file_in_it_is_edited_is_gone_and_comes_back_from_history(
    peers, owner, room, node_resolver
):
    await _seed(
        owner, room, lambda doc: _files(doc, id_1=("src/a.py", "one\n"), id_2=("b.py", "b\n"))
    )
    named = await owner.call("POST", f"/api/rooms/{room}/versions", json={"name": "before"})
    assert named.status_code == 201, named.text
    state = await _concurrently(
        peers,
        owner,
        room,
        ("delete_folder", {"path": "src"}),
        ("edit", {"id": "id-1", "text": "two\n"}),
    )
    assert _check(state, node_resolver).files == {"id-2": "b.py"}  # the delete wins
    restored = await owner.call("POST", f"/api/rooms/{room}/versions/{named.json()['id']}/restore")
    assert restored.status_code == 200, restored.text
    back = await _server_state(owner, room)
    assert _check(back, node_resolver).files == {"id-1": "src/a.py", "id-2": "b.py"}
    assert back["files"]["id-1"] == "one\n"


async def test_a_file_created_in_a_folder_being_renamed_stays_under_the_old_name(
    peers, owner, room, node_resolver
):
    await _seed(owner, room, lambda doc: _files(doc, id_1=("src/a.py", "a\n")))
    state = await _concurrently(
        peers,
        owner,
        room,
        ("move_folder", {"from": "src", "to": "lib"}),
        ("create", {"id": "id-n", "path": "src/new.py", "text": "new\n"}),
    )
    tree = _check(state, node_resolver)
    assert tree.files == {"id-1": "lib/a.py", "id-n": "src/new.py"}


async def test_an_old_schema_room_keeps_its_files_and_takes_a_rename_with_an_edit(
    peers, owner, room, node_resolver
):
    def legacy(doc: Doc[Any]) -> None:
        doc.get("files", type=Map)["main.py"] = Text("print(1)\n")
        doc.get("files", type=Map)["util.py"] = Text("X = 1\n")

    await _seed(owner, room, legacy)
    state = await _concurrently(
        peers,
        owner,
        room,
        ("rename", {"id": "main.py", "path": "src/main.py"}),
        ("edit", {"id": "main.py", "text": "print(2)\n"}),
    )
    tree = _check(state, node_resolver)
    assert tree.files == {"main.py": "src/main.py", "util.py": "util.py"}
    assert state["files"]["main.py"] == "print(1)\nprint(2)\n"


async def test_an_old_style_stock_client_file_shows_up_as_that_file(
    peers, owner, room, node_resolver
):
    await _seed(owner, room, lambda doc: _files(doc, id_1=("main.py", "new style\n")))
    state = await _concurrently(
        peers,
        owner,
        room,
        ("legacy", {"name": "main.py", "text": "old style\n"}),
        ("legacy", {"name": "other.py", "text": "other\n"}),
    )
    tree = _check(state, node_resolver)
    assert tree.files == {"id-1": "main.py", "main.py": "main (2).py", "other.py": "other.py"}
    assert (
        read_tree(
            doc_of(
                base64.b64decode(
                    (await owner.call("GET", f"/api/rooms/{room}/snapshot")).json()["snapshot_b64"]
                )
            )
        )
        == tree
    )
