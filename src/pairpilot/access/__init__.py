"""Who may connect to a room, and with which rights."""

from pairpilot.access.authorizer import AllowEveryone, Authorizer, Grant

__all__ = ["AllowEveryone", "Authorizer", "Grant"]
