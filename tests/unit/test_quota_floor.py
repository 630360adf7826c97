"""The document quota's measures (guardrails.DocumentQuota): a room whose texts alone leave no
space refuses an upload without encoding its whole document (the floor, sync/files.text_bytes),
and a REST write's measure is of the stored document, off the event loop (``settle``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from pairpilot.errors import RefusedError
from pairpilot.guardrails import DocumentQuota
from pairpilot.sync.files import text_bytes


class _Measured:
    """A document stand-in that counts the quota's measures (``get_update``)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.measures = 0

    def get_update(self) -> bytes:
        self.measures += 1
        return b"\0" * self.size


def _quota(doc: Any, bound: int, floor: int) -> DocumentQuota:
    return DocumentQuota(1_000, bound, doc, lambda: floor)


def test_a_floor_past_the_quota_refuses_without_measuring():
    doc = _Measured(size=950)
    with pytest.raises(RefusedError):
        _quota(doc, bound=950, floor=900).check_at_least(200)
    assert doc.measures == 0


def test_a_floor_with_room_left_measures_and_admits():
    doc = _Measured(size=300)  # the bound (950) overstated the document
    quota = _quota(doc, bound=950, floor=100)
    assert quota.check(b"\x01" + b"\0" * 199) == 500
    assert doc.measures == 1


def test_text_bytes_is_a_floor_of_the_encoded_document():
    doc: Doc[Any] = Doc()
    files = doc.get("files", type=Map)
    files["a"] = Text("héllo 😀 wörld " * 500)
    files["b"] = Text("x" * 5_000)
    del files["a"][0:2_000]
    files["c"] = Map()  # not a text: not a file
    floor = text_bytes(doc)
    assert floor == len(str(files["a"]).encode()) + 5_000
    assert floor <= len(doc.get_update())


class _Stored:
    """A measurer of the stored document: answers ``size`` once released, and counts calls."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        self.calls = 0
        self.release = asyncio.Event()
        self.called = asyncio.Event()

    async def __call__(self) -> int | None:
        self.calls += 1
        self.called.set()
        await self.release.wait()
        return self.size


def _settled(bound: int, stored: _Stored, live: _Measured) -> DocumentQuota:
    quota = _quota(live, bound=bound, floor=100)
    quota.measurer = stored
    return quota


@pytest.mark.anyio
async def test_settle_measures_the_stored_document_instead_of_the_live_one():
    live, stored = _Measured(size=300), _Stored(size=300)
    quota = _settled(950, stored, live)
    stored.release.set()
    await quota.settle(200)
    assert (stored.calls, live.measures) == (1, 0)
    assert quota.size == 300
    assert quota.check(b"\x01" + b"\0" * 199) == 500  # no second measure, on the loop or off it
    assert (stored.calls, live.measures) == (1, 0)


@pytest.mark.anyio
async def test_concurrent_settles_share_one_measure_and_count_what_came_in_meanwhile():
    live, stored = _Measured(size=300), _Stored(size=300)
    quota = _settled(950, stored, live)
    waiting = [asyncio.create_task(quota.settle(200)) for _ in range(3)]
    await stored.called.wait()  # the measure runs
    quota.count(40)  # applied while the measure ran: it may not be in what was measured
    stored.release.set()
    await asyncio.gather(*waiting)
    assert stored.calls == 1
    assert quota.size == 340


@pytest.mark.anyio
async def test_a_measure_storage_cannot_make_leaves_the_check_as_it_was():
    live, stored = _Measured(size=300), _Stored(size=None)
    quota = _settled(950, stored, live)
    stored.release.set()
    await quota.settle(200)
    assert quota.size == 950
    assert quota.check(b"\x01" + b"\0" * 199) == 500  # the check measures the live document
    assert live.measures == 1


@pytest.mark.anyio
async def test_settle_measures_only_when_a_measure_could_admit():
    live, stored = _Measured(size=300), _Stored(size=300)
    stored.release.set()
    quota = _settled(500, stored, live)
    await quota.settle(200)  # within the bound: the check admits it as it is
    await quota.settle(950)  # past the floor too: the check refuses it as it is
    assert stored.calls == 0
    quota = _settled(950, stored, live)
    await quota.settle(200)
    await quota.settle(800)  # nothing admitted since the last measure: it would find the same
    assert stored.calls == 1
