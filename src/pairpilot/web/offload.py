"""Big request bodies parsed off the event loop, so one upload never stalls every room.

A JSON body of a few megabytes (a files upload is up to 8 MB of text) takes milliseconds to
parse; on the loop that is a pause in every room's fan-out. ``OffLoopJSONRoute`` is FastAPI's
documented custom route class: the same parsing, the same validation errors and the same
OpenAPI schema, with ``json.loads`` of a large body run in a worker thread. (The snapshot POST,
up to ~21 MB, is parsed in the merge worker instead: ``pairpilot.sync.transfer``.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

# Smaller bodies parse in well under a millisecond: a thread's hand-off would cost more.
THREAD_FROM_BYTES = 64 * 1024


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


__all__ = ["OffLoopJSONRoute"]
