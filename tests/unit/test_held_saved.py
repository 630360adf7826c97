"""A "saved" message rides with the next frame a socket is sent, or goes alone shortly after.

The holds' timer runs on ``ManualLoop``, a clock the test moves: what is sent when depends on
the hold, never on how promptly this machine's event loop wakes up.
"""

import heapq
import itertools
from collections.abc import Callable

from pycrdt import Doc, Text
from tests.support import RecordingSocket, editor, joined_editors

from pairpilot.bus import LocalBus
from pairpilot.sync import protocol
from pairpilot.sync.protocol import decode_message
from pairpilot.sync.room import Room
from pairpilot.sync.session import SAVED_HOLD_S, SavedHolds, encode_frame


class Timer:
    """A timer of ``ManualLoop``: what asyncio's TimerHandle offers SavedHolds."""

    def __init__(self, when: float, callback: Callable[..., None], args: tuple) -> None:
        self.when, self.callback, self.args = when, callback, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualLoop:
    """The event loop as SavedHolds uses it (time, call_later, call_at), on a manual clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def is_closed(self) -> bool:
        return False

    def call_at(self, when: float, callback: Callable[..., None], *args: object) -> Timer:
        timer = Timer(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[..., None], *args: object) -> Timer:
        return self.call_at(self.now + delay, callback, *args)

    def pending(self) -> int:
        return sum(not timer.cancelled for _, _, timer in self._timers)

    def advance(self, seconds: float) -> None:
        """Move the clock on, each timer firing on time, in deadline order."""
        self._run_until(self.now + seconds, on_time=True)

    def stall(self, seconds: float) -> None:
        """Move the clock on with the loop blocked: the timers due meanwhile fire late, at once."""
        self._run_until(self.now + seconds, on_time=False)

    def _run_until(self, end: float, *, on_time: bool) -> None:
        if not on_time:
            self.now = end
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not timer.cancelled:
                timer.callback(*timer.args)
        self.now = end


def manual_holds() -> tuple[SavedHolds, ManualLoop]:
    """Holds whose timer runs on a ManualLoop (set where the holds keep the loop they found)."""
    holds, loop = SavedHolds(), ManualLoop()
    holds._loop = loop  # type: ignore[assignment]
    return holds, loop


def manual_room() -> tuple[Room, ManualLoop]:
    """A room on the in-process bus whose held messages wait on a ManualLoop."""
    holds, loop = manual_holds()
    room = Room(
        "r", Doc(), bus=LocalBus(), on_update=lambda *_: None, max_awareness_bytes=1024, holds=holds
    )
    return room, loop


def _is_saved(write: bytes) -> bool:
    return protocol.decode_saved(write[2:]) is not None


def test_a_held_message_goes_out_in_the_same_write_as_the_next_frame():
    socket = RecordingSocket()
    session = editor(socket)
    saved = protocol.saved({1: 3}, set())
    session.hold(saved)
    assert socket.writes == []
    update = protocol.sync_update(b"\x00\x00")
    session.send_encoded(encode_frame(update))
    assert socket.writes == [encode_frame(saved) + encode_frame(update)]
    session.release()  # nothing is left to send
    assert len(socket.writes) == 1


def test_a_newer_held_message_replaces_the_older_one():
    socket = RecordingSocket()
    session = editor(socket)
    session.hold(protocol.saved({1: 3}, set()))
    session.hold(protocol.saved({1: 5}, set()))
    session.release()
    assert socket.writes == [encode_frame(protocol.saved({1: 5}, set()))]


def test_a_saved_message_with_nothing_to_ride_with_is_sent_after_the_hold():
    room, loop = manual_room()
    (alice, writer), _ = joined_editors(room, 2)
    doc: Doc = Doc()
    doc.get("code", type=Text).insert(0, "hi")
    room.receive(alice, decode_message(protocol.sync_update(doc.get_update())))
    before = len(writer.writes)
    room.mark_saved(doc.get_state(), [alice])  # what the flusher does after the write
    assert len(writer.writes) == before  # held, not sent yet
    loop.advance(SAVED_HOLD_S - 0.01)
    assert len(writer.writes) == before  # still held just before the hold is over
    loop.advance(0.01)
    assert len(writer.writes) == before + 1
    assert _is_saved(writer.writes[-1])
    assert loop.pending() == 0
    room.close()


def test_a_saved_message_rides_with_an_update_relayed_to_its_socket():
    room, loop = manual_room()
    (alice, writer), (bob, _) = joined_editors(room, 2)
    room.mark_saved(Doc().get_state(), [alice])
    before = len(writer.writes)
    doc: Doc = Doc()
    doc.get("code", type=Text).insert(0, "from bob")
    update = protocol.sync_update(doc.get_update())
    room.receive(bob, decode_message(update))
    assert len(writer.writes) == before + 1  # one write: the saved message, then the update
    assert writer.writes[-1].endswith(encode_frame(update))
    assert protocol.decode_saved(writer.writes[-1][2 : -len(encode_frame(update))]) is not None
    loop.advance(SAVED_HOLD_S * 2)
    assert len(writer.writes) == before + 1  # nothing more: it went with the update
    room.close()


def test_each_held_message_waits_its_own_hold_not_the_rooms_first():
    room, loop = manual_room()
    (alice, alice_socket), (bob, bob_socket) = joined_editors(room, 2)
    alice_before, bob_before = len(alice_socket.writes), len(bob_socket.writes)
    room.mark_saved(Doc().get_state(), [alice])
    loop.advance(SAVED_HOLD_S * 0.6)
    room.mark_saved(Doc().get_state(), [bob])  # held 0.6 holds after alice's
    loop.advance(SAVED_HOLD_S * 0.4)
    assert len(alice_socket.writes) == alice_before + 1  # alice's hold is over
    assert len(bob_socket.writes) == bob_before  # bob's is not: not sent early
    loop.advance(SAVED_HOLD_S * 0.6 - 0.01)
    assert len(bob_socket.writes) == bob_before  # not even just before its hold is over
    loop.advance(0.01)
    assert len(bob_socket.writes) == bob_before + 1
    assert _is_saved(bob_socket.writes[-1])
    room.close()


def test_a_loop_that_wakes_late_sends_what_is_due_and_holds_the_rest():
    room, loop = manual_room()
    (alice, alice_socket), (bob, bob_socket) = joined_editors(room, 2)
    alice_before, bob_before = len(alice_socket.writes), len(bob_socket.writes)
    room.mark_saved(Doc().get_state(), [alice])
    loop.advance(SAVED_HOLD_S * 0.6)
    room.mark_saved(Doc().get_state(), [bob])
    loop.stall(SAVED_HOLD_S * 0.8)  # alice's timer fires late; bob's hold is not over yet
    assert len(alice_socket.writes) == alice_before + 1
    assert len(bob_socket.writes) == bob_before
    loop.advance(SAVED_HOLD_S * 0.2 - 0.01)
    assert len(bob_socket.writes) == bob_before
    loop.advance(0.01)
    assert len(bob_socket.writes) == bob_before + 1
    room.close()


def test_closing_the_holds_sends_what_they_held():
    holds, loop = manual_holds()
    socket = RecordingSocket()
    session = editor(socket)
    saved = protocol.saved({1: 3}, set())
    holds.hold(session, saved)
    assert socket.writes == []
    holds.close()
    assert socket.writes == [encode_frame(saved)]
    assert loop.pending() == 0  # and the timer is gone: nothing twice
    loop.advance(SAVED_HOLD_S * 2)
    assert socket.writes == [encode_frame(saved)]
