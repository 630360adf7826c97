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
