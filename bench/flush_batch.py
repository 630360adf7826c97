"""Development probe: the CPU of one flush batch, by part, as fan-out K100 N5 R2 makes it.

    uv run --group bench python bench/flush_batch.py [--rooms 100] [--batches 50]

100 rooms on embedded SQLite (a fresh data dir), 5 sessions each (their sockets record, no
network), 2 sessions editing per room and batch, so a batch holds what 200 ms of K100 brings:
~200 edits in 100 rooms. Each batch runs the flusher's three parts in turn, timed with
``time.process_time`` (every thread of the process: the SQLite thread's work counts):
taking the rooms' pending updates, appending them, and marking the rooms saved (which holds a
"saved" message for each writer). Prints the median of each part in ms per batch.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from pycrdt import Doc, Text

from pairpilot.access.authorizer import Grant
from pairpilot.access.identity import Identity
from pairpilot.storage.migrate import migrate
from pairpilot.sync import protocol
from pairpilot.sync.session import Session, TokenBucket
from pairpilot.testing import quick_settings
from pairpilot.web.services import build_services

WARM_UP = 10


class _Socket:
    def send_frame(self, wire: bytes) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        pass


async def main(rooms_wanted: int, batches: int) -> None:
    services = build_services(quick_settings(Path(tempfile.mkdtemp()), flush_ms=200))
    await migrate(services.store.engine)
    owner = Identity(str(uuid.uuid4()), "bench", {})
    rooms = []
    for index in range(rooms_wanted):
        room_id = f"batch-{index:04d}"
        await services.directory.join(room_id, owner)
        room = await services.registry.acquire(room_id)
        writers = []
        for _ in range(5):
            doc: Doc = Doc()
            session = Session(
                _Socket(),
                room_id=room_id,
                grant=Grant(user_id=owner.user_id, can_write=True),
                rate=TokenBucket(1e9, 1e9),
            )
            room.join(session)
            session.awareness_ids.add(doc.client_id)  # as a stock client's presence does
            writers.append((session, doc))
        rooms.append((room, writers[:2]))
    flusher, parts = services.flusher, []
    for _ in range(batches):
        for room, writers in rooms:
            for session, doc in writers:
                before = doc.get_state()
                doc.get("code", type=Text).insert(0, "ab")
                frame = protocol.sync_update(doc.get_update(before))
                room.receive(session, protocol.decode_message(frame))
        dirty = [room for room, _ in rooms]
        started = time.process_time()
        taken, batch, _ = flusher._take(dirty)  # noqa: SLF001 - the parts of Flusher._write
        took = time.process_time()
        await services.store.append(batch)
        appended = time.process_time()
        for (room, _, state_vector, waiting), _ in zip(taken, batch, strict=True):
            room.mark_saved(state_vector, waiting)
        marked = time.process_time()
        parts.append((took - started, appended - took, marked - appended))
        await asyncio.sleep(0.3)  # the held messages' timer runs, as between real batches
    for index, name in enumerate(["take", "append", "mark saved"]):
        median = statistics.median(part[index] for part in parts[WARM_UP:])
        print(f"flush_batch: {name}: {median * 1000:.2f} ms per batch of {rooms_wanted} rooms")
    await services.registry.close()
    await services.store.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rooms", type=int, default=100)
    ap.add_argument("--batches", type=int, default=50)
    args = ap.parse_args()
    asyncio.run(main(args.rooms, args.batches))
