"""Memory and resources always come back (Hocuspocus #954 and #1156, y-websocket #23).

The quick run of the soak bench case (``bench/soak.py --quick``: 1,000 room open/close cycles
and 5,000 connect/disconnect cycles, a tenth of the full run, whose figures are in
bench/README.md, "Soak"), against a real server in a process of its own, with bad tokens,
non-members, peers that leave during their join or their room's load, and storage failing
for some rooms while they unload. Run once for the module; each test reads one part of its
report.
"""

from typing import Any

import pytest
from bench.soak import KINDS, OBJECTS, QUICK, run


@pytest.fixture(scope="module")
def soak() -> dict[str, Any]:
    return run(QUICK)


def test_every_connect_got_the_answer_its_kind_expects(soak: dict[str, Any]):
    outcomes = soak["outcomes"]
    per_kind = {kind: QUICK.connects * KINDS.count(kind) // len(KINDS) for kind in set(KINDS)}
    assert soak["connects"] == QUICK.connects
    assert [name for name in outcomes if name.startswith("error")] == []
    for kind, count in per_kind.items():
        assert outcomes[f"connect:{kind}"] == count
    assert outcomes["member: synced"] == per_kind["member"]
    assert outcomes["member-abort: synced"] == per_kind["member-abort"]
    assert outcomes["bad-token: closed 4401"] == per_kind["bad-token"]
    assert outcomes["stranger: closed 4403"] == per_kind["stranger"]


def test_storage_failed_and_only_the_failed_loads_were_refused(soak: dict[str, Any]):
    injected = soak["injected_failures"]
    assert injected.get("append", 0) > 0
    assert injected.get("compact", 0) > 0
    rooms = {name: n for name, n in soak["outcomes"].items() if name.startswith("room:")}
    assert set(rooms) <= {"room: synced and edited", "room: closed 1011"}
    assert rooms.get("room: closed 1011", 0) == injected.get("load", 0)


ROOM_STATE = (
    "live rooms",
    "metrics live rooms",
    "loads in flight",
    "unloads in flight",
    "idle timers",
    "dirty rooms",
    "bus subscriptions",
)


def test_every_room_loaded_was_unloaded_and_nothing_is_in_flight(soak: dict[str, Any]):
    assert soak["cold_room_loads"] >= QUICK.room_cycles
    assert soak["room_loads"] == soak["room_unloads"]
    assert {name: n for name, n in soak["leftovers"].items() if name in ROOM_STATE} == {}


def test_no_socket_or_task_is_left(soak: dict[str, Any]):
    # registry sockets, /metrics pairpilot_open_sockets, the kernel's sockets on the server's
    # port (CLOSE_WAIT would be a socket the server never closed), tasks beyond the server's
    left = {n: v for n, v in soak["leftovers"].items() if n not in OBJECTS + ROOM_STATE}
    assert left == {}


def test_the_server_rss_comes_back_within_its_bound(soak: dict[str, Any]):
    assert soak["rss_growth_mb"] <= QUICK.rss_bound_mb, soak


def test_a_second_round_of_the_same_cycles_adds_almost_nothing(soak: dict[str, Any]):
    # The first round raises the allocator's high-water mark (a live room keeps a presence
    # clock for every client it has seen until it unloads); a leak would grow again.
    assert soak["rss_last_round_mb"] <= QUICK.round_bound_mb, soak


def test_no_room_session_or_connection_object_outlives_the_soak(soak: dict[str, Any]):
    assert {name: n for name, n in soak["leftovers"].items() if name in OBJECTS} == {}
