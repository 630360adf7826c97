"""Issue #27 in the browser: the page takes a Supabase sign-in redirect's session and refreshes it
at Supabase (here a stand-in for its token endpoint), never at PairPilot's /api/auth/token.

The stand-in answers like GoTrue and signs with the server's HS256 secret, which a Supabase
project on its legacy JWT secret shares with PairPilot; the tokens have the claims Supabase sets.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
import uvicorn
from playwright.async_api import Locator, Page, Request, expect
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.e2e.conftest import CLIENT_INDEX, NewPerson
from tests.e2e.room_page import UI_TIMEOUT_MS, by_test_id, expect_connected
from tests.support import unavailable

from pairpilot.settings import Settings
from pairpilot.testing import LiveServer, live_server, quick_settings, serving

pytestmark = pytest.mark.anyio

SECRET = "supabase-legacy-jwt-secret-of-the-test-project"
ANON_KEY = "anon-key-of-the-test-project"
NAME = "Grace Hopper"
# The page counts a token as usable while more than 60 s remain: 65 s leaves it about 5 s.
NEAR_EXPIRY_S = 65
# GoTrue answers a refresh token used again within this many seconds (two tabs at once) as it
# answered its first use (GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL's default); later, 400.
REUSE_INTERVAL_S = 10


@dataclass
class User:
    """A Supabase user of the stand-in project."""

    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    name: str = NAME


@dataclass
class GoTrue:
    """A stand-in for a Supabase project's Auth (GoTrue): its token endpoint only."""

    url: str = ""
    # Live refresh tokens and whose they are; each is used up by a refresh, as in GoTrue.
    refresh_tokens: dict[str, User] = field(default_factory=dict)
    # Every refresh asked for: (the apikey header, the refresh token sent).
    asked: list[tuple[str | None, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    # Access tokens a sign-out ended (`POST /auth/v1/logout`).
    signed_out: list[str] = field(default_factory=list)
    # Refresh tokens used up: when, and what their first use answered.
    used: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    def sign_in(self, user: User, expires_in: int = 3600) -> dict[str, str]:
        """A new session of `user` as Supabase's implicit-flow redirect puts it in the fragment."""
        now = int(time.time())
        claims = {
            "iss": f"{self.url}/auth/v1",
            "sub": user.id,
            "aud": "authenticated",
            "exp": now + expires_in,
            "iat": now,
            "role": "authenticated",
            "aal": "aal1",
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
            "email": "grace@example.org",
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {"name": user.name},
        }
        access = jwt.encode(claims, SECRET, algorithm="HS256", headers={"typ": "JWT"})
        refresh = uuid.uuid4().hex[:12]
        self.refresh_tokens[refresh] = user
        self.issued.append(access)
        return {
            "access_token": access,
            "expires_at": str(now + expires_in),
            "expires_in": str(expires_in),
            "refresh_token": refresh,
            "token_type": "bearer",
            "type": "magiclink",
        }

    async def token(self, request: HttpRequest) -> JSONResponse:
        apikey = request.headers.get("apikey")
        body = await request.json()
        refresh = body.get("refresh_token") if isinstance(body, dict) else None
        self.asked.append((apikey, str(refresh)))
        if apikey != ANON_KEY:
            return JSONResponse({"message": "Invalid API key"}, status_code=401)
        if request.query_params.get("grant_type") != "refresh_token":
            return JSONResponse({"code": 400, "msg": "unsupported grant_type"}, status_code=400)
        reused = self.used.get(str(refresh))
        if reused is not None and time.monotonic() - reused[0] < REUSE_INTERVAL_S:
            return JSONResponse(reused[1])
        user = self.refresh_tokens.pop(str(refresh), None)
        if user is None:
            return JSONResponse(
                {
                    "code": 400,
                    "error_code": "refresh_token_not_found",
                    "msg": "Invalid Refresh Token: Refresh Token Not Found",
                },
                status_code=400,
            )
        session: dict[str, Any] = dict(self.sign_in(user))
        session["expires_in"] = int(session["expires_in"])
        session["expires_at"] = int(session["expires_at"])
        session["user"] = {
            "id": user.id,
            "aud": "authenticated",
            "user_metadata": {"name": user.name},
        }
        return JSONResponse(session)

    async def logout(self, request: HttpRequest) -> Response:
        """Ends the bearer's sessions here (scope=local): their refresh tokens are revoked."""
        if request.headers.get("apikey") != ANON_KEY:
            return JSONResponse({"message": "Invalid API key"}, status_code=401)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            user_id = jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated")[
                "sub"
            ]
        except jwt.InvalidTokenError:
            return JSONResponse({"code": 403, "msg": "invalid JWT"}, status_code=403)
        self.signed_out.append(token)
        for refresh, user in list(self.refresh_tokens.items()):
            if user.id == user_id:
                del self.refresh_tokens[refresh]
        return Response(status_code=204)


@pytest.fixture
async def gotrue() -> AsyncIterator[GoTrue]:
    """The stand-in, on a free port; it answers the browser's CORS preflight as Supabase does."""
    stand_in = GoTrue()
    app = Starlette(
        routes=[
            Route("/auth/v1/token", stand_in.token, methods=["POST"]),
            Route("/auth/v1/logout", stand_in.logout, methods=["POST"]),
        ],
        middleware=[
            Middleware(
                CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"]
            )
        ],
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    async with serving(uvicorn.Server(config)) as port:
        stand_in.url = f"http://127.0.0.1:{port}"
        yield stand_in


@pytest.fixture
def settings(tmp_path: Path, gotrue: GoTrue) -> Settings:
    """PairPilot pointed at the stand-in project, sharing its legacy JWT secret."""
    if not CLIENT_INDEX.is_file():
        unavailable(f"the built client ({CLIENT_INDEX}); run scripts/setup.sh")
    return quick_settings(
        tmp_path, jwt_secret=SECRET, supabase_url=gotrue.url, supabase_anon_key=ANON_KEY
    )


@dataclass
class Watched:
    """A page and the PairPilot sign-in calls it made (`/api/auth/...` paths)."""

    page: Page
    auth_calls: list[str]
    bearers: list[str]


async def watched(person: NewPerson, name: str = "Guest") -> Watched:
    page = await person(name)
    auth_calls: list[str] = []
    bearers: list[str] = []

    def seen(request: Request) -> None:
        if "/api/auth/" in request.url:
            auth_calls.append(request.url)
        bearer = request.headers.get("authorization", "")
        if bearer.startswith("Bearer ") and "/api/rooms/" in request.url:
            bearers.append(bearer.removeprefix("Bearer "))

    page.on("request", seen)
    return Watched(page, auth_calls, bearers)


async def stored_session(page: Page) -> dict[str, Any]:
    session: dict[str, Any] = await page.evaluate(
        "() => JSON.parse(localStorage.getItem('pairpilot.session'))"
    )
    return session


def participant(page: Page, user_id: str) -> Locator:
    return page.locator(f"[data-testid=participant][data-user-id='{user_id}']")


async def test_a_supabase_redirect_signs_the_page_in_as_that_user(
    server: LiveServer, gotrue: GoTrue, room: str, person: NewPerson
):
    grace = User()
    fragment = gotrue.sign_in(grace)
    ada = await watched(person)

    await ada.page.goto(f"{server.http_url}/r/{room}#{urlencode(fragment)}")
    await expect_connected(ada.page)

    assert ada.page.url == f"{server.http_url}/r/{room}", "the tokens stayed in the address bar"
    await expect(participant(ada.page, grace.id)).to_have_attribute("data-role", "owner")
    await expect(participant(ada.page, grace.id)).to_contain_text(NAME)
    await expect(by_test_id(ada.page, "sign-out")).to_be_visible()
    await expect(by_test_id(ada.page, "error-message")).to_be_hidden()
    assert ada.auth_calls == [], "the page signed in at PairPilot beside the Supabase session"
    assert set(ada.bearers) == {fragment["access_token"]}
    stored = await stored_session(ada.page)
    assert stored["user"]["id"] == grace.id
    assert stored["refreshToken"] == fragment["refresh_token"]
    assert stored["supabase"] == {"url": gotrue.url, "anonKey": ANON_KEY}
    assert gotrue.asked == []


async def test_a_near_expiry_supabase_token_is_refreshed_at_supabase_not_at_pairpilot(
    server: LiveServer, gotrue: GoTrue, room: str, person: NewPerson
):
    grace = User()
    fragment = gotrue.sign_in(grace, expires_in=NEAR_EXPIRY_S)
    ada = await watched(person)

    await ada.page.goto(f"{server.http_url}/r/{room}#{urlencode(fragment)}")
    await expect_connected(ada.page)
    await ada.page.wait_for_function(
        "(first) => JSON.parse(localStorage.getItem('pairpilot.session')).refreshToken !== first",
        arg=fragment["refresh_token"],
        timeout=UI_TIMEOUT_MS * 2,
    )

    assert gotrue.asked[0] == (ANON_KEY, fragment["refresh_token"])
    stored = await stored_session(ada.page)
    assert stored["token"] == gotrue.issued[-1], "the page does not keep Supabase's new token"
    assert stored["user"]["id"] == grace.id
    assert stored["supabase"]["url"] == gotrue.url
    assert ada.auth_calls == [], "the page refreshed at PairPilot"
    # The next calls go with the refreshed token, as the same user.
    await ada.page.reload()
    await expect_connected(ada.page)
    assert ada.bearers[-1] == stored["token"]
    await expect(participant(ada.page, grace.id)).to_have_attribute("data-role", "owner")
    await expect(by_test_id(ada.page, "error-message")).to_be_hidden()
    assert ada.auth_calls == []


async def test_a_refresh_supabase_refuses_falls_back_to_a_guest_with_a_message(
    server: LiveServer, gotrue: GoTrue, room: str, person: NewPerson
):
    grace = User()
    fragment = gotrue.sign_in(grace, expires_in=NEAR_EXPIRY_S)
    del gotrue.refresh_tokens[fragment["refresh_token"]]  # signed out elsewhere: revoked
    ada = await watched(person)

    await ada.page.goto(f"{server.http_url}/r/{room}#{urlencode(fragment)}")

    await expect(by_test_id(ada.page, "error-message")).to_contain_text(
        "Supabase refused to refresh the session", timeout=UI_TIMEOUT_MS * 2
    )
    await expect(by_test_id(ada.page, "error-message")).to_contain_text("You are now a guest")
    await expect_connected(ada.page)
    assert gotrue.asked == [(ANON_KEY, fragment["refresh_token"])]
    assert any(call.endswith("/api/auth/anonymous") for call in ada.auth_calls)
    stored = await stored_session(ada.page)
    assert stored["user"]["id"] != grace.id
    assert "supabase" not in stored
    await expect(participant(ada.page, stored["user"]["id"])).to_be_visible()
    await expect(by_test_id(ada.page, "sign-out")).to_be_hidden()


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        (
            "access_token=not-a-jwt&refresh_token=r1&expires_in=3600&token_type=bearer",
            "not a Supabase user's JWT",
        ),
        ("access_token=a.b.c&expires_in=3600&token_type=bearer", "lacks its access or refresh"),
        (
            (
                "error=access_denied&error_code=otp_expired"
                "&error_description=Email+link+is+invalid+or+has+expired"
            ),
            "Supabase did not sign you in: Email link is invalid or has expired",
        ),
    ],
)
async def test_a_malformed_redirect_says_so_and_signs_in_a_guest(
    server: LiveServer, room: str, person: NewPerson, fragment: str, message: str
):
    ada = await watched(person)

    await ada.page.goto(f"{server.http_url}/r/{room}#{fragment}")

    await expect(by_test_id(ada.page, "error-message")).to_contain_text(message)
    await expect_connected(ada.page)
    assert ada.page.url == f"{server.http_url}/r/{room}", "the fragment stayed in the address bar"
    assert any(call.endswith("/api/auth/anonymous") for call in ada.auth_calls)
    assert "supabase" not in await stored_session(ada.page)


async def test_two_tabs_share_a_supabase_session_through_its_refresh(
    server: LiveServer, gotrue: GoTrue, room: str, person: NewPerson
):
    grace = User()
    fragment = gotrue.sign_in(grace, expires_in=NEAR_EXPIRY_S)
    first = await watched(person)
    await first.page.goto(f"{server.http_url}/r/{room}#{urlencode(fragment)}")
    await expect_connected(first.page)
    second = await first.page.context.new_page()
    await second.goto(f"{server.http_url}/r/{room}")
    await expect_connected(second)

    for page in (first.page, second):
        await page.wait_for_function(
            "(first) => JSON.parse(localStorage.getItem('pairpilot.session')).refreshToken"
            " !== first",
            arg=fragment["refresh_token"],
            timeout=UI_TIMEOUT_MS * 2,
        )
        await expect(participant(page, grace.id)).to_have_attribute("data-role", "owner")
        await expect(by_test_id(page, "error-message")).to_be_hidden()
    assert gotrue.asked, "neither tab refreshed at Supabase"
    assert (await stored_session(second))["user"]["id"] == grace.id
    assert first.auth_calls == []


async def test_signing_out_ends_the_supabase_session_and_the_page_forgets_it(
    server: LiveServer, gotrue: GoTrue, room: str, person: NewPerson
):
    grace = User()
    fragment = gotrue.sign_in(grace)
    ada = await watched(person)
    await ada.page.goto(f"{server.http_url}/r/{room}#{urlencode(fragment)}")
    await expect_connected(ada.page)

    await by_test_id(ada.page, "sign-out").click()

    await expect(by_test_id(ada.page, "home-note")).to_have_text("Signed out of Supabase.")
    assert ada.page.url == f"{server.http_url}/"
    assert gotrue.signed_out == [fragment["access_token"]]
    assert fragment["refresh_token"] not in gotrue.refresh_tokens
    assert await ada.page.evaluate("() => localStorage.getItem('pairpilot.session')") is None
    # Back in the room, this browser is a guest (PairPilot's sign-in), not Grace.
    await ada.page.goto(f"{server.http_url}/r/{room}")
    await expect_connected(ada.page)
    assert any(call.endswith("/api/auth/anonymous") for call in ada.auth_calls)
    assert (await stored_session(ada.page))["user"]["id"] != grace.id
    await expect(by_test_id(ada.page, "sign-out")).to_be_hidden()


async def test_a_guest_has_no_sign_out(server: LiveServer, room: str, person: NewPerson):
    ada = await watched(person)
    await ada.page.goto(f"{server.http_url}/r/{room}")
    await expect_connected(ada.page)
    await expect(by_test_id(ada.page, "sign-out")).to_be_hidden()


async def test_a_redirect_to_the_start_page_signs_in_there_and_a_new_room_is_that_users(
    server: LiveServer, gotrue: GoTrue, person: NewPerson
):
    grace = User()
    fragment = gotrue.sign_in(grace)
    ada = await watched(person)

    await ada.page.goto(f"{server.http_url}/#{urlencode(fragment)}")
    await expect(by_test_id(ada.page, "name-input")).to_have_value(NAME)
    assert ada.page.url == f"{server.http_url}/", "the tokens stayed in the address bar"
    await by_test_id(ada.page, "create-room").click()

    await expect_connected(ada.page)
    await expect(participant(ada.page, grace.id)).to_have_attribute("data-role", "owner")
    assert ada.auth_calls == []


async def test_a_supabase_redirect_to_a_server_without_supabase_says_so(
    tmp_path: Path, gotrue: GoTrue, room: str, person: NewPerson
):
    fragment = gotrue.sign_in(User())
    async with live_server(quick_settings(tmp_path / "plain", jwt_secret=SECRET)) as plain:
        ada = await watched(person)
        await ada.page.goto(f"{plain.http_url}/r/{room}#{urlencode(fragment)}")

        await expect(by_test_id(ada.page, "error-message")).to_contain_text(
            "not set up for Supabase sign-in"
        )
        await expect_connected(ada.page)
        assert ada.page.url == f"{plain.http_url}/r/{room}"
        assert any(call.endswith("/api/auth/anonymous") for call in ada.auth_calls)
