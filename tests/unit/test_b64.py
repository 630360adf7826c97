"""Snapshots' base64 in pieces: the same text and bytes as the base64 module, and the event loop
runs between pieces (storage/b64.py)."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from pairpilot.storage.b64 import DECODE_PIECE, ENCODE_PIECE, b64decode, b64encode

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "size",
    [0, 1, 2, 3, ENCODE_PIECE - 1, ENCODE_PIECE, ENCODE_PIECE + 1, 3 * ENCODE_PIECE + 2],
)
async def test_pieces_give_what_the_base64_module_gives(size: int):
    data = os.urandom(size)
    text = await b64encode(data)
    assert text == base64.b64encode(data).decode("ascii")
    assert await b64decode(text) == data


async def _loop_turns_during(work: asyncio.Future[object]) -> int:
    turns = 0
    while not work.done():
        turns += 1
        await asyncio.sleep(0)
    return turns


async def test_a_big_state_lets_the_loop_run_between_pieces():
    data = os.urandom(8 * ENCODE_PIECE)
    encoding = asyncio.ensure_future(b64encode(data))
    assert await _loop_turns_during(encoding) >= 7  # one turn at least per piece after the first
    text = encoding.result()
    assert len(text) > 8 * DECODE_PIECE // 2
    decoding = asyncio.ensure_future(b64decode(text))
    assert await _loop_turns_during(decoding) >= len(text) // DECODE_PIECE - 1
    assert decoding.result() == data


async def test_a_small_state_is_done_at_once():
    work = asyncio.ensure_future(b64decode(await b64encode(b"state")))
    assert await _loop_turns_during(work) <= 1
    assert work.result() == b"state"
