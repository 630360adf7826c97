"""The uvicorn server, configured one way for the CLI and the tests alike."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from pairpilot.settings import Settings


def make_server(app: FastAPI, settings: Settings, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the app: websockets-sansio, no permessage-deflate, size-limited."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="websockets-sansio",
        # DESIGN.md §5: deflate makes stock Node clients inflate every tiny frame; p99 suffers.
        ws_per_message_deflate=False,
        ws_max_size=settings.max_message_bytes,
        log_config=None,
        lifespan="on",
    )
    return uvicorn.Server(config)
