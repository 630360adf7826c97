"""A webhook receiver of the tests' own: records every request, answers as the test says.

``answers`` is a list of what to do with the next requests, in order ("ok" once it is empty):
an HTTP status, or "hang" (answer nothing until the receiver stops, so the sender times out).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pairpilot.testing import serving


@dataclass
class Received:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes
    status: int | str

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str) -> dict[str, Any]:
        """The payload, once the package's own verifier accepted the signature (else raises)."""
        payload: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return payload

    def verified_or_none(self, secret: str) -> dict[str, Any] | None:
        """The payload when ``secret`` signed it, else None (another endpoint's)."""
        try:
            return self.verified(secret)
        except WebhookVerificationError:
            return None


@dataclass
class Receiver:
    """Where webhooks land: ``url``, and what came."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    answers: list[int | str] = field(default_factory=list)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[Received]:
        """The requests it answered with a 2xx."""
        return [r for r in self.received if isinstance(r.status, int) and 200 <= r.status < 300]

    def types(self) -> list[str]:
        return [json.loads(r.body)["type"] for r in self.delivered()]


def _app(receiver: Receiver) -> Starlette:
    async def hook(request: Request) -> Response:
        body = await request.body()
        answer = receiver.answers.pop(0) if receiver.answers else 204
        receiver.received.append(Received(dict(request.headers), body, answer))
        if answer == "hang":
            await receiver.stopped.wait()
            return Response(status_code=504)
        return Response(status_code=int(answer))

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@asynccontextmanager
async def webhook_receiver(
    receiver: Receiver | None = None, *, tls: tuple[Path, Path] | None = None
) -> AsyncIterator[Receiver]:
    """Run a receiver (on ``receiver``'s port when it had one: started again) for the block.

    With ``tls`` (a key and its certificate) it speaks https.
    """
    receiver = receiver or Receiver()
    receiver.stopped.clear()
    config = uvicorn.Config(
        _app(receiver),
        host="127.0.0.1",
        port=receiver.port,
        log_config=None,
        lifespan="off",
        timeout_graceful_shutdown=1,
        ssl_keyfile=str(tls[0]) if tls else None,
        ssl_certfile=str(tls[1]) if tls else None,
    )
    async with serving(uvicorn.Server(config)) as port:
        receiver.port = port
        try:
            yield receiver
        finally:
            receiver.stopped.set()
