"""Test-suite helpers beyond pairpilot.testing: CI's rule for missing services, an API user."""

import os
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(what: str) -> None:
    """Fail in CI (a missing service is a broken CI), skip with one line elsewhere."""
    if IN_CI:
        pytest.fail(f"CI requires {what}")
    pytest.skip(what)


@dataclass(frozen=True)
class User:
    """A signed-in test user and its calls."""

    base: str
    token: str
    id: str
    name: str

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self._headers() | kwargs.pop("headers", {})
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as client:
            return await client.request(method, path, headers=headers, **kwargs)

    async def join(self, room: str) -> httpx.Response:
        return await self.call("POST", f"/api/rooms/{room}/join")


async def new_user(base: str, name: str = "tester") -> User:
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post("/api/auth/anonymous", json={"name": name})
        response.raise_for_status()
        body = response.json()
    return User(base, body["access_token"], body["user"]["id"], body["user"]["name"])
