"""The document quota's floor: a room whose texts alone leave no space refuses an upload
without encoding its whole document (guardrails.DocumentQuota, sync/files.text_bytes)."""

from __future__ import annotations

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
