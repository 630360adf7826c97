"""Request and response bodies of the REST API (they are the OpenAPI schema too)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from pairpilot.access.policy import Role


class ErrorOut(BaseModel):
    """Every error answer."""

    error: str
    message: str


class AnonymousIn(BaseModel):
    """Anonymous sign-in: a display name."""

    name: str = Field(min_length=1, max_length=80)


class UserOut(BaseModel):
    """A signed-in user."""

    id: str
    name: str


class TokenOut(BaseModel):
    """Supabase's sign-in answer."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the scheme name
    expires_in: int
    user: UserOut


class RoomOut(BaseModel):
    """A room's row."""

    id: str
    owner_id: str | None
    default_role: Role
    created_at: datetime


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


class DefaultRoleIn(BaseModel):
    """The role new members get."""

    default_role: Role


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
