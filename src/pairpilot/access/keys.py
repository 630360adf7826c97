"""An issuer's public signing keys (a JWKS such as Supabase's), fetched off the loop and cached.

Supabase rotates keys through standby, active, previously used and revoked, and its JWKS lists
every key but the revoked ones; its edge caches the set for 10 minutes. So the set is kept for
at most ``max_age_s``, and a token naming a ``kid`` the set lacks (a key made active since the
last fetch, or a forged one) makes it fetch again, at most once per ``refetch_min_s``: a flood
of forged kids costs one fetch every few seconds. Fetches are awaited with an async client and
shared by every caller waiting at the time (one request in flight). A failed fetch keeps the
keys already known and is logged; the next one is tried after ``refetch_min_s``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

if TYPE_CHECKING:
    import httpx

log = structlog.get_logger(__name__)

# The asymmetric algorithms Supabase signs with; a key of any other kind in the set is ignored.
ALGORITHMS = ("ES256", "RS256")
FETCH_TIMEOUT_S = 5.0
MAX_JWKS_BYTES = 1024 * 1024


class SigningKeys:
    """The key set at ``url``: ``key(kid)`` reads it, ``refresh()`` fetches it again."""

    def __init__(
        self,
        url: str,
        *,
        max_age_s: float = 600.0,
        refetch_min_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._max_age_s = max_age_s
        self._refetch_min_s = refetch_min_s
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.fetches = 0  # successful ones (the tests count them)

    def key(self, kid: object) -> PyJWK | None:
        """The key with this ``kid`` in the set as last fetched, or None."""
        return self._keys.get(kid) if isinstance(kid, str) else None

    def wants_fetch(self, kid: object) -> bool:
        """Whether a token naming ``kid`` should wait for a fetch before it is checked."""
        now = self._clock()
        if self._tried_at is not None and now - self._tried_at < self._refetch_min_s:
            return False
        stale = self._fetched_at is None or now - self._fetched_at >= self._max_age_s
        return stale or self.key(kid) is None

    async def refresh(self) -> None:
        """Fetch the set again (or wait for the fetch already under way)."""
        if self._inflight is None:
            self._tried_at = self._clock()
            self._inflight = asyncio.create_task(self._fetch(), name="jwks-fetch")
            self._inflight.add_done_callback(self._fetched)
        # shield: a caller that gives up (a closed socket) does not cancel the others' fetch.
        await asyncio.shield(self._inflight)

    def _fetched(self, task: asyncio.Task[None]) -> None:
        self._inflight = None
        if not task.cancelled() and task.exception() is not None:  # a bug: _fetch catches I/O
            log.error("signing keys fetch failed", url=self.url, exc_info=task.exception())

    async def _fetch(self) -> None:
        import httpx  # noqa: PLC0415 - only a server that accepts another issuer's tokens

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False)
        try:
            keys = _usable_keys(json.loads(await self._download(self._client)))
        except (httpx.HTTPError, ValueError, PyJWKError, PyJWKSetError) as exc:
            # Keep what is known: a key set briefly unreachable must not sign everyone out.
            log.warning(
                "signing keys not fetched", url=self.url, reason=str(exc), known=len(self._keys)
            )
            return
        self._keys = keys
        self._fetched_at = self._clock()
        self.fetches += 1
        log.info("signing keys fetched", url=self.url, kids=sorted(keys))

    async def _download(self, client: httpx.AsyncClient) -> bytes:
        """The set's bytes; ValueError past MAX_JWKS_BYTES (read no further)."""
        async with client.stream("GET", self.url) as response:
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes")
        return bytes(body)

    async def close(self) -> None:
        """Stop a fetch under way and close the HTTP client."""
        if self._inflight is not None:
            self._inflight.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _usable_keys(document: object) -> dict[str, PyJWK]:
    """The set's signing keys by kid: ES256 and RS256 public keys that name a ``kid``."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS: no 'keys' list")  # noqa: TRY004 - bad content, as JSON's
    signing = [
        key
        for key in document["keys"]
        if isinstance(key, dict)
        and key.get("kty") in {"EC", "RSA"}
        and isinstance(key.get("kid"), str)
        and key.get("use", "sig") == "sig"
    ]
    if not signing:
        return {}
    found: dict[str, PyJWK] = {}
    for key in PyJWKSet.from_dict({"keys": signing}).keys:
        if key.key_id is not None and key.algorithm_name in ALGORITHMS:
            found[key.key_id] = key
    return found
