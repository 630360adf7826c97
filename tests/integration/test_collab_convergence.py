"""Several clients per room, several rooms, random concurrent edits: every replica converges."""

import asyncio
import random
from contextlib import AsyncExitStack

import pytest
from pycrdt import Doc, Text

from pairpilot.testing import LiveServer, synced_client, wait_until

pytestmark = pytest.mark.anyio


async def _random_edits(doc: Doc, rng: random.Random, count: int) -> None:
    text = doc.get("code", type=Text)
    for _ in range(count):
        length = len(text)
        if length and rng.random() < 0.3:
            start = rng.randrange(length)
            del text[start : min(length, start + rng.randint(1, 3))]
        else:
            text.insert(rng.randint(0, length), rng.choice(["a", "bc", "x", "\n", "def ", "()"]))
        await asyncio.sleep(rng.random() / 200)


async def _converge(server: LiveServer, rooms: int, clients: int, seed: int) -> None:
    rng = random.Random(seed)
    async with AsyncExitStack() as stack:
        replicas: dict[str, list[Doc]] = {}
        for r in range(rooms):
            room_id = f"conv-{seed}-{r}"
            replicas[room_id] = [
                await stack.enter_async_context(synced_client(await server.member_url(room_id)))
                for _ in range(clients)
            ]
        await asyncio.gather(
            *(
                _random_edits(doc, random.Random(rng.random()), 40)
                for docs in replicas.values()
                for doc in docs
            )
        )

        def room_id_of(docs: list[Doc]) -> str:
            return next(room_id for room_id, d in replicas.items() if d is docs)

        for docs in replicas.values():
            await wait_until(
                lambda docs=docs: len({str(d.get("code", type=Text)) for d in docs}) == 1,
                what="replicas to converge",
            )
            assert len(str(docs[0].get("code", type=Text))) > 0
            room = server.services.registry.rooms[room_id_of(docs)]
            assert str(room.doc.get("code", type=Text)) == str(docs[0].get("code", type=Text))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_two_clients_converge(server: LiveServer, seed: int):
    await _converge(server, rooms=1, clients=2, seed=seed)


@pytest.mark.parametrize("seed", [4, 5])
async def test_five_clients_in_each_of_three_rooms_converge(server: LiveServer, seed: int):
    await _converge(server, rooms=3, clients=5, seed=seed)


async def test_the_server_replica_matches_the_clients(server: LiveServer):
    async with (
        synced_client(await server.member_url("mirror")) as a,
        synced_client(await server.member_url("mirror")) as b,
    ):
        a.get("code", type=Text).insert(0, "print('hi')")
        await wait_until(lambda: str(b.get("code", type=Text)) == "print('hi')")
        room = server.services.registry.rooms["mirror"]
        assert str(room.doc.get("code", type=Text)) == "print('hi')"


async def test_rooms_are_isolated(server: LiveServer):
    async with (
        synced_client(await server.member_url("left")) as left,
        synced_client(await server.member_url("right")) as right,
    ):
        left.get("code", type=Text).insert(0, "only left")
        await wait_until(
            lambda: (
                "left" in server.services.registry.rooms
                and str(server.services.registry.rooms["left"].doc.get("code", type=Text))
                == "only left"
            )
        )
        await asyncio.sleep(0.2)
        assert str(right.get("code", type=Text)) == ""
