"""The guardrails' throttle: a refusal says when to come back, is remembered until then without
asking the storage again, and a failing storage lets everything through (counted)."""

import pytest
from limits.aio.storage import MemoryStorage

from pairpilot.errors import RefusedError
from pairpilot.guardrails import SIGNIN_RATE, WRITE_RATE
from pairpilot.ratelimit import LimitStorage, Throttle

pytestmark = pytest.mark.anyio


class CountingStorage(MemoryStorage):
    """Memory storage that counts the calls a hit makes (one per Redis command on Redis)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.down = False

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        self.calls += 1
        if self.down:
            raise ConnectionRefusedError("storage down")
        return await super().incr(key, expiry, amount)

    async def get_expiry(self, key: str) -> float:
        self.calls += 1
        return await super().get_expiry(key)


def _throttle(
    storage: CountingStorage, degraded: list[str] | None = None, backend: LimitStorage | None = None
) -> Throttle:
    backend = backend or LimitStorage(storage, timeout_s=1.0)
    rates = {SIGNIN_RATE: "2/hour", WRITE_RATE: "1/minute"}
    return Throttle(backend, rates, on_degraded=None if degraded is None else degraded.append)


async def test_an_allowed_hit_is_one_storage_call_and_a_refusal_one_more():
    storage = CountingStorage()
    throttle = _throttle(storage)
    await throttle.hit(SIGNIN_RATE, "10.0.0.1")
    await throttle.hit(SIGNIN_RATE, "10.0.0.1")
    assert storage.calls == 2
    with pytest.raises(RefusedError) as refused:
        await throttle.hit(SIGNIN_RATE, "10.0.0.1")
    assert storage.calls == 4
    assert refused.value.reason == SIGNIN_RATE
    assert 3590 <= (refused.value.retry_after_s or 0) <= 3600
    assert str(refused.value) == "Too many sign-ins from your address — try again in 60 min"


async def test_a_refused_client_is_refused_again_without_asking_the_storage():
    storage = CountingStorage()
    throttle = _throttle(storage)
    await throttle.hit(WRITE_RATE, "ada")
    for _ in range(2):
        with pytest.raises(RefusedError):
            await throttle.hit(WRITE_RATE, "ada")
    calls = storage.calls
    for _ in range(10):
        with pytest.raises(RefusedError) as refused:
            await throttle.hit(WRITE_RATE, "ada")
        assert (refused.value.retry_after_s or 0) <= 60
    assert storage.calls == calls
    await throttle.hit(WRITE_RATE, "bob")  # each client has its own window


async def test_a_failing_storage_lets_every_hit_through_and_counts_it():
    storage = CountingStorage()
    degraded: list[str] = []
    backend = LimitStorage(storage, timeout_s=1.0)
    throttle = _throttle(storage, degraded, backend)
    storage.down = True
    for _ in range(5):
        await throttle.hit(SIGNIN_RATE, "10.0.0.1")
    assert backend.in_outage
    assert throttle.fail_open_count == 5
    assert degraded == [SIGNIN_RATE] * 5
    storage.down = False
    await throttle.hit(SIGNIN_RATE, "10.0.0.1")
    assert not backend.in_outage
