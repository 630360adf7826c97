"""Refuse HTTP bodies over a limit before they are read into memory (413).

Any answer given before the request's body has been read (this middleware's 413, the 413 of an
endpoint with a smaller limit of its own, a 401 to a big upload) is sent at once, but the
response is finished only after the rest of the body has been read and dropped, within
``DRAIN_MAX_BYTES`` and ``DRAIN_TIMEOUT_S``. Why: uvicorn closes the connection as soon as a
``Connection: close`` response is complete, and closing a socket with unread bytes makes the
kernel send a reset, which destroys the response before a client that is still sending (urllib,
Node's fetch: they read only once the body is out) can read it.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Past these, a client that keeps sending is cut (and may then miss the answer).
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_TIMEOUT_S = 5.0


class BodyTooLarge(HTTPException):
    """A streamed body passed the limit.

    An HTTPException, so FastAPI's body parsing re-raises it as it is (it turns any other
    error while reading the body into a 400) and the JSON error handler answers 413.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"body over {max_bytes} bytes")


class _Body:
    """The request's body as the app reads it: counted against the limit, drained if unread."""

    def __init__(self, receive: Receive, max_bytes: int, scope: Scope) -> None:
        self._receive = receive
        self._max_bytes = max_bytes
        headers = dict(scope["headers"])
        self.declared = _length(headers)
        # A client that waits for "100 Continue" has sent nothing; reading would invite it.
        self._waiting = headers.get(b"expect", b"").lower() == b"100-continue"
        self.seen = 0
        self.done = False  # the last body message (or a disconnect) has been received

    async def receive(self) -> Message:
        message = await self._take()
        if self.seen > self._max_bytes:
            raise BodyTooLarge(self._max_bytes)
        return message

    async def drain(self) -> None:
        """Read and drop the rest of the body, as far as the bounds allow."""
        if self._waiting:
            return
        if self.declared is not None and self.declared - self.seen > DRAIN_MAX_BYTES:
            return  # too much to read: the client is cut when the response ends
        bound = self.seen + DRAIN_MAX_BYTES
        with suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                while not self.done and self.seen <= bound:
                    await self._take()

    async def _take(self) -> Message:
        message = await self._receive()
        self._waiting = False
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            self.done = not message.get("more_body", False)
        else:  # http.disconnect: nothing more will come
            self.done = True
        return message


def _length(headers: dict[bytes, bytes]) -> int | None:
    declared = headers.get(b"content-length", b"")
    return int(declared) if declared.isdigit() else None


def _has_body(scope: Scope) -> bool:
    headers = dict(scope["headers"])
    return (_length(headers) or 0) > 0 or b"transfer-encoding" in headers


class BodyLimitMiddleware:
    """Pure ASGI middleware: checks Content-Length, then counts streamed bytes."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 413 once its body passes the limit."""
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        body = _Body(receive, self.max_bytes, scope)
        started = False

        async def finishing_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if not last or body.done:
                await send(message)
                return
            # Answered before the body was read: send the answer, read the rest, then finish.
            await send({**message, "more_body": True})
            await body.drain()
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        if body.declared is not None and body.declared > self.max_bytes:
            await self._refuse(finishing_send)
            return
        try:
            await self.app(scope, body.receive, finishing_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(finishing_send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {"error": "payload_too_large", "message": f"body over {self.max_bytes} bytes"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
