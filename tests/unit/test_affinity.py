"""Room affinity's hand-off between two workers of one process's making: real sockets, no server."""

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pairpilot.observability.metrics import Metrics
from pairpilot.web.affinity import RoomAffinity, WorkerPlace, home_of, socket_path

pytestmark = pytest.mark.anyio
REQUEST = b"GET /collab/r HTTP/1.1\r\nHost: x\r\n\r\n"


def _room_homed_on(index: int) -> str:
    return next(f"r{i}" for i in range(100) if home_of(f"r{i}", 2) == index)


def test_a_rooms_home_is_the_same_in_every_process():
    here = [home_of(f"room-{i}", 4) for i in range(50)]
    code = (
        "from pairpilot.web.affinity import home_of;"
        " print([home_of(f'room-{i}', 4) for i in range(50)])"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert str(here) == there.strip()
    assert set(here) == {0, 1, 2, 3}


async def _tcp_transport() -> tuple[asyncio.BaseTransport, socket.socket]:
    """A server-side TCP transport and the client's socket."""
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    accepted.settimeout(0.0)
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, accepted)
    return transport, client


def _passed(metrics: Metrics, direction: str) -> float:
    labels = {"direction": direction}
    return metrics.registry.get_sample_value("pairpilot_room_handoffs_total", labels) or 0.0


def _fallbacks(metrics: Metrics, reason: str) -> float:
    labels = {"reason": reason}
    return (
        metrics.registry.get_sample_value("pairpilot_room_handoff_fallbacks_total", labels) or 0.0
    )


async def test_a_socket_is_passed_with_its_request_to_the_rooms_home(tmp_path: Path):
    sender_metrics, home_metrics = Metrics(), Metrics()
    sender = RoomAffinity(WorkerPlace(1, 2, tmp_path), sender_metrics)
    home = RoomAffinity(WorkerPlace(0, 2, tmp_path), home_metrics)
    adopted: asyncio.Queue[tuple[socket.socket, bytes]] = asyncio.Queue()
    home.listen(
        asyncio.get_running_loop(), lambda sock, request: adopted.put_nowait((sock, request))
    )
    transport, client = await _tcp_transport()
    try:
        assert sender.pass_on(transport, REQUEST, _room_homed_on(0))
        transport.close()  # as the receiving worker does: no byte, no FIN
        sock, request = await asyncio.wait_for(adopted.get(), 5)
        assert request == REQUEST
        client.sendall(b"sent after the hand-off")
        sock.settimeout(5)
        assert sock.recv(100) == b"sent after the hand-off"
        sock.sendall(b"answered by the home")
        client.settimeout(5)
        assert client.recv(100) == b"answered by the home"
        sock.close()
        assert _passed(sender_metrics, "passed") == 1
        assert _passed(home_metrics, "received") == 1
    finally:
        client.close()
        home.close()
        sender.close()


async def test_a_room_homed_here_is_not_passed(tmp_path: Path):
    affinity = RoomAffinity(WorkerPlace(0, 2, tmp_path), Metrics())
    transport, client = await _tcp_transport()
    try:
        assert not affinity.pass_on(transport, REQUEST, _room_homed_on(0))
    finally:
        transport.close()
        client.close()


async def test_a_home_whose_socket_is_gone_leaves_the_socket_here(tmp_path: Path):
    metrics = Metrics()
    sender = RoomAffinity(WorkerPlace(1, 2, tmp_path), metrics)
    transport, client = await _tcp_transport()
    try:
        assert not socket_path(tmp_path, 0).exists()
        assert not sender.pass_on(transport, REQUEST, _room_homed_on(0))
        assert _fallbacks(metrics, "home_unreachable") == 1
    finally:
        transport.close()
        client.close()
        sender.close()


async def test_a_home_that_stopped_listening_leaves_the_socket_here(tmp_path: Path):
    metrics = Metrics()
    sender = RoomAffinity(WorkerPlace(1, 2, tmp_path), metrics)
    home = RoomAffinity(WorkerPlace(0, 2, tmp_path), Metrics())
    adopted: asyncio.Queue[socket.socket] = asyncio.Queue()
    home.listen(asyncio.get_running_loop(), lambda sock, _request: adopted.put_nowait(sock))
    first, first_client = await _tcp_transport()
    second, second_client = await _tcp_transport()
    try:
        assert sender.pass_on(first, REQUEST, _room_homed_on(0))  # the channel is made
        (await asyncio.wait_for(adopted.get(), 5)).close()
        home.close()  # its channels close with it: the next send fails, and so does connecting
        assert not sender.pass_on(second, REQUEST, _room_homed_on(0))
        assert _fallbacks(metrics, "home_unreachable") == 1
    finally:
        for transport, client in ((first, first_client), (second, second_client)):
            transport.close()
            client.close()
        sender.close()


async def test_only_plain_tcp_sockets_are_passed(tmp_path: Path):
    metrics = Metrics()
    sender = RoomAffinity(WorkerPlace(1, 2, tmp_path), metrics)
    left, right = socket.socketpair()
    left.settimeout(0.0)
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, left)
    try:
        assert not sender.pass_on(transport, REQUEST, _room_homed_on(0))  # type: ignore[arg-type]
        assert _fallbacks(metrics, "not_plain_tcp") == 1
    finally:
        transport.close()
        right.close()


async def test_a_home_that_does_not_read_is_busy_and_the_socket_stays_here(tmp_path: Path):
    metrics = Metrics()
    sender = RoomAffinity(WorkerPlace(1, 2, tmp_path), metrics)
    stopped = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # a home that never reads
    stopped.bind(str(socket_path(tmp_path, 0)))
    stopped.listen()
    transport, client = await _tcp_transport()
    try:
        passes = 0
        while sender.pass_on(transport, REQUEST, _room_homed_on(0)):
            passes += 1
            assert passes < 100_000, "the channel never filled"
        assert _fallbacks(metrics, "home_busy") == 1
        assert not sender.pass_on(transport, REQUEST, _room_homed_on(0))  # still backed up
        assert _fallbacks(metrics, "home_busy") == 2
    finally:
        transport.close()
        client.close()
        sender.close()
        stopped.close()
