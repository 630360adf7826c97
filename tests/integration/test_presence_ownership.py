"""Presence is bound to its socket: a socket sets or removes only the client ids it introduced."""

import asyncio
import json

import httpx
import pytest
from pycrdt import Awareness, Doc, Encoder
from tests.support import RecordingSocket
from websockets.asyncio.client import connect

from pairpilot.access.authorizer import Grant
from pairpilot.bus import LocalBus
from pairpilot.observability.metrics import Metrics
from pairpilot.sync import protocol
from pairpilot.sync.protocol import AwarenessUpdate, decode_message
from pairpilot.sync.room import MAX_AWARENESS_IDS, Room
from pairpilot.sync.session import Session, TokenBucket
from pairpilot.testing import join, live_server, quick_settings, sign_in, wait_until

ADA, BOB = 1001, 2002  # the client ids (doc.clientID) of Ada's and Bob's pages


class ClosingSocket(RecordingSocket):
    """A recording socket that remembers whether the room closed it."""

    def __init__(self) -> None:
        super().__init__()
        self.closed: int | None = None

    def close(self, code: int, reason: str) -> None:
        self.closed = code


def _room() -> tuple[Room, Metrics]:
    metrics = Metrics()
    room = Room(
        "r", Doc(), bus=LocalBus(), on_update=lambda *_: None, max_awareness_bytes=4096,
        metrics=metrics,
    )  # fmt: skip
    return room, metrics


def _join(room: Room, user: str, *, can_write: bool = True) -> tuple[Session, ClosingSocket]:
    socket = ClosingSocket()
    grant = Grant(user_id=user, can_write=can_write)
    session = Session(socket, room_id=room.id, grant=grant, rate=TokenBucket(1e9, 1e9))
    room.join(session)
    return session, socket


def _presence(*entries: tuple[int, int, dict[str, object] | None]) -> bytes:
    """An awareness frame: ``(client id, clock, state or None for a removal)`` per entry."""
    encoder = Encoder()
    encoder.write_var_uint(len(entries))
    for client, clock, state in entries:
        encoder.write_var_uint(client)
        encoder.write_var_uint(clock)
        encoder.write_var_string(json.dumps(state))
    return protocol.awareness(encoder.to_bytes())


def _send(room: Room, session: Session, frame: bytes) -> None:
    room.receive(session, decode_message(frame))


def _dropped(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "pairpilot_awareness_dropped_total", {"reason": reason}
    )
    return value or 0.0


def test_a_viewer_cannot_rewrite_another_clients_presence():
    room, metrics = _room()
    ada, ada_socket = _join(room, "ada")
    viewer, viewer_socket = _join(room, "eve", can_write=False)
    _send(room, ada, _presence((ADA, 1, {"user": {"name": "Ada", "color": "#30bced"}})))
    writes = len(ada_socket.writes), len(viewer_socket.writes)
    forged = _presence((ADA, 9, {"user": {"name": "Mallory", "color": "red;background:url(x)"}}))
    _send(room, viewer, forged)
    assert room.awareness.states[ADA] == {"user": {"name": "Ada", "color": "#30bced"}}
    assert (len(ada_socket.writes), len(viewer_socket.writes)) == writes  # nothing relayed
    assert _dropped(metrics, "not_owner") == 1
    assert viewer_socket.closed is None  # dropped, not a close


def test_a_viewer_cannot_remove_another_clients_presence():
    room, metrics = _room()
    ada, _ = _join(room, "ada")
    viewer, _ = _join(room, "eve", can_write=False)
    _send(room, ada, _presence((ADA, 1, {"user": {"name": "Ada"}})))
    _send(room, viewer, _presence((ADA, 1, None)))  # a removal at the same clock
    _send(room, viewer, _presence((ADA, 2, None)))  # and at a newer one
    assert room.awareness.states[ADA] == {"user": {"name": "Ada"}}
    assert _dropped(metrics, "not_owner") == 2


def test_a_frame_touching_another_id_is_dropped_whole():
    room, _ = _room()
    ada, _ = _join(room, "ada")
    bob, _ = _join(room, "bob")
    _send(room, ada, _presence((ADA, 1, {"user": {"name": "Ada"}})))
    _send(room, bob, _presence((BOB, 1, {"user": {"name": "Bob"}}), (ADA, 5, None)))
    assert room.awareness.states[ADA] == {"user": {"name": "Ada"}}
    assert BOB not in room.awareness.states  # nothing of the frame was applied


def test_a_clients_own_renewals_and_its_own_removal_pass():
    room, metrics = _room()
    ada, ada_socket = _join(room, "ada")
    _, bob_socket = _join(room, "bob")
    for clock in (1, 2, 3):
        _send(room, ada, _presence((ADA, clock, {"user": {"name": "Ada"}, "cursor": clock})))
    assert room.awareness.states[ADA]["cursor"] == 3
    assert len(bob_socket.writes) == len(ada_socket.writes)  # relayed to both, the sender too
    _send(room, ada, _presence((ADA, 4, None)))
    assert ADA not in room.awareness.states
    _send(room, ada, _presence((ADA, 5, {"user": {"name": "Ada"}})))  # and back
    assert ADA in room.awareness.states
    assert _dropped(metrics, "not_owner") == 0


def test_an_echo_of_another_clients_presence_is_not_counted_as_a_drop():
    room, metrics = _room()
    ada, _ = _join(room, "ada")
    bob, _ = _join(room, "bob")
    frame = _presence((ADA, 1, {"user": {"name": "Ada"}}))
    _send(room, ada, frame)
    _send(room, bob, frame)  # a stock client re-sends what it received
    assert _dropped(metrics, "not_owner") == 0


def test_an_id_of_another_process_replica_cannot_be_taken_over():
    room, metrics = _room()
    viewer, _ = _join(room, "eve", can_write=False)
    room.apply_remote(_presence((ADA, 1, {"user": {"name": "Ada"}})), b"process-a")
    _send(room, viewer, _presence((ADA, 2, {"user": {"name": "Mallory"}})))
    assert room.awareness.states[ADA] == {"user": {"name": "Ada"}}
    assert _dropped(metrics, "not_owner") == 1
    room.apply_remote(_presence((ADA, 2, None)), b"process-a")  # that socket left
    _send(room, viewer, _presence((ADA, 3, {"user": {"name": "Eve"}})))  # a free id again
    assert room.awareness.states[ADA] == {"user": {"name": "Eve"}}


def test_a_leaving_socket_frees_its_ids_and_the_same_user_may_take_them_over():
    room, _ = _room()
    old, _ = _join(room, "ada")
    _send(room, old, _presence((ADA, 1, {"user": {"name": "Ada"}})))
    new, _ = _join(room, "ada")  # the page reconnected before its old socket was seen to close
    _send(room, new, _presence((ADA, 2, {"user": {"name": "Ada"}, "cursor": 1})))
    assert room.awareness.states[ADA]["cursor"] == 1
    room.leave(old)  # must not take the new socket's presence with it
    assert ADA in room.awareness.states
    room.leave(new)
    assert ADA not in room.awareness.states
    someone, _ = _join(room, "bob")
    _send(room, someone, _presence((ADA, 3, {"user": {"name": "Bob"}})))
    assert room.awareness.states[ADA] == {"user": {"name": "Bob"}}


def test_a_socket_introduces_a_bounded_number_of_ids():
    room, metrics = _room()
    viewer, _ = _join(room, "eve", can_write=False)
    fakes = [(client, 1, {"user": {"name": f"fake {client}"}}) for client in range(1, 20)]
    _send(room, viewer, _presence(*fakes))
    assert not room.awareness.states
    assert _dropped(metrics, "too_many_ids") == 1
    for client in range(1, MAX_AWARENESS_IDS + 1):
        _send(room, viewer, _presence((client, 1, {"user": {"name": "Eve"}})))
    _send(room, viewer, _presence((99, 1, {"user": {"name": "Eve"}})))
    assert len(room.awareness.states) == MAX_AWARENESS_IDS
    assert _dropped(metrics, "too_many_ids") == 2


# Over real sockets: what the other pages see, and what /metrics says.


@pytest.mark.anyio
async def test_over_sockets_a_viewers_forged_presence_never_reaches_the_other_pages(tmp_path, room):
    async with live_server(quick_settings(tmp_path)) as server:
        owner = await sign_in(server.http_url, "Ada")
        await join(server.http_url, room, owner)
        viewer = await sign_in(server.http_url, "Eve")
        viewer_id = (await join(server.http_url, room, viewer))["member"]["user_id"]
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            answer = await client.put(
                f"/api/rooms/{room}/members/{viewer_id}",
                json={"role": "viewer"},
                headers={"Authorization": f"Bearer {owner}"},
            )
            assert answer.status_code == 200
        async with (
            connect(server.ws_url(room, owner), compression=None) as ada,
            connect(server.ws_url(room, viewer), compression=None) as eve,
        ):
            await ada.send(_presence((ADA, 1, {"user": {"name": "Ada"}})))
            live = server.services.registry.rooms

            def present(client: int) -> bool:
                return room in live and client in live[room].awareness.states

            await wait_until(lambda: present(ADA))
            await eve.send(_presence((ADA, 7, {"user": {"name": "Mallory"}})))
            await eve.send(_presence((ADA, 8, None)))
            await eve.send(_presence((ADA + 1, 1, {"user": {"name": "Eve"}})))  # its own: passes
            await wait_until(lambda: present(ADA + 1))
            # A page opening now is sent every presence the room holds.
            async with connect(server.ws_url(room, owner), compression=None) as late:
                async with asyncio.timeout(5):
                    while True:
                        frame = await late.recv()
                        if isinstance(frame, bytes) and frame[:1] == b"\x01":
                            break
            greeting = decode_message(frame)
            assert isinstance(greeting, AwarenessUpdate)
            seen = Awareness(Doc())
            seen.apply_awareness_update(greeting.update, "test")
            assert seen.states[ADA] == {"user": {"name": "Ada"}}
            async with httpx.AsyncClient(base_url=server.http_url) as client:
                metrics = (await client.get("/metrics")).text
            assert 'pairpilot_awareness_dropped_total{reason="not_owner"} 2.0' in metrics
            assert eve.close_code is None  # dropped, not closed
