"""The uvicorn server, configured one way for the CLI and the tests alike."""

from __future__ import annotations

import asyncio
import socket
from functools import partial
from typing import cast

import uvicorn
from fastapi import FastAPI

from pairpilot.web.ws import CollabConnection

GRACEFUL_SHUTDOWN_S = 10


def make_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the app, whose WebSockets are PairPilot's ``CollabConnection``.

    uvicorn serves HTTP (the API, the client, metrics) through ASGI; a WebSocket upgrade is
    handed to ``CollabConnection``, which speaks y-websocket without ASGI (see ``web.ws``).
    permessage-deflate is never offered (DESIGN.md §5: stock Node clients would inflate every
    tiny frame and p99 suffers). ``X-Forwarded-For`` and ``-Proto`` are read only from the
    proxies listed in PAIRPILOT_FORWARDED_ALLOW_IPS; unset, never (uvicorn's own default would
    trust 127.0.0.1, so anything on the host could pick the address the rate limits count).
    """
    services = app.state.services
    collab = partial(CollabConnection, services=services)
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
    return uvicorn.Server(config)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other processes bind too; the kernel spreads connections."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
