"""The compaction merge in a worker process: same bytes as here, failures as StorageError."""

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from pycrdt import Doc, Text
from tests.support import kill_the_process, zip_of

from pairpilot.errors import BadRequestError, StorageError
from pairpilot.storage.merging import WORKER_NICE, Merger, encode_document, merge
from pairpilot.sync.transfer import RoomTree, UploadLimits, zip_upload

pytestmark = pytest.mark.anyio


def _snapshot_and_log(keystrokes: int) -> list[bytes]:
    doc: Doc = Doc()
    text = doc.get("code", type=Text)
    text.insert(0, "x" * 5000)
    parts = [doc.get_update()]
    doc.observe(lambda event: parts.append(event.update))
    for i in range(keystrokes):
        text.insert((i * 7919) % len(text), "y")
    return parts


def _worker_pids(merger: Merger) -> list[int]:
    assert merger._pool is not None
    return list(merger._pool._processes or {})


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, just not reaped yet


async def test_a_merge_in_the_worker_gives_the_same_bytes_as_a_merge_here():
    parts = _snapshot_and_log(300)
    merger = Merger(offload_min_bytes=0)
    try:
        merged = await merger.merge(parts, encode=True)
    finally:
        await merger.close()
    assert merger.offloaded == 1
    assert merged.update == merge(parts).update
    assert merged.document == encode_document(merged.update)


async def test_the_worker_runs_below_the_servers_priority_and_the_server_keeps_its_own():
    """It is started from a thread of its own at the worker's priority (Linux: per thread)."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    merger = Merger(offload_min_bytes=0)
    try:
        await merger.merge(_snapshot_and_log(10))
        (pid,) = _worker_pids(merger)
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(before + WORKER_NICE, 19)
    finally:
        await merger.close()
    assert os.getpriority(os.PRIO_PROCESS, 0) == before


async def test_a_small_merge_never_starts_the_worker():
    merger = Merger(offload_min_bytes=1 << 20)
    merged = await merger.merge(_snapshot_and_log(50))
    assert merged.document is None
    assert not merger.started
    assert merger.offloaded == 0


async def test_a_killed_worker_is_a_storage_error_and_the_next_merge_gets_a_new_one():
    parts = _snapshot_and_log(100)
    merger = Merger(offload_min_bytes=0)
    try:
        await merger.merge(parts)
        (pid,) = _worker_pids(merger)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(StorageError, match="worker died"):
            await merger.merge(parts)
        merged = await merger.merge(parts)
        assert _worker_pids(merger) != [pid]
    finally:
        await merger.close()
    assert merged.update == merge(parts).update


async def test_a_merge_the_worker_cannot_do_is_a_storage_error_and_the_worker_stays():
    merger = Merger(offload_min_bytes=0)
    try:
        with pytest.raises(StorageError, match="worker failed"):
            await merger.merge([b"\xff not an update", b"\x00\x01"])
        parts = _snapshot_and_log(10)
        assert (await merger.merge(parts)).update == merge(parts).update
    finally:
        await merger.close()


async def test_close_stops_the_worker():
    merger = Merger(offload_min_bytes=0)
    await merger.merge(_snapshot_and_log(10))
    pids = _worker_pids(merger)
    await merger.close()
    assert not merger.started
    assert pids
    assert not any(_alive(pid) for pid in pids)
    await merger.close()  # twice is harmless


async def test_an_idle_worker_is_stopped_and_the_next_big_merge_starts_another():
    parts = _snapshot_and_log(10)
    merger = Merger(offload_min_bytes=0, idle_stop_s=0.05)
    try:
        await merger.merge(parts)
        (pid,) = _worker_pids(merger)
        for _ in range(200):
            if not merger.started and not _alive(pid):
                break
            await asyncio.sleep(0.05)
        assert not merger.started
        assert not _alive(pid)
        assert (await merger.merge(parts)).update == merge(parts).update
    finally:
        await merger.close()


# A server in miniature: starts the worker with one big merge, prints its pid, then waits.
SERVER = """
import asyncio
from pairpilot.storage.merging import Merger

async def main() -> None:
    merger = Merger(offload_min_bytes=0)
    await merger.merge([b"\\x00\\x00", b"\\x00\\x00"])
    print(list(merger._pool._processes)[0], flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_the_worker_of_a_server_killed_with_sigkill_exits_too():
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, stdout=asyncio.subprocess.PIPE
    )
    assert server.stdout is not None
    worker = int(await asyncio.wait_for(server.stdout.readline(), 60))
    assert _alive(worker)
    server.kill()
    await server.wait()
    for _ in range(100):  # the worker looks at its parent every PARENT_POLL_S
        if not _alive(worker):
            break
        await asyncio.sleep(0.1)
    assert not _alive(worker)


async def test_a_worker_that_dies_mid_job_is_a_storage_error_and_the_next_job_gets_a_new_one():
    merger = Merger()
    try:
        with pytest.raises(StorageError, match="worker died"):
            await merger.run(kill_the_process)
        parts = _snapshot_and_log(10)
        assert (await merger.run(merge, parts)).update == merge(parts).update
    finally:
        await merger.close()


async def test_a_job_refusing_its_input_raises_the_same_error_as_it_would_here():
    limits = UploadLimits(files=2, file_bytes=10, total_bytes=100)
    tree = RoomTree(frozenset(), frozenset())
    merger = Merger()
    try:
        for data in (b"not a zip", zip_of({"a": b"x" * 11}), zip_of({"a/../../b": b""})):
            with pytest.raises(BadRequestError) as here:
                zip_upload(data, limits, tree)
            with pytest.raises(BadRequestError) as there:
                await merger.run(zip_upload, data, limits, tree)
            assert (type(there.value), str(there.value)) == (type(here.value), str(here.value))
    finally:
        await merger.close()
