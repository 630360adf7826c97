"""Comment changes reach the room's other pages live, across processes, as a message that a
stock y-websocket client reads and ignores."""

import asyncio
import json
from pathlib import Path

import pytest
from pycrdt import Text
from tests.support import comment_events, new_user, thread_body
from websockets.asyncio.client import connect

from pairpilot.testing import ServerProcess, live_server, quick_settings, synced_client

pytestmark = pytest.mark.anyio

PEER = Path(__file__).parents[1] / "interop" / "peer.mjs"


async def test_every_change_reaches_a_page_on_another_process_and_stock_clients_ignore_it(
    tmp_path, redis_url, room, node
):
    env = {
        "PAIRPILOT_DATA_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        "PAIRPILOT_LOG_LEVEL": "WARNING",
    }
    a = ServerProcess(env)
    a.start()
    try:
        async with live_server(quick_settings(tmp_path, redis_url=redis_url)) as b:
            ada = await new_user(a.http_url, "Ada")
            await ada.join(room)
            bob = await new_user(b.http_url, "Bob")
            await bob.join(room)
            stock = await asyncio.create_subprocess_exec(
                node,
                str(PEER),
                f"ws://127.0.0.1:{b.port}/collab",
                room,
                "comments",
                bob.token,
                stdout=asyncio.subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin", "COMMENTS": "4"},
            )
            assert stock.stdout is not None
            assert (
                json.loads(await asyncio.wait_for(stock.stdout.readline(), 30))["event"] == "synced"
            )
            async with (
                synced_client(b.ws_url(room, bob.token)) as doc,
                connect(b.ws_url(room, bob.token), compression=None) as page,
            ):
                base = f"/api/rooms/{room}/comments"
                thread = (await ada.call("POST", base, json=thread_body())).json()
                reply = (
                    await ada.call("POST", f"{base}/{thread['id']}/replies", json={"body": "<b>"})
                ).json()
                await ada.call("PATCH", f"{base}/{thread['id']}", json={"resolved": True})
                await ada.call("DELETE", f"{base}/{thread['id']}")
                events = await asyncio.wait_for(comment_events(page, 4), 30)
                assert [event["event"] for event in events] == [
                    "thread",
                    "reply",
                    "resolved",
                    "deleted",
                ]
                assert events[0]["thread"] == thread
                assert events[1]["reply"] == reply
                assert events[2]["state"]["resolved"] is True
                assert events[3]["deleted"] == {
                    "thread_id": thread["id"],
                    "comment_id": thread["id"],
                    "deleted": True,
                }
                # The stock client heard the same four, and syncs on as before.
                doc.get("code", type=Text).insert(0, "python after comments\n")
                stdout, _ = await asyncio.wait_for(stock.communicate(), 30)
            final = json.loads(stdout.decode().splitlines()[-1])
            assert stock.returncode == 0, final
            assert final["commentFrames"] == 4
            assert final["errors"] == []
            assert final["closes"] == []
            assert final["synced"] is True
    finally:
        a.kill()
