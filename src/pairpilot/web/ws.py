"""The collaboration WebSocket, and the mapping of domain errors to close codes."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import TYPE_CHECKING

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from pairpilot.access.authorizer import check_room_id
from pairpilot.errors import (
    ForbiddenError,
    InvalidRoomIdError,
    NotFoundError,
    PairPilotError,
    ProtocolError,
    RateLimitedError,
    SlowConsumerError,
    StorageError,
    UnauthenticatedError,
)
from pairpilot.observability.metrics import Metrics
from pairpilot.observability.sentry import report
from pairpilot.sync.protocol import decode_message
from pairpilot.sync.room import Room

if TYPE_CHECKING:
    from pairpilot.web.services import Services
from pairpilot.sync.session import Session, TokenBucket, next_session_id

PREFIX = "/collab/"
log = structlog.get_logger(__name__)

CLOSE_CODES: dict[type[PairPilotError], int] = {
    InvalidRoomIdError: 4400,
    ProtocolError: 4400,
    UnauthenticatedError: 4401,
    ForbiddenError: 4403,
    NotFoundError: 4403,
    RateLimitedError: 4429,
    SlowConsumerError: 1013,
    StorageError: 1011,
}
CLOSE_TIMEOUT_S = 1.0


def close_code(error: PairPilotError) -> int:
    """The WebSocket close code for a domain error (1011 for anything unexpected)."""
    for kind in type(error).__mro__:
        if kind in CLOSE_CODES:
            return CLOSE_CODES[kind]
    return 1011


class CollabMiddleware:
    """Routes ``/collab/{roomId}`` WebSockets straight to the collaboration handler.

    Outermost, so a long-lived socket holds none of FastAPI's per-request machinery (its
    dependency exit stacks and routing frames cost about 10 KB per idle connection).
    """

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a collaboration socket, or pass anything else on."""
        if scope["type"] == "websocket" and scope["path"].startswith(PREFIX):
            room_id = scope["path"][len(PREFIX) :]
            await collab(WebSocket(scope, receive, send), self.services, room_id)
        else:
            await self.app(scope, receive, send)


async def collab(websocket: WebSocket, services: Services, room_id: str) -> None:
    """One y-websocket connection: authorise, join the room, relay until either side stops."""
    settings = services.settings
    connection_id = next_session_id()
    # Accept first: only an accepted socket can tell a browser why it is being closed.
    await websocket.accept()
    try:
        check_room_id(room_id)
        grant = await services.authorizer.authorize(room_id, websocket.query_params.get("token"))
        room = await services.registry.acquire(room_id)
    except PairPilotError as exc:
        log.info(
            "connection refused",
            reason=str(exc),
            code=close_code(exc),
            room_id=room_id[:80],
            connection_id=connection_id,
        )
        await _close(websocket, exc, services.metrics)
        return
    session = Session(
        websocket,
        room_id=room_id,
        grant=grant,
        queue_size=settings.send_queue_messages,
        rate=TokenBucket(settings.messages_per_second, settings.message_burst),
        metrics=services.metrics,
        session_id=connection_id,
    )
    task = asyncio.current_task()
    assert task is not None  # noqa: S101 - always inside the ASGI task
    session.bind_reader(task)
    room.join(session)
    error: BaseException | None = None
    try:
        await _read(websocket, room, session, services.metrics)
    except asyncio.CancelledError:
        if session.stop_reason is None:
            raise  # the server is shutting down
        task.uncancel()  # the session stopped itself (slow reader, failed send)
    except Exception as exc:  # noqa: BLE001 - every error closes this socket, and only it
        error = exc
    finally:
        session.close()
        room.leave(session)
        services.registry.release(room)
    await _finish(websocket, session, error, services.metrics)


async def _read(websocket: WebSocket, room: Room, session: Session, metrics: Metrics) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        frame = message.get("bytes")
        if frame is None:
            raise ProtocolError("text frames are not part of the y-websocket protocol")
        metrics.count_in(frame)
        session.check_rate()
        room.receive(session, decode_message(frame))
        if session.stop_reason is not None:  # it overflowed while answering this very frame
            return


async def _finish(
    websocket: WebSocket, session: Session, error: BaseException | None, metrics: Metrics
) -> None:
    where = {"room_id": session.room_id, "connection_id": session.id, "user_id": session.user_id}
    if session.overflowed:
        log.warning("slow consumer dropped", code=1013, **where)
        await _close(websocket, SlowConsumerError("send queue overflowed"), metrics)
        return
    if error is None:
        return
    if isinstance(error, PairPilotError):
        log.warning("connection closed", reason=str(error), code=close_code(error), **where)
        await _close(websocket, error, metrics)
    else:
        log.error("connection failed", exc_info=error, **where)
        report(error, room_id=session.room_id, user_id=session.user_id)
        await _close(websocket, PairPilotError("internal error"), metrics)


async def _close(websocket: WebSocket, error: PairPilotError, metrics: Metrics) -> None:
    metrics.closes.labels(str(close_code(error))).inc()
    # A stuck peer must not hold the handler: the close frame gets a bounded wait.
    with suppress(RuntimeError, OSError, TimeoutError):
        await asyncio.wait_for(
            websocket.close(close_code(error), str(error)[:120]), CLOSE_TIMEOUT_S
        )
