"""pycrdt-websocket, the Python y-websocket peer, under uvicorn on 127.0.0.1:<port>.

Usage: python peers/pycrdt_server.py <port> [data_dir]. Served the way PairPilot serves
(uvicorn, websockets-sansio, permessage-deflate off, 16 MiB messages). With BENCH_STORE=memory a
room's state is stored when its last client leaves (pycrdt-websocket's auto-clean unloads it)
and applied when it is opened again, so that a later join is a cold load from stored bytes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import uvicorn
from pycrdt import Doc
from pycrdt.websocket import ASGIServer, WebsocketServer, YRoom
from pycrdt.websocket.websocket_server import exception_logger

STORE = os.environ.get("BENCH_STORE") == "memory"


class BenchWebsocketServer(WebsocketServer):
    """pycrdt-websocket's server, plus the in-memory store used by the cold-load scenario."""

    def __init__(self) -> None:
        # exception_logger: a client that leaves mid-send is logged, not fatal to the server
        # (the way pycrdt-websocket's own deployments, e.g. Jupyter's, configure it).
        super().__init__(
            rooms_ready=True, auto_clean_rooms=True, exception_handler=exception_logger
        )
        self.stored: dict[str, bytes] = {}

    async def get_room(self, name: str) -> YRoom:
        if STORE and name not in self.rooms and name in self.stored:
            doc: Doc = Doc()
            doc.apply_update(self.stored[name])
            self.rooms[name] = YRoom(ready=True, ydoc=doc, log=self.log)
        return await super().get_room(name)

    async def delete_room(self, *, name: str | None = None, room: YRoom | None = None) -> None:
        if STORE:
            key = name if name is not None else self.get_room_name(room)  # type: ignore[arg-type]
            self.stored[key] = self.rooms[key].ydoc.get_update()
        await super().delete_room(name=name, room=room)


def app_for(websocket_server: WebsocketServer) -> Any:
    ws_app = ASGIServer(websocket_server)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"okay"})
            return
        await ws_app(scope, receive, send)

    return app


async def main(port: int) -> None:
    websocket_server = BenchWebsocketServer()
    config = uvicorn.Config(
        app_for(websocket_server),
        host="127.0.0.1",
        port=port,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_max_size=16 * 1024 * 1024,
        log_level="warning",
        lifespan="off",
    )
    async with websocket_server:
        await uvicorn.Server(config).serve()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
