"""The uvicorn server, configured one way for the CLI and the tests alike."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import cast

import uvicorn
from fastapi import FastAPI

from pairpilot.web.ws import CollabConnection


def make_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the app, whose WebSockets are PairPilot's ``CollabConnection``.

    uvicorn serves HTTP (the API, the client, metrics) through ASGI; a WebSocket upgrade is
    handed to ``CollabConnection``, which speaks y-websocket without ASGI (see ``web.ws``).
    permessage-deflate is never offered (DESIGN.md §5: stock Node clients would inflate every
    tiny frame and p99 suffers).
    """
    collab = partial(CollabConnection, services=app.state.services)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws=cast("type[asyncio.Protocol]", collab),
        log_config=None,
        lifespan="on",
    )
    return uvicorn.Server(config)
