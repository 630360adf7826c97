"""The uvicorn server, configured one way for the CLI and the tests alike."""

from __future__ import annotations

import asyncio
import socket
from functools import partial
from typing import cast

import structlog
import uvicorn
from fastapi import FastAPI

from pairpilot.web.affinity import RoomAffinity
from pairpilot.web.ws import CollabConnection

log = structlog.get_logger(__name__)

GRACEFUL_SHUTDOWN_S = 10


def make_server(
    app: FastAPI, host: str, port: int, *, affinity: RoomAffinity | None = None
) -> uvicorn.Server:
    """A uvicorn server for the app, whose WebSockets are PairPilot's ``CollabConnection``.

    uvicorn serves HTTP (the API, the client, metrics) through ASGI; a WebSocket upgrade is
    handed to ``CollabConnection``, which speaks y-websocket without ASGI (see ``web.ws``).
    permessage-deflate is never offered (DESIGN.md §5: stock Node clients would inflate every
    tiny frame and p99 suffers). ``X-Forwarded-For`` and ``-Proto`` are read only from the
    proxies listed in PAIRPILOT_FORWARDED_ALLOW_IPS; unset, never (uvicorn's own default would
    trust 127.0.0.1, so anything on the host could pick the address the rate limits count).
    With ``affinity`` (a worker of ``serve --workers N``), a room's sockets are passed to its
    home worker, and this server takes in those the other workers pass on (``web.affinity``).
    """
    services = app.state.services
    collab = partial(CollabConnection, services=services, affinity=affinity)
    proxies = services.settings.forwarded_allow_ips or None
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws=cast("type[asyncio.Protocol]", collab),
        log_config=None,
        lifespan="on",
        proxy_headers=proxies is not None,
        forwarded_allow_ips=proxies,
        # A stop waits this long for open requests and sockets (each socket is closed with 1012
        # and cut after CLOSE_TIMEOUT_S), then cancels what is left and runs the shutdown that
        # flushes every room: a stuck connection never holds a deploy up.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    if affinity is None:
        return uvicorn.Server(config)
    services.metrics.watch_worker(affinity.place.index)
    return WorkerServer(config, affinity)


class WorkerServer(uvicorn.Server):
    """A worker's server: it also serves the connections other workers pass to it."""

    def __init__(self, config: uvicorn.Config, affinity: RoomAffinity) -> None:
        super().__init__(config)
        self._affinity = affinity

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does, then listen for passed connections (none if that fails)."""
        await super().startup(sockets=sockets)
        if self.should_exit:  # it could not bind
            return
        try:
            self._affinity.listen(asyncio.get_running_loop(), self._adopt)
        except OSError as exc:  # e.g. a run directory whose path is too long for a Unix socket
            log.error("room affinity off: this worker takes no passed connections", exc_info=exc)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop taking passed connections first; the others serve theirs themselves."""
        self._affinity.close()
        await super().shutdown(sockets=sockets)

    def _adopt(self, sock: socket.socket, request: bytes) -> None:
        """Serve a connection another worker read ``request`` from, as uvicorn would have."""
        config = self.config
        # The same protocol class and arguments as uvicorn's upgrade, so graceful shutdown
        # counts the connection; it replays ``request`` before reading from the socket.
        protocol = config.ws_protocol_class(  # type: ignore[call-arg, misc]
            config=config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
            replay=request,
        )
        task = asyncio.get_running_loop().create_task(self._serve_passed(protocol, sock))
        tasks = self.server_state.tasks  # uvicorn's shutdown waits for these
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _serve_passed(self, protocol: asyncio.Protocol, sock: socket.socket) -> None:
        sock.settimeout(0.0)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, sock)
        except OSError as exc:  # the peer is already gone, say: its socket only
            sock.close()
            log.warning("a passed connection could not be served", exc_info=exc)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other processes bind too; the kernel spreads connections."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
