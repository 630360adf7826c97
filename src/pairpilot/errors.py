"""The whole PairPilot exception tree, under one base class."""


class PairPilotError(Exception):
    """Base class of every error PairPilot raises on purpose."""


class ConfigurationError(PairPilotError):
    """The configuration is invalid; the server refuses to start."""


class ProtocolError(PairPilotError):
    """A peer sent bytes that are not a valid y-websocket message."""


class InvalidRoomIdError(PairPilotError):
    """A room id does not match ``^[A-Za-z0-9_-]{1,64}$``."""


class AccessDeniedError(PairPilotError):
    """The caller may not do this (bad identity or not allowed)."""


class UnauthenticatedError(AccessDeniedError):
    """No valid identity was presented."""


class ForbiddenError(AccessDeniedError):
    """The identity is valid but lacks the right to this room or action."""


class NotFoundError(PairPilotError):
    """No such room or member for this caller (non-members are told this too)."""


class ConflictError(PairPilotError):
    """The change contradicts the room's current state."""


class BadRequestError(PairPilotError):
    """The request's content is invalid."""


class PayloadTooLargeError(BadRequestError):
    """The request's content is over its size limit."""


class RateLimitedError(PairPilotError):
    """A connection sent more messages than its limit allows."""


class SlowConsumerError(PairPilotError):
    """A connection did not read fast enough and its send queue overflowed."""


class StorageError(PairPilotError):
    """The storage backend failed; the caller may retry."""


class RefusedError(PairPilotError):
    """A guardrail refused the request before any work was done (see pairpilot.guardrails).

    ``reason`` names the guardrail; the web layer and the socket map it to a status or a close
    code through ``guardrails.REFUSALS``. ``retry_after_s`` is set for rates.
    """

    def __init__(self, reason: str, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


class RoomDeletedError(PairPilotError):
    """The room was deleted by an owner; its id is never used again."""


class RoomMovedError(RoomDeletedError):
    """An owner moved the room to ``new_room_id``; its old id is never used again.

    Only members of the room it went to are told (others get NotFoundError).
    """

    def __init__(self, room_id: str, new_room_id: str) -> None:
        super().__init__(f"room {room_id} moved to {new_room_id}")
        self.new_room_id = new_room_id


class InviteError(ForbiddenError):
    """An invite link that grants nothing (see pairpilot.access.invites)."""


class InvalidInviteError(InviteError):
    """Not an invite of this server for this room: forged, malformed or another room's."""


class ExpiredInviteError(InviteError):
    """The invite's time ran out."""


class RevokedInviteError(InviteError):
    """An owner revoked the invite (or its room no longer has it)."""
