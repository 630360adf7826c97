"""Domain errors to HTTP: one JSON shape, ``{"error": code, "message": text}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from pairpilot.errors import (
    BadRequestError,
    ConflictError,
    ExpiredInviteError,
    ForbiddenError,
    InvalidInviteError,
    InvalidRoomIdError,
    NotFoundError,
    PairPilotError,
    PayloadTooLargeError,
    RefusedError,
    RevokedInviteError,
    RoomDeletedError,
    RoomMovedError,
    StorageError,
    UnauthenticatedError,
)
from pairpilot.guardrails import refusal_of

STATUSES: dict[type[PairPilotError], tuple[int, str]] = {
    UnauthenticatedError: (401, "unauthorized"),
    ForbiddenError: (403, "forbidden"),
    NotFoundError: (404, "not_found"),
    ConflictError: (409, "conflict"),
    PayloadTooLargeError: (413, "payload_too_large"),
    BadRequestError: (400, "bad_request"),
    InvalidRoomIdError: (400, "invalid_room_id"),
    StorageError: (503, "storage_unavailable"),
    RoomDeletedError: (410, "room_deleted"),
    RoomMovedError: (410, "room_moved"),  # the body also says new_room_id
    InvalidInviteError: (403, "invite_invalid"),
    ExpiredInviteError: (403, "invite_expired"),
    RevokedInviteError: (403, "invite_revoked"),
}
HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one error body every endpoint uses."""
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def status_of(error: PairPilotError) -> tuple[int, str]:
    """HTTP status and error code for a domain error (500 for one not in the table)."""
    if isinstance(error, RefusedError):
        refusal = refusal_of(error)
        return refusal.status, refusal.error
    for kind in type(error).__mro__:
        if kind in STATUSES:
            return STATUSES[kind]
    return 500, "internal_error"


def install_error_handlers(app: FastAPI) -> None:
    """Make every error, ours, FastAPI's and Starlette's, answer in the JSON shape."""

    @app.exception_handler(PairPilotError)
    async def _domain(request: Request, exc: PairPilotError) -> JSONResponse:
        status, code = status_of(exc)
        headers = None
        if isinstance(exc, RefusedError):
            client = request.client.host if request.client else None
            request.app.state.services.refusals.count(exc, client, path=request.url.path)
            if exc.retry_after_s is not None:
                headers = {"Retry-After": str(max(1, exc.retry_after_s))}
        if isinstance(exc, RoomMovedError):
            moved = {"error": code, "message": str(exc), "new_room_id": exc.new_room_id}
            return JSONResponse(moved, status_code=status)
        return error_response(status, code, str(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error_response(400, "bad_request", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail))
