"""Traces to an OTLP/HTTP collector of the test's own: the spans the issue names, with ids as
attributes and never a token or document content."""

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from pycrdt import Text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.receiver import webhook_receiver
from tests.support import User

from pairpilot.testing import ServerProcess, serving, synced_client, wait_until

pytestmark = pytest.mark.anyio


@dataclass
class Collector:
    """What an OTLP/HTTP collector received: raw bodies and spans (name, attributes)."""

    port: int = 0
    bodies: list[bytes] = field(default_factory=list)
    spans: list[tuple[str, dict]] = field(default_factory=list)

    def named(self, name: str) -> list[dict]:
        return [attributes for found, attributes in self.spans if found == name]


def _value(any_value) -> object:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    received = Collector()

    async def traces(request: Request) -> Response:
        body = await request.body()
        received.bodies.append(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    received.spans.append((span.name, attributes))
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )

    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    async with serving(uvicorn.Server(config)) as port:
        received.port = port
        yield received


async def test_requests_sockets_loads_flushes_compactions_restores_and_webhooks_are_traced(
    collector: Collector, tmp_path: Path
):
    async with webhook_receiver() as hooks:
        env = {
            "PAIRPILOT_DATA_DIR": str(tmp_path),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "PAIRPILOT_FLUSH_MS": "50",
            "PAIRPILOT_IDLE_UNLOAD_MS": "200",
            "PAIRPILOT_WEBHOOK_URL": hooks.url,
            "PAIRPILOT_WEBHOOK_SECRET": "whsec_" + "A" * 32,
            "PAIRPILOT_LOG_LEVEL": "WARNING",
        }
        server = ServerProcess(env)
        await asyncio.to_thread(server.start, 120)
        try:
            async with httpx.AsyncClient(base_url=server.http_url) as client:
                signed = (await client.post("/api/auth/anonymous", json={"name": "Ada"})).json()
            ada = User(server.http_url, signed["access_token"], signed["user"]["id"], "Ada")
            room = f"traced-{secrets.token_hex(4)}"
            assert (await ada.join(room)).status_code == 200
            async with synced_client(server.ws_url(room, ada.token)) as doc:
                doc.get("code", type=Text).insert(0, "print('private words')")
                await wait_until(lambda: bool(collector.named("flush")), what="a flush span")
            named = await ada.call("POST", f"/api/rooms/{room}/versions", json={"name": "v1"})
            assert named.status_code == 201
            version = named.json()["id"]
            restore = await ada.call("POST", f"/api/rooms/{room}/versions/{version}/restore")
            assert restore.status_code == 200, restore.text
            wanted = {
                "POST /api/rooms/{room_id}/join",
                "websocket.connect",
                "room.load",
                "flush",
                "compaction",
                "restore",
                "webhook.delivery",
            }
            await wait_until(
                lambda: wanted <= {name for name, _ in collector.spans},
                timeout=60,
                what=f"spans {wanted - {name for name, _ in collector.spans}}",
            )
        finally:
            await asyncio.to_thread(server.stop)
    (join,) = collector.named("POST /api/rooms/{room_id}/join")
    assert join["enduser.id"] == ada.id
    assert join["pairpilot.room_id"] == room
    assert join["http.response.status_code"] == 200
    connect = collector.named("websocket.connect")[0]
    assert connect == {"pairpilot.room_id": room, "enduser.id": ada.id}
    assert collector.named("room.load")[0]["pairpilot.room_id"] == room
    assert collector.named("restore")[0]["pairpilot.version_id"] == version
    assert all(span["pairpilot.room_id"] == room for span in collector.named("webhook.delivery"))
    everything = b"".join(collector.bodies)
    assert ada.token.encode() not in everything
    assert ada.token.split(".")[2].encode() not in everything  # not even the signature
    assert b"private words" not in everything
    assert b"Ada" not in everything  # names are content too
