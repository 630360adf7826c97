"""`pairpilot serve --workers N`: processes on one port, sharing rooms through Redis."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pycrdt import Text
from websockets.asyncio.client import connect

from pairpilot.testing import free_port, join, sign_in, synced_client, wait_until

pytestmark = pytest.mark.anyio


def _sockets(pid: int, port: int) -> int:
    """Established TCP connections to the server's ``port`` held by ``pid``."""
    found = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    )
    return sum(f"pid={pid}," in line for line in found.stdout.splitlines())


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env)


def _running(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in found.stdout.split()]


async def test_two_workers_share_one_port_and_their_clients_converge(
    tmp_path: Path, redis_url, room
):
    port = free_port()
    # Room affinity off: the kernel's spread stands, so the room is open on both workers.
    env = {
        **os.environ,
        "PAIRPILOT_DATA_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        "PAIRPILOT_WORKER_AFFINITY": "0",
    }
    command = [sys.executable, "-m", "pairpilot", "serve", "--port", str(port), "--workers", "2"]
    supervisor = _start(command, env)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until(lambda: len(_children(supervisor.pid)) == 2, timeout=30)
        async with httpx.AsyncClient(base_url=base, timeout=1) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        tokens = [await sign_in(base, f"p{i}") for i in range(6)]
        for token in tokens:
            await join(base, room, token)
        urls = [f"ws://127.0.0.1:{port}/collab/{room}?token={token}" for token in tokens]
        async with (
            synced_client(urls[0]) as d0,
            synced_client(urls[1]) as d1,
            synced_client(urls[2]) as d2,
            synced_client(urls[3]) as d3,
            synced_client(urls[4]) as d4,
            synced_client(urls[5]) as d5,
        ):
            docs = [d0, d1, d2, d3, d4, d5]
            # The kernel spreads the sockets: with 16 of them, both workers hold some (but for
            # a chance of 1 in 32,768).
            extra = [await connect(urls[0], compression=None) for _ in range(10)]
            held = [_sockets(pid, port) for pid in _children(supervisor.pid)]
            assert all(count > 0 for count in held), held
            for websocket in extra:
                await websocket.close()
            for index, doc in enumerate(docs):
                text = doc.get("code", type=Text)
                text.insert(len(text), f"[{index}]")
            await wait_until(
                lambda: (
                    len({str(doc.get("code", type=Text)) for doc in docs}) == 1
                    and len(str(d0.get("code", type=Text))) == 18
                ),
                timeout=20,
                what="six clients over two workers to converge",
            )
        workers = _children(supervisor.pid)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(40) == 0
        assert not [pid for pid in workers if _running(pid)], "workers outlived the supervisor"
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(10)


def test_more_than_one_worker_without_redis_is_refused(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {
        "PAIRPILOT_DATA_DIR": str(tmp_path)
    }
    result = subprocess.run(
        [sys.executable, "-m", "pairpilot", "serve", "--workers", "2", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--workers above 1 needs REDIS_URL" in result.stderr
