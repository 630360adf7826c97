"""The key-set cache alone (``SigningKeys``), against the tests' JWKS server, on a set clock."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.issuer import Issuer, supabase_issuer

from pairpilot.access.keys import MAX_JWKS_BYTES, SigningKeys
from pairpilot.testing import serving, wait_until

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    async with supabase_issuer("ES256", "RS256") as running:
        yield running


async def _keys(issuer: Issuer, clock: Clock) -> SigningKeys:
    return SigningKeys(
        f"{issuer.url}/auth/v1/.well-known/jwks.json",
        max_age_s=600,
        refetch_min_s=5,
        clock=clock,
    )


async def test_the_set_is_kept_at_most_its_max_age_and_unknown_kids_refetch_at_most_every_few_s(
    issuer: Issuer,
):
    clock = Clock()
    keys = await _keys(issuer, clock)
    es256, rs256 = issuer.keys
    try:
        assert keys.wants_fetch(es256.kid)  # nothing fetched yet
        await keys.refresh()
        assert keys.key(es256.kid).algorithm_name == "ES256"
        assert keys.key(rs256.kid).algorithm_name == "RS256"
        assert not keys.wants_fetch(es256.kid)
        assert not keys.wants_fetch("unknown")  # within 5 s of the last fetch
        clock.now += 5
        assert keys.wants_fetch("unknown")
        assert not keys.wants_fetch(es256.kid)
        clock.now += 595
        assert keys.wants_fetch(es256.kid)  # 10 minutes old
        es256.state = "revoked"
        await keys.refresh()
        assert keys.key(es256.kid) is None
        assert keys.key(rs256.kid) is not None
        assert issuer.fetches == 2
    finally:
        await keys.close()


async def test_callers_waiting_together_share_one_fetch(issuer: Issuer):
    keys = await _keys(issuer, Clock())
    try:
        issuer.hold()
        waiting = [asyncio.create_task(keys.refresh()) for _ in range(10)]
        await wait_until(lambda: issuer.asked == 1, what="the fetch held")
        assert not any(task.done() for task in waiting)
        issuer.release()
        await asyncio.gather(*waiting)
        assert issuer.fetches == 1
    finally:
        await keys.close()


async def test_a_failed_or_bad_fetch_keeps_the_keys_known(issuer: Issuer):
    answers: list[Response] = []

    async def jwks(_: object) -> Response:
        return answers.pop(0)

    clock = Clock()
    app = Starlette(routes=[Route("/jwks", jwks)])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    async with serving(uvicorn.Server(config)) as port:
        keys = SigningKeys(f"http://127.0.0.1:{port}/jwks", refetch_min_s=5, clock=clock)
        kid = issuer.keys[0].kid
        try:
            answers.append(JSONResponse(issuer.jwks()))
            await keys.refresh()
            assert keys.key(kid) is not None
            for bad in (
                Response("down", status_code=503),
                Response("not json"),
                JSONResponse({"no": "keys"}),
                Response(b'{"keys": [' + b" " * MAX_JWKS_BYTES + b"]}"),
            ):
                clock.now += 5
                answers.append(bad)
                await keys.refresh()
                assert keys.key(kid) is not None, bad.body[:40]
                assert keys.key("hs") is None
            # Every failure counts as a try: the next one waits its interval.
            assert not keys.wants_fetch("another")
            # A well-formed set is the truth: one with no asymmetric key leaves none.
            clock.now += 5
            answers.append(JSONResponse({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hs"}]}))
            await keys.refresh()
            assert keys.key(kid) is None
            assert keys.key("hs") is None
        finally:
            await keys.close()
