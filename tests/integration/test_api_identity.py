"""Anonymous sign-in and the 401s: every way a token can be wrong."""

import dataclasses
import stat
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from tests.support import new_user

from pairpilot.testing import LiveServer, live_server, quick_settings

pytestmark = pytest.mark.anyio


def _secret(server: LiveServer) -> str:
    return (server.services.settings.data_dir / "jwt-secret").read_text()


def _claims(**overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": str(uuid.uuid4()),
        "role": "authenticated",
        "aud": "authenticated",
        "exp": int(time.time()) + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


async def _status(server: LiveServer, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        return await client.post("/api/rooms/some-room/join", headers=headers)


async def test_anonymous_sign_in_returns_a_supabase_shaped_token(server: LiveServer):
    user = await new_user(server.http_url, "Ada")
    claims = jwt.decode(user.token, _secret(server), algorithms=["HS256"], audience="authenticated")
    assert claims["sub"] == user.id
    assert claims["role"] == "authenticated"
    assert claims["user_metadata"] == {"name": "Ada"}
    assert claims["exp"] > time.time()
    uuid.UUID(user.id)


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 81}, {"nom": "Ada"}])
async def test_anonymous_sign_in_rejects_bad_names_with_400(server: LiveServer, body):
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        response = await client.post("/api/auth/anonymous", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


@pytest.mark.parametrize("name", ["Ada\x00", "A\nda", "\x7f"])
async def test_a_name_with_control_characters_is_a_400_on_either_backend(
    api_server: LiveServer, name: str
):
    # PostgreSQL's text cannot hold a NUL: the refresh token's row failed with a 503 (schemathesis).
    async with httpx.AsyncClient(base_url=api_server.http_url) as client:
        response = await client.post("/api/auth/anonymous", json={"name": name})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


async def test_a_name_beyond_the_basic_plane_signs_in_on_either_backend(api_server: LiveServer):
    user = await new_user(api_server.http_url, "Ada \U0001f680 ©")
    assert user.name == "Ada \U0001f680 ©"


async def test_a_token_whose_name_has_control_characters_joins_with_them_removed(
    api_server: LiveServer, room: str
):
    now = int(time.time())
    claims = {"sub": str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated"}
    claims |= {"exp": now + 600, "user_metadata": {"name": "Ada\x00\nLovelace"}}
    token = jwt.encode(claims, _secret(api_server), algorithm="HS256")
    async with httpx.AsyncClient(base_url=api_server.http_url) as client:
        response = await client.post(
            f"/api/rooms/{room}/join", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200
    assert response.json()["member"]["name"] == "AdaLovelace"


async def test_malformed_json_is_a_400(server: LiveServer):
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        response = await client.post(
            "/api/auth/anonymous", content=b"{nope", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400


def _bad_tokens(secret: str) -> dict[str, str | None]:
    none_token = jwt.encode(_claims(), key="", algorithm="none")
    return {
        "missing": None,
        "not a bearer": "Basic dXNlcjpwYXNz",
        "garbage": "Bearer not-a-jwt",
        "expired": "Bearer " + jwt.encode(_claims(exp=int(time.time()) - 10), secret),
        "wrong signature": "Bearer " + jwt.encode(_claims(), "another-secret-of-enough-length-32b"),
        "alg none": "Bearer " + none_token,
        "wrong audience": "Bearer " + jwt.encode(_claims(aud="anon"), secret),
        "no sub": "Bearer " + jwt.encode(_claims(sub=None), secret),
        "sub not a uuid": "Bearer " + jwt.encode(_claims(sub="alice"), secret),
        "no exp": "Bearer " + jwt.encode(_claims(exp=None), secret),
        "service role": "Bearer " + jwt.encode(_claims(role="service_role"), secret),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "not a bearer",
        "garbage",
        "expired",
        "wrong signature",
        "alg none",
        "wrong audience",
        "no sub",
        "sub not a uuid",
        "no exp",
        "service role",
    ],
)
async def test_bad_tokens_get_401_with_a_json_error(server: LiveServer, case: str):
    response = await _status(server, _bad_tokens(_secret(server))[case])
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_token_from_the_configured_secret_is_accepted(tmp_path: Path):
    secret = "a-supabase-project-jwt-secret-at-least-32-chars"
    async with live_server(quick_settings(tmp_path, jwt_secret=secret)) as server:
        token = jwt.encode(_claims(user_metadata={"name": "Supa"}), secret)
        response = await _status(server, f"Bearer {token}")
        assert response.status_code == 200
        assert response.json()["member"]["role"] == "owner"
        assert not (tmp_path / "jwt-secret").exists()


async def test_the_generated_secret_is_private_and_survives_restarts(tmp_path: Path):
    async with live_server(quick_settings(tmp_path)) as server:
        user = await new_user(server.http_url)
    path = tmp_path / "jwt-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    async with live_server(quick_settings(tmp_path)) as server:
        same_user = dataclasses.replace(user, base=server.http_url)
        assert (await same_user.join("after-restart")).status_code == 200
