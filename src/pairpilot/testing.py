"""Helpers for tests, PairPilot's own and its users': a live server, a stock pycrdt client."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pycrdt import Doc, Provider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pairpilot.settings import Settings
from pairpilot.web.app import Services, create_app
from pairpilot.web.server import make_server


def quick_settings(data_dir: Path, **overrides: Any) -> Settings:  # noqa: ANN401
    """Settings for a test: a private data dir, quick flushes, unloads and retries."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "flush_ms": 50,
        "idle_unload_ms": 200,
        "flush_retry_max_ms": 200,
    }
    values.update(overrides)
    return Settings(**values)


async def sign_in(http_url: str, name: str = "tester") -> str:
    """A fresh anonymous user's bearer token."""
    async with httpx.AsyncClient(base_url=http_url) as client:
        response = await client.post("/api/auth/anonymous", json={"name": name})
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


async def join(http_url: str, room_id: str, token: str) -> dict[str, Any]:
    """Join (or create) a room; the API's answer."""
    async with httpx.AsyncClient(base_url=http_url) as client:
        response = await client.post(
            f"/api/rooms/{room_id}/join", headers={"Authorization": f"Bearer {token}"}
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer


class _Addresses:
    """URLs of a server on 127.0.0.1, and a way in for a new member."""

    port: int

    @property
    def http_url(self) -> str:
        """Base URL for HTTP calls."""
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, room_id: str, token: str | None = None) -> str:
        """The collaboration WebSocket URL of a room."""
        query = f"?token={token}" if token else ""
        return f"ws://127.0.0.1:{self.port}/collab/{room_id}{query}"

    async def member_url(self, room_id: str, name: str = "tester") -> str:
        """Sign a new user in, join the room, and return its WebSocket URL with the token."""
        token = await sign_in(self.http_url, name)
        await join(self.http_url, room_id, token)
        return self.ws_url(room_id, token)


@dataclass(frozen=True)
class LiveServer(_Addresses):
    """A server listening on 127.0.0.1 in this event loop."""

    port: int
    services: Services


@asynccontextmanager
async def serving(server: uvicorn.Server) -> AsyncIterator[int]:
    """Run a uvicorn server in this event loop; yield its port once it listens."""
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped during start-up")
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """Run the real app under uvicorn on a free port for the duration of the block."""
    app = create_app(settings)
    async with serving(make_server(app, "127.0.0.1", 0)) as port:
        yield LiveServer(port, app.state.services)


class WebsocketChannel:
    """pycrdt's Channel over a `websockets` client connection."""

    def __init__(self, websocket: ClientConnection, path: str) -> None:
        self._websocket = websocket
        self._path = path

    @property
    def path(self) -> str:
        """The room path."""
        return self._path

    def __aiter__(self) -> WebsocketChannel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ConnectionClosed as exc:
            raise StopAsyncIteration from exc

    async def send(self, message: bytes) -> None:
        """Send one frame."""
        await self._websocket.send(message)

    async def recv(self) -> bytes:
        """Receive the next binary frame."""
        while True:
            message = await self._websocket.recv()
            if isinstance(message, bytes):
                return message


@asynccontextmanager
async def synced_client(url: str, doc: Doc[Any] | None = None) -> AsyncIterator[Doc[Any]]:
    """A pycrdt Provider connected to ``url``; yields its Doc once the first sync is done."""
    async with synced_socket(url, doc) as (synced, _websocket):
        yield synced


@asynccontextmanager
async def synced_socket(
    url: str, doc: Doc[Any] | None = None
) -> AsyncIterator[tuple[Doc[Any], ClientConnection]]:
    """``synced_client``, with its WebSocket (to find which process holds it, say)."""
    doc = doc if doc is not None else Doc()
    async with connect(url, compression=None, max_size=None) as websocket:
        channel = WebsocketChannel(websocket, url)
        async with Provider(doc, channel) as provider:
            await asyncio.wait_for(provider.synced.wait(), 10)
            yield doc, websocket


async def wait_until(
    check: Callable[[], bool],
    timeout: float = 10.0,  # noqa: ASYNC109 - a polling helper owns its deadline
    what: str = "",
) -> None:
    """Poll ``check`` until it holds; raise TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess(_Addresses):
    """`pairpilot serve` as a real child process, for restart and crash tests.

    With ``workers`` above 1 it is `serve --workers N` (REDIS_URL needed): the process is the
    supervisor, and ``workers_by_index`` finds its workers.
    """

    def __init__(self, env: Mapping[str, str], port: int | None = None, workers: int = 1) -> None:
        self.port = port or free_port()
        self._env = {**os.environ, **env}
        self._process: subprocess.Popen[bytes] | None = None
        self._workers = workers

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until /healthz answers."""
        command = [sys.executable, "-m", "pairpilot", "serve", "--port", str(self.port)]
        if self._workers > 1:
            command += ["--workers", str(self._workers)]
        self._process = subprocess.Popen(command, env=self._env)  # noqa: S603
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"server exited with {self._process.returncode}")
            try:
                if httpx.get(f"{self.http_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()  # not left running behind the failed test
        raise TimeoutError("server did not become healthy")

    @property
    def pid(self) -> int:
        """The server's process id (it must be running)."""
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process.pid

    def workers_by_index(self) -> dict[int, int]:
        """`serve --workers N`: each running worker's pid, by the index the supervisor gave it."""
        found = subprocess.run(  # noqa: S603 - a fixed command
            ["pgrep", "-P", str(self.pid)],  # noqa: S607 - procps, installed by setup.sh
            capture_output=True,
            text=True,
            check=False,
        )
        workers: dict[int, int] = {}
        for pid in found.stdout.split():
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if b"--worker-index" in args:
                workers[int(args[args.index(b"--worker-index") + 1])] = int(pid)
        return workers

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(10)
            self._process = None

    def stop(self) -> None:
        """SIGTERM and wait: a graceful shutdown."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(30)
            self._process = None


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started (its merge worker) from any of its threads (Linux).

    ``/proc/<pid>/task/<tid>/children`` lists a thread's own children: the merge worker is
    started from a thread (storage/merging.py), so the main thread's list misses it.
    """
    pids: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids += [int(child) for child in children.read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return pids


def socket_holders(port: int, client_port: int) -> set[int]:
    """The pids holding the server's end (on ``port``) of the TCP connection from ``client_port``.

    Read with ``ss`` (iproute2, installed by setup.sh): which worker serves a socket.
    """
    found = subprocess.run(  # noqa: S603 - a fixed command
        [
            *("ss", "-Htnp", "state", "established"),
            f"( sport = :{port} and dport = :{client_port} )",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return {int(pid) for pid in re.findall(r"pid=(\d+),", found.stdout)}


@dataclass
class Envelope:
    """One envelope a fake Sentry ingest received."""

    project: str
    raw: bytes

    @property
    def header(self) -> dict[str, Any]:
        """The envelope header (first line)."""
        header: dict[str, Any] = json.loads(self.raw.split(b"\n", 1)[0])
        return header

    @property
    def events(self) -> list[dict[str, Any]]:
        """The JSON payloads of its ``event`` items."""
        lines = self.raw.split(b"\n")[1:]
        found: list[dict[str, Any]] = []
        for item_header, payload in zip(lines[::2], lines[1::2], strict=False):
            if item_header and json.loads(item_header).get("type") == "event":
                found.append(json.loads(payload))
        return found


@dataclass
class SentryIngest:
    """A local HTTP server standing in for Sentry's ingest; it records every envelope."""

    port: int
    envelopes: list[Envelope]

    def dsn(self, project: str = "42", key: str = "publickey") -> str:
        """A DSN whose envelopes land here."""
        return f"http://{key}@127.0.0.1:{self.port}/{project}"

    def events(self) -> list[dict[str, Any]]:
        """Every event received so far."""
        return [event for envelope in self.envelopes for event in envelope.events]


@asynccontextmanager
async def sentry_ingest() -> AsyncIterator[SentryIngest]:
    """Run a fake Sentry ingest on a free port for the duration of the block."""
    received: list[Envelope] = []

    async def envelope(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        received.append(Envelope(request.path_params["project"], body))
        return JSONResponse({"id": "0" * 32})

    app = Starlette(routes=[Route("/api/{project}/envelope/", envelope, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    async with serving(uvicorn.Server(config)) as port:
        yield SentryIngest(port, received)
