"""The access rules in one place: what each role may do. PostgreSQL's RLS policies mirror them."""

from __future__ import annotations

from enum import StrEnum

from pairpilot.errors import BadRequestError, ConflictError, ForbiddenError


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


def check_comment_delete(role: Role, caller_id: str, author_id: str) -> None:
    """ForbiddenError unless an owner, or an editor who wrote it, deletes a comment."""
    require_editor(role)
    if role is not Role.OWNER and caller_id != author_id:
        raise ForbiddenError("only its author or the room's owners can delete a comment")


class LinkAccess(StrEnum):
    """What joining a room by its id (the plain link) does."""

    EDIT = "edit"  # the joiner becomes an editor (every room before link access existed)
    VIEW = "view"  # a viewer
    NONE = "none"  # nothing: invite only, and the room answers 404 as if it did not exist


def link_role(access: LinkAccess) -> Role | None:
    """The role a link joiner gets (None: joining by link is refused)."""
    return {LinkAccess.EDIT: Role.EDITOR, LinkAccess.VIEW: Role.VIEWER}.get(access)


def link_access_for(role: Role) -> LinkAccess:
    """The link access that gives link joiners ``role`` (the old ``default_role`` setting)."""
    if role is Role.OWNER:
        raise BadRequestError("default_role is editor or viewer (anyone with the link an owner?)")
    return LinkAccess.EDIT if role is Role.EDITOR else LinkAccess.VIEW


def check_invite(inviter: Role, role: Role) -> None:
    """ForbiddenError unless an owner invites an editor or a viewer.

    No invite grants more than its inviter holds, and none makes owners: ownership is given
    by an owner to a member, by name (``PUT /members``), never to whoever holds a link.
    """
    require_owner(inviter)
    if role is Role.OWNER:
        raise ForbiddenError("an invite makes editors or viewers, never owners")


def link_settings(
    current: LinkAccess, access: LinkAccess | None, default_role: Role | None
) -> tuple[LinkAccess, Role | None]:
    """The link access and default role a room gets from a change of either (or both).

    ``default_role`` is the old spelling of link access: editor = edit, viewer = view. Set
    alone on an invite-only room it is kept for when the link is reopened, and the room stays
    invite only. BadRequestError for an owner default role or two settings that disagree.
    """
    if access is None and default_role is None:
        raise BadRequestError("give link_access, default_role or both")
    implied = link_access_for(default_role) if default_role is not None else None
    if access is None:
        return (current if current is LinkAccess.NONE else implied or current), default_role
    if implied is not None and access is not LinkAccess.NONE and implied is not access:
        raise BadRequestError(f"link_access {access} and default_role {default_role} disagree")
    return access, default_role if default_role is not None else link_role(access)
