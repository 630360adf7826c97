"""The log rows of one flush (sync/flusher.rows_of): a room's small updates folded into one row,
a big one (an upload) written as it is, never merged with others on the event loop."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Text

from pairpilot.storage.store import fold
from pairpilot.sync import flusher
from pairpilot.sync.flusher import FOLD_MAX_BYTES, rows_of


def _updates(*sizes: int) -> tuple[Doc, list[bytes]]:
    doc: Doc = Doc()
    text = doc.get("code", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for size in sizes:
        text.insert(len(text), "x" * size)
    return doc, updates


def _state(rows: list[bytes]) -> str:
    doc: Doc = Doc()
    for row in rows:
        doc.apply_update(row)
    return str(doc.get("code", type=Text))


@pytest.fixture
def folds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The total size of every fold the flusher makes."""
    sizes: list[int] = []

    def counted(updates: list[bytes]) -> bytes:
        sizes.append(sum(map(len, updates)))
        return fold(updates)

    monkeypatch.setattr(flusher, "fold", counted)
    return sizes


def test_small_updates_are_one_folded_row(folds: list[int]):
    doc, updates = _updates(10, 20, 30)
    rows = rows_of(updates)
    assert len(rows) == 1
    assert _state(rows) == str(doc.get("code", type=Text))
    assert folds == [sum(map(len, updates))]


def test_big_updates_get_rows_of_their_own_and_are_never_folded(folds: list[int]):
    doc, updates = _updates(10, FOLD_MAX_BYTES, 20, FOLD_MAX_BYTES)
    rows = rows_of(updates)
    assert len(rows) == 3  # the two small ones folded, each big one as it came
    assert rows[1:] == [update for update in updates if len(update) >= FOLD_MAX_BYTES]
    assert _state(rows) == str(doc.get("code", type=Text))
    assert max(folds) < FOLD_MAX_BYTES


def test_a_single_update_is_its_own_row(folds: list[int]):
    _, updates = _updates(FOLD_MAX_BYTES * 2)
    assert rows_of(updates) == updates
    assert folds == []
