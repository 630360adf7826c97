"""Supabase-shaped JWTs: issue them for anonymous sign-in, verify them on every call."""

from __future__ import annotations

import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from pairpilot.errors import UnauthenticatedError

AUDIENCE = "authenticated"
ALGORITHM = "HS256"
SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name, not a secret


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller: Supabase user id (a UUID string), display name, the raw claims."""

    user_id: str
    name: str
    claims: dict[str, Any]


def load_or_create_secret(configured: str | None, data_dir: Path) -> str:
    """The configured secret, or one generated on first start and kept (mode 0600)."""
    if configured:
        return configured
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting at once agree on one secret (the loser reads it back).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


class Identities:
    """Issues and verifies HS256 tokens with Supabase's claims (sub, role, aud, exp)."""

    def __init__(self, secret: str, ttl_s: int) -> None:
        self._secret = secret
        self._ttl_s = ttl_s

    def issue(self, name: str, user_id: str | None = None) -> tuple[str, Identity, int]:
        """A token for ``user_id`` (a new anonymous user when None): it, the identity, its TTL."""
        user_id = user_id or str(uuid.uuid4())
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": user_id,
            "role": "authenticated",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + self._ttl_s,
            "jti": uuid.uuid4().hex,  # two tokens issued in one second still differ
            "is_anonymous": True,
            "user_metadata": {"name": name},
        }
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM)
        return token, Identity(user_id, name, claims), self._ttl_s

    def sign(self, claims: dict[str, Any]) -> str:
        """Sign other tokens of this server (invites) with the same secret.

        Their own ``aud`` keeps them apart: none of them passes ``verify``.
        """
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def read_signed(self, token: str, audience: str, *, check_expiry: bool) -> dict[str, Any]:
        """The claims of a token ``sign`` made for ``audience``; jwt.InvalidTokenError otherwise."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self._secret,
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require": ["exp", "aud", "jti"], "verify_exp": check_expiry},
        )
        return claims

    def verify(self, token: str | None) -> Identity:
        """The token's identity, or UnauthenticatedError saying what is wrong with it."""
        if not token:
            raise UnauthenticatedError("missing bearer token")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthenticatedError("token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise UnauthenticatedError(f"invalid token: {exc}") from exc
        subject = claims.get("sub")
        try:
            user_id = str(uuid.UUID(str(subject)))
        except ValueError as exc:
            raise UnauthenticatedError("token subject is not a user id") from exc
        if claims.get("role") != "authenticated":
            raise UnauthenticatedError("token role is not 'authenticated'")
        metadata = claims.get("user_metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        # A name from another issuer (a Supabase project's metadata) is shown and stored: no
        # control characters (PostgreSQL's text cannot hold a NUL).
        shown = "".join(c for c in str(name or "") if c >= " " and c != "\x7f")[:80]
        return Identity(user_id, shown or "anonymous", claims)
