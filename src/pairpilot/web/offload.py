"""Big request bodies parsed off the event loop, so one upload never stalls every room.

A JSON body of a few megabytes (a snapshot POST is up to ~21 MB of base64, a files upload up to
8 MB of text) takes tens of milliseconds to parse; on the loop that is a pause in every room's
fan-out. ``OffLoopJSONRoute`` is FastAPI's documented custom route class: the same parsing, the
same validation errors and the same OpenAPI schema, with ``json.loads`` of a large body run in
a worker thread. ``b64decode_off_loop`` decodes in pieces, so the thread lets go of the GIL
between them and the loop keeps its turn.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

# Smaller bodies parse in well under a millisecond: a thread's hand-off would cost more.
THREAD_FROM_BYTES = 64 * 1024
# Base64 characters decoded at a time (a multiple of 4): about 2 ms of a core each, so the
# thread holds the GIL no longer than the interpreter's switch interval allows between them.
B64_PIECE = 1024 * 1024


class _OffLoopJSONRequest(Request):
    async def json(self) -> Any:  # noqa: ANN401 (Starlette's signature: JSON is anything)
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) < THREAD_FROM_BYTES:
                self._json = json.loads(body)
            else:
                self._json = await run_in_threadpool(json.loads, body)
        return self._json


class OffLoopJSONRoute(APIRoute):
    """An APIRoute whose JSON body, when large, is parsed in a worker thread."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, given a request that parses its JSON off the loop."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(_OffLoopJSONRequest(request.scope, request.receive))

        return handle


def b64decode_pieces(encoded: str) -> bytes:
    """``base64.b64decode(encoded, validate=True)``, decoded a piece at a time.

    Raises binascii.Error as that call does. Padding may only end the whole text, so a piece
    that ends in ``=`` before the last one is refused here, as the single call would.
    """
    if "=" in encoded[: max(0, len(encoded) - 2)]:
        raise binascii.Error("padding before the end")
    return b"".join(
        base64.b64decode(encoded[start : start + B64_PIECE], validate=True)
        for start in range(0, len(encoded), B64_PIECE)
    )


__all__ = ["B64_PIECE", "OffLoopJSONRoute", "b64decode_pieces"]
