"""room.updated's debounce on a clock the test moves: one per max_s while edits come, one after
quiet_s without edits, none early."""

from collections.abc import Callable

from pairpilot.webhooks.debounce import RoomUpdates


class Timers:
    """A clock and its timers, moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.due: list[tuple[float, Callable[[], None], Handle]] = []

    def clock(self) -> float:
        return self.now

    def schedule(self, delay: float, call: Callable[[], None]) -> "Handle":
        handle = Handle()
        self.due.append((self.now + delay, call, handle))
        return handle

    def advance(self, to: float) -> None:
        while True:
            ready = sorted(
                (t for t in self.due if t[0] <= to and not t[2].cancelled), key=lambda t: t[0]
            )
            if not ready:
                break
            at, call, handle = ready[0]
            self.due.remove(ready[0])
            self.now = at
            handle.cancelled = True
            call()
        self.now = to


class Handle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def _updates(timers: Timers, announced: list[tuple[float, str]]) -> RoomUpdates:
    return RoomUpdates(
        lambda room, _recorded: announced.append((timers.now, room)),
        quiet_s=2.0,
        max_s=10.0,
        clock=timers.clock,
        schedule=timers.schedule,
    )


def test_a_single_edit_is_announced_once_quiet_s_after_it():
    timers, announced = Timers(), []
    updates = _updates(timers, announced)
    updates.changed("a")
    timers.advance(1.99)
    assert announced == []
    timers.advance(30)
    assert announced == [(2.0, "a")]


def test_edits_without_a_pause_are_announced_every_max_s_and_once_after_they_stop():
    timers, announced = Timers(), []
    updates = _updates(timers, announced)
    at = 0.0
    while at < 25:  # an edit every 0.5 s for 25 s
        timers.advance(at)
        updates.changed("a")
        at += 0.5
    timers.advance(60)
    times = [t for t, _ in announced]
    assert times[:2] == [10.0, 20.0]  # the max bound (the edit at 10.0 came just after the first)
    assert times[2] == 24.5 + 2.0  # the last edit at 24.5, then quiet
    assert len(times) == 3


def test_rooms_are_debounced_apart_and_a_deleted_room_is_not_announced():
    timers, announced = Timers(), []
    updates = _updates(timers, announced)
    updates.changed("a")
    timers.advance(1)
    updates.changed("b")
    updates.changed("c")
    updates.forget("c")
    timers.advance(60)
    assert announced == [(2.0, "a"), (3.0, "b")]


def test_closing_announces_what_is_pending_at_once():
    timers, announced = Timers(), []
    updates = _updates(timers, announced)
    updates.changed("a")
    updates.close()
    timers.advance(60)
    assert announced == [(0.0, "a")]


def test_a_window_is_announced_as_recorded_only_while_its_pending_row_is_stored():
    timers, ended = Timers(), []
    updates = RoomUpdates(
        lambda room, recorded: ended.append((room, recorded)),
        quiet_s=2.0,
        max_s=10.0,
        clock=timers.clock,
        schedule=timers.schedule,
    )
    updates.changed("a")
    updates.changed("b")
    assert updates.unrecorded(["a", "b"]) == ["a", "b"]
    updates.recorded(["a"])
    assert updates.unrecorded(["a", "b"]) == ["b"]
    timers.advance(2.0)
    assert sorted(ended) == [("a", True), ("b", False)]
    assert updates.unrecorded(["a"]) == ["a"]  # the next window stores its own row
    updates.changed("c")
    updates.recorded(["c"])
    updates.forget("c")  # deleted: its row went with the room
    assert updates.unrecorded(["c"]) == ["c"]
