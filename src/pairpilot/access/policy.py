"""The access rules in one place: what each role may do. PostgreSQL's RLS policies mirror them."""

from __future__ import annotations

from enum import StrEnum

from pairpilot.errors import ConflictError, ForbiddenError


class Role(StrEnum):
    """Room roles, strongest first."""

    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"


def can_edit(role: Role) -> bool:
    """Owners and editors change the document; viewers only read it."""
    return role in {Role.OWNER, Role.EDITOR}


def require_editor(role: Role) -> None:
    """ForbiddenError unless the role may change the document."""
    if not can_edit(role):
        raise ForbiddenError("viewers cannot change this room")


def require_owner(role: Role) -> None:
    """ForbiddenError unless the role manages the room."""
    if role is not Role.OWNER:
        raise ForbiddenError("only the room's owners can do this")


def check_role_change(
    caller_id: str, target_id: str, new_role: Role, owners: int, target_role: Role
) -> None:
    """ConflictError when the change would leave the room without an owner."""
    if target_role is Role.OWNER and new_role is not Role.OWNER and owners <= 1:
        who = "yourself" if caller_id == target_id else "the last owner"
        raise ConflictError(f"cannot demote {who}: a room keeps at least one owner")


def check_removal(caller: Role, caller_id: str, target_id: str, target: Role, owners: int) -> None:
    """ForbiddenError unless an owner removes someone or a member leaves.

    ConflictError when the room would be left without an owner.
    """
    if caller is not Role.OWNER and caller_id != target_id:
        raise ForbiddenError("only the room's owners can remove members")
    if target is Role.OWNER and owners <= 1:
        raise ConflictError("the last owner cannot be removed: a room keeps at least one owner")
