"""A token issuer of the tests' own, shaped like Supabase Auth with JWT signing keys.

It makes ES256 and RS256 key pairs, serves the public ones as a JWKS over real HTTP (standby,
active and previously used keys are listed, revoked ones are not, as Supabase does), and signs
tokens with Supabase's claims. ``hold()`` keeps its answers waiting until released, to show a
slow key set blocks nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pairpilot.testing import serving

JWKS_PATH = "/auth/v1/.well-known/jwks.json"


@dataclass
class SigningKey:
    """One key pair of the issuer; ``state`` is Supabase's: standby, active, previous, revoked."""

    kid: str
    alg: str
    private: Any
    state: str = "standby"

    def public_jwk(self) -> dict[str, Any]:
        algorithm = ECAlgorithm if self.alg == "ES256" else RSAAlgorithm
        jwk: dict[str, Any] = algorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig", "key_ops": ["verify"]}


def new_key(alg: str = "ES256", state: str = "standby") -> SigningKey:
    """A fresh key pair (P-256 for ES256, 2048-bit RSA for RS256)."""
    private: Any
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(f"{alg.lower()}-{uuid.uuid4().hex[:8]}", alg, private, state)


@dataclass
class Issuer:
    """A Supabase project's Auth as far as tokens go: its URL, keys, JWKS server and signer."""

    port: int
    keys: list[SigningKey]
    fetches: int = 0  # answered
    asked: int = 0  # received, answered or held
    held: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        """What an operator sets as SUPABASE_URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/auth/v1"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys if k.state != "revoked"]}

    def add(self, alg: str = "ES256", state: str = "standby") -> SigningKey:
        key = new_key(alg, state)
        self.keys.append(key)
        return key

    def rotate(self) -> SigningKey:
        """Supabase's rotation: the standby key becomes active, the active one previous."""
        standby = next(k for k in self.keys if k.state == "standby")
        for key in self.keys:
            if key.state == "active":
                key.state = "previous"
        standby.state = "active"
        return standby

    def claims(self, user_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        """Claims as Supabase sets them for a signed-in user (one hour)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user_id or str(uuid.uuid4()),
            "aud": "authenticated",
            "exp": now + 3600,
            "iat": now,
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": now}],
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
            "email": "ada@example.com",
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {"name": "Ada Lovelace", "email_verified": True},
        }
        claims.update(overrides)
        return claims

    def sign(self, claims: dict[str, Any], key: SigningKey | None = None, **header: Any) -> str:
        """A token signed by ``key`` (the active one by default), its kid in the header."""
        key = key or next(k for k in self.keys if k.state == "active")
        return jwt.encode(
            claims, key.private, algorithm=key.alg, headers={"kid": key.kid, **header}
        )

    def hold(self) -> None:
        """Keep every JWKS answer waiting until ``release``."""
        self.held.clear()

    def release(self) -> None:
        self.held.set()


@asynccontextmanager
async def supabase_issuer(*algs: str) -> AsyncIterator[Issuer]:
    """An issuer with one active key per algorithm given (ES256 by default), serving its JWKS."""
    issuer = Issuer(0, [new_key(alg, "active") for alg in algs or ("ES256",)])
    issuer.release()

    async def jwks(_: Request) -> Response:
        issuer.asked += 1
        await issuer.held.wait()
        issuer.fetches += 1
        return JSONResponse(issuer.jwks(), headers={"Cache-Control": "public, max-age=600"})

    app = Starlette(routes=[Route(JWKS_PATH, jwks)])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    async with serving(uvicorn.Server(config)) as port:
        issuer.port = port
        yield issuer
        issuer.release()  # a fetch still waiting ends with the server
