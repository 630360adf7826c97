"""The supervisor's restarts: capped exponential backoff, down while waiting, reported once."""

import asyncio

import pytest

from pairpilot import supervisor as supervision
from pairpilot.supervisor import Supervisor

pytestmark = pytest.mark.anyio


class Script:
    """A task that fails ``failures`` times, then runs until cancelled; a recorded clock."""

    def __init__(self, failures: int, *, lasts_s: float = 0.0) -> None:
        self.failures = failures
        self.lasts_s = lasts_s  # how long each run "lasts" on the fake clock before it fails
        self.now = 0.0
        self.delays: list[float] = []
        self.down_while_waiting: list[list[str]] = []
        self.running = asyncio.Event()
        self.sup = Supervisor(
            backoff_first_s=0.1, backoff_max_s=1.0, sleep=self.sleep, clock=lambda: self.now
        )

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        self.down_while_waiting.append(self.sup.down())
        self.now += delay

    async def run(self) -> None:
        self.now += self.lasts_s
        if self.failures:
            self.failures -= 1
            raise RuntimeError("injected")
        self.running.set()
        await asyncio.Event().wait()


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(supervision, "report", lambda _exc, **tags: seen.append(tags["task"]))
    return seen


async def _run_until_up(script: Script) -> asyncio.Task[None]:
    task = script.sup.start("worker", script.run)
    async with asyncio.timeout(10):
        await script.running.wait()
    return task


async def test_restarts_back_off_exponentially_up_to_the_cap(reports: list[str]):
    script = Script(failures=6)
    task = await _run_until_up(script)
    assert script.delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert script.down_while_waiting == [["worker"]] * 6  # /readyz names it while it waits
    assert script.sup.down() == []  # running again
    assert script.sup.restarts == {"worker": 6}
    assert reports == ["worker"]  # reported once, not once per restart
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_task_that_stayed_up_is_reported_again_and_backs_off_from_the_start(
    reports: list[str],
):
    script = Script(failures=3, lasts_s=supervision.STABLE_S + 1)
    task = await _run_until_up(script)
    assert script.delays == [0.1, 0.1, 0.1]
    assert reports == ["worker"] * 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_task_that_returns_is_not_restarted(reports: list[str]):
    runs: list[int] = []

    async def once() -> None:
        runs.append(1)

    sup = Supervisor()
    await sup.start("once", once)
    assert runs == [1]
    assert sup.down() == []
    assert reports == []
