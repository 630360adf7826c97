"""Drives the browser's tree resolver and stock tree peers from the tests."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from pairpilot.sync.tree import Tree

HERE = Path(__file__).parent


class NodeResolver:
    """client/src/tree-model.ts in a Node process, one tree per line."""

    def __init__(self, node: str) -> None:
        self.process = subprocess.Popen(
            [node, str(HERE / "tree_resolver.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def resolve(self, wanted: dict[str, str | None], folders: list[str]) -> Tree:
        assert self.process.stdin
        assert self.process.stdout
        self.process.stdin.write(
            json.dumps({"wanted": list(wanted.items()), "folders": folders}) + "\n"
        )
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, "the Node resolver exited"
        answer = json.loads(line)
        return Tree(files=dict(answer["files"]), folders=answer["folders"])

    def close(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        assert self.process.wait(timeout=30) == 0
        self.process.stdout.close()  # type: ignore[union-attr]


class TreePeer:
    """A running tree_peer.mjs: a stock Yjs client taking tree commands on stdin."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, node: str, ws_base: str, room: str, token: str) -> TreePeer:
        """Start a peer on ``room`` and wait until it has synced."""
        process = await asyncio.create_subprocess_exec(
            node,
            str(HERE / "tree_peer.mjs"),
            ws_base,
            room,
            token,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin"},
        )
        peer = cls(process)
        await peer._line("synced")
        return peer

    async def _line(self, event: str) -> dict[str, Any]:
        assert self.process.stdout
        raw = await asyncio.wait_for(self.process.stdout.readline(), 60)
        assert raw, f"the peer exited before {event!r}"
        found: dict[str, Any] = json.loads(raw)
        assert found["event"] == event, found
        return found

    async def do(self, command: str, **args: object) -> dict[str, Any]:
        """Run one command; the peer's raw state after it, and what it has seen."""
        assert self.process.stdin
        self.process.stdin.write(json.dumps({"do": command, **args}).encode() + b"\n")
        await self.process.stdin.drain()
        return await self._line("ok")

    async def stop(self) -> None:
        """Let the peer exit and check it did so cleanly."""
        assert self.process.stdin
        self.process.stdin.close()
        assert await asyncio.wait_for(self.process.wait(), 30) == 0


def state_vector(encoded: bytes) -> dict[str, int]:
    """A Yjs state vector (lib0 varints: count, then client and clock pairs) as a dict."""
    numbers: list[int] = []
    value = shift = 0
    for byte in encoded:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            numbers.append(value)
            value = shift = 0
    count = numbers[0]
    return {str(numbers[1 + 2 * i]): numbers[2 + 2 * i] for i in range(count)}
