"""Supabase-shaped JWTs: issue them for anonymous sign-in, verify them on every call.

Two kinds of token are accepted: HS256 ones signed with the server's secret (its own, or a
Supabase project's legacy JWT secret), and, when an issuer's key set is configured, ES256 and
RS256 ones signed by one of its keys (Supabase's JWT signing keys, or any OIDC issuer). The
header's ``alg`` picks the kind and nothing else: an HS256 token is only ever checked with the
secret (so one "signed" with a public key fails), an asymmetric one only with the key its
``kid`` names, with that key's own algorithm, and any other ``alg`` (``none`` included) is
refused.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from pairpilot.access.keys import ALGORITHMS, SigningKeys
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

    @property
    def anonymous(self) -> bool:
        """An anonymous user's token (PairPilot's sign-in, Supabase's anonymous sign-in)."""
        return self.claims.get("is_anonymous") is True

    @property
    def auth_session(self) -> str | None:
        """The issuer's sign-in session (Supabase's ``session_id``), for the logs."""
        found = self.claims.get("session_id")
        return found[:64] if isinstance(found, str) else None


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
    """Issues HS256 tokens with Supabase's claims (sub, role, aud, exp) and verifies tokens."""

    def __init__(
        self,
        secret: str,
        ttl_s: int,
        *,
        keys: SigningKeys | None = None,
        issuer: str | None = None,
    ) -> None:
        self._secret = secret
        self._ttl_s = ttl_s
        self.keys = keys
        self._issuer = issuer

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

    def needs_keys(self, token: str | None) -> bool:
        """Whether ``token`` names a signing key that should be fetched before it is checked."""
        if self.keys is None or not token:
            return False
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return False  # verify says why
        return header.get("alg") in ALGORITHMS and self.keys.wants_fetch(header.get("kid"))

    async def authenticate(self, token: str | None) -> Identity:
        """``verify``, after fetching the issuer's keys when the token needs them (not blocking)."""
        if self.keys is not None and self.needs_keys(token):
            await self.keys.refresh()
        return self.verify(token)

    def verify(self, token: str | None) -> Identity:
        """The token's identity with the keys known now, or UnauthenticatedError saying why not."""
        if not token:
            raise UnauthenticatedError("missing bearer token")
        try:
            claims = self._decode(token)
        except jwt.ExpiredSignatureError as exc:
            raise UnauthenticatedError("token expired") from exc
        except jwt.PyJWTError as exc:  # InvalidTokenError, and a key unfit for its algorithm
            raise UnauthenticatedError(f"invalid token: {exc}") from exc
        subject = claims.get("sub")
        try:
            user_id = str(uuid.UUID(str(subject)))
        except ValueError as exc:
            raise UnauthenticatedError("token subject is not a user id") from exc
        if claims.get("role") != "authenticated":
            raise UnauthenticatedError("token role is not 'authenticated'")
        return Identity(user_id, _shown_name(claims.get("user_metadata")), claims)

    def _decode(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        if alg == ALGORITHM:
            decoded: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                options={"require": ["exp", "sub", "aud"]},
            )
            return decoded
        if alg not in ALGORITHMS or self.keys is None:
            raise UnauthenticatedError(f"tokens signed with {str(alg)[:16]!r} are not accepted")
        key = self.keys.key(header.get("kid"))
        if key is None:
            # Not in the issuer's set, even after fetching it again: unknown, forged or revoked.
            raise UnauthenticatedError("token signed with an unknown or revoked key")
        if key.algorithm_name != alg:
            raise UnauthenticatedError(f"the key {key.key_id} does not sign {alg}")
        verified: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=AUDIENCE,
            issuer=self._issuer,
            options={"require": ["exp", "sub", "aud", "iss"]},
        )
        return verified


def _shown_name(metadata: object) -> str:
    """The name a token's ``user_metadata`` gives, fit to show and store.

    Supabase's OAuth sign-ins fill ``full_name`` or ``user_name`` rather than ``name``. No
    control characters (PostgreSQL's text cannot hold a NUL), at most 80 characters.
    """
    name = None
    if isinstance(metadata, dict):
        name = next(
            (metadata[k] for k in ("name", "full_name", "user_name") if metadata.get(k)), None
        )
    shown = "".join(c for c in str(name or "") if c >= " " and c != "\x7f")[:80]
    return shown or "anonymous"
