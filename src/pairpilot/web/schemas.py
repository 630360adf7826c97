"""Request and response bodies of the REST API (they are the OpenAPI schema too)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from pairpilot.access.invites import DEFAULT_TTL_S, MAX_TTL_S, MIN_TTL_S
from pairpilot.access.policy import LinkAccess, Role
from pairpilot.storage.versions import VersionKind


class ErrorOut(BaseModel):
    """Every error answer."""

    error: str
    message: str


# A display name people read: no control characters (PostgreSQL's text cannot even hold a NUL,
# so one reached storage as a 503).
DISPLAY_NAME = r"^[^\x00-\x1f\x7f]+$"


class AnonymousIn(BaseModel):
    """Anonymous sign-in: a display name."""

    name: str = Field(min_length=1, max_length=80, pattern=DISPLAY_NAME)


class UserOut(BaseModel):
    """A signed-in user."""

    id: str
    name: str


class TokenOut(BaseModel):
    """Supabase's sign-in answer; ``refresh_token`` is used once, for the next one."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the scheme name
    expires_in: int
    expires_at: int
    refresh_token: str
    user: UserOut


class RefreshIn(BaseModel):
    """A refresh token to exchange."""

    refresh_token: str = Field(min_length=1, max_length=200)


class RoomOut(BaseModel):
    """A room's row."""

    id: str
    owner_id: str | None
    default_role: Role
    created_at: datetime
    link_access: LinkAccess


class MemberOut(BaseModel):
    """One membership."""

    user_id: str
    role: Role
    name: str | None = None


class JoinOut(BaseModel):
    """The room and the caller's membership."""

    room: RoomOut
    member: MemberOut


class RoleIn(BaseModel):
    """A member's new role."""

    role: Role


class RoomSettingsIn(BaseModel):
    """What joining by link does: ``link_access``, or its old spelling ``default_role``."""

    link_access: LinkAccess | None = None
    default_role: Role | None = None


class JoinIn(BaseModel):
    """An optional invite token: it grants its role, even in an invite-only room."""

    invite: str | None = Field(default=None, min_length=1, max_length=2048)


class InviteIn(BaseModel):
    """A new invite link: the role it grants and how long it lasts (default 7 days)."""

    role: Role
    expires_in_s: int = Field(default=DEFAULT_TTL_S, ge=MIN_TTL_S, le=MAX_TTL_S)


class InviteOut(BaseModel):
    """An invite, without its token (shown once, when it is made)."""

    id: str
    role: Role
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked: bool


class InviteCreatedOut(BaseModel):
    """A new invite: its token and the room link that carries it."""

    id: str
    token: str
    url: str
    role: Role
    expires_at: datetime


class SnapshotOut(BaseModel):
    """The room's whole document as one Yjs update, base64; null when empty."""

    room_id: str
    snapshot_b64: str | None
    updated_at: datetime | None


class SnapshotIn(BaseModel):
    """A Yjs update (base64) to merge into the room."""

    snapshot_b64: str = Field(min_length=1)


class MergedOut(BaseModel):
    """What a merge did."""

    room_id: str
    merged_bytes: int
    live: bool


class VersionOut(BaseModel):
    """A version's metadata. ``kind``: auto (checkpoint), named, restore (before a restore)."""

    id: int
    room_id: str
    kind: VersionKind
    name: str | None
    author_id: str | None
    author_name: str | None
    created_at: datetime
    size_bytes: int


class VersionPageOut(BaseModel):
    """A page of versions, newest first; ``next_before`` asks for the next page."""

    versions: list[VersionOut]
    next_before: int | None


class VersionDetailOut(VersionOut):
    """A version with its files as text and its whole state (a Yjs update, base64)."""

    files: dict[str, str]
    snapshot_b64: str


class VersionNameIn(BaseModel):
    """A name for the room's current state."""

    name: str = Field(min_length=1, max_length=80, pattern=DISPLAY_NAME)


class RestoreOut(BaseModel):
    """The version that was restored, and the restore point holding the state it replaced."""

    restored: VersionOut
    backup: VersionOut


class FileIn(BaseModel):
    """One uploaded text file."""

    name: str = Field(min_length=1, max_length=1024)
    text: str


class FilesIn(BaseModel):
    """Text files to add to the room."""

    files: list[FileIn] = Field(min_length=1)


class FileAddedOut(BaseModel):
    """Where an uploaded file went: its name in the room and the name it was uploaded as."""

    name: str
    source: str


class FilesOut(BaseModel):
    """The files an upload added."""

    files: list[FileAddedOut]
