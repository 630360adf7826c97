"""Traces to an OTLP/HTTP collector of the test's own: the spans the issue names, with ids as
attributes and never a token or document content."""

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families
from pycrdt import Text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.receiver import webhook_receiver
from tests.support import User, new_user
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pairpilot.testing import ServerProcess, free_port, serving, synced_client, wait_until

pytestmark = pytest.mark.anyio


@dataclass
class Collector:
    """What an OTLP/HTTP collector received: raw bodies and spans (name, attributes)."""

    port: int = 0
    bodies: list[bytes] = field(default_factory=list)
    spans: list[tuple[str, dict]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # every span event's name
    services: set[str] = field(default_factory=set)  # the resources' service.name

    def named(self, name: str) -> list[dict]:
        return [attributes for found, attributes in self.spans if found == name]


def _value(any_value) -> object:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
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
            described = {a.key: _value(a.value) for a in resource.resource.attributes}
            received.services.add(str(described.get("service.name")))
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    received.spans.append((span.name, attributes))
                    received.events.extend(event.name for event in span.events)
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
    socket_span = collector.named("websocket.connect")[0]
    assert socket_span == {
        "pairpilot.room_id": room,
        "enduser.id": ada.id,
        "pairpilot.outcome": "authorized",
    }
    assert collector.named("room.load")[0]["pairpilot.room_id"] == room
    assert collector.named("room.load")[0]["pairpilot.bytes"] >= 0
    flush = next(s for s in collector.named("flush") if room in s["pairpilot.room_ids"])
    assert flush["pairpilot.updates"] >= 1
    assert flush["pairpilot.bytes"] > 0
    compaction = next(s for s in collector.named("compaction") if s["pairpilot.room_id"] == room)
    assert compaction["pairpilot.bytes"] > 0
    assert collector.named("restore")[0]["pairpilot.version_id"] == version
    assert all(span["pairpilot.room_id"] == room for span in collector.named("webhook.delivery"))
    everything = b"".join(collector.bodies)
    assert ada.token.encode() not in everything
    assert ada.token.split(".")[2].encode() not in everything  # not even the signature
    assert b"private words" not in everything
    assert b"Ada" not in everything  # names are content too


def _env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "PAIRPILOT_DATA_DIR": str(tmp_path),
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "PAIRPILOT_FLUSH_MS": "50",
        "PAIRPILOT_LOG_LEVEL": "WARNING",
        **extra,
    }


@asynccontextmanager
async def _serving(tmp_path: Path, endpoint: str, **extra: str) -> AsyncIterator[ServerProcess]:
    """`pairpilot serve` exporting to ``endpoint``; stopped (its last spans sent) after."""
    server = ServerProcess(_env(tmp_path, endpoint, **extra))
    await asyncio.to_thread(server.start, 120)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)  # bounded: tracing gives up after 5 s


async def _spans_counted(server: ServerProcess, outcome: str) -> float:
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        scraped = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(scraped):
        for sample in family.samples:
            if sample.name == "pairpilot_spans_total" and sample.labels == {"outcome": outcome}:
                return sample.value
    return 0.0


async def _wait_until_counted(server: ServerProcess, outcome: str) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    while await _spans_counted(server, outcome) < 1:
        assert asyncio.get_running_loop().time() < deadline, f"no {outcome} span counted"
        await asyncio.sleep(0.1)


async def test_a_refused_socket_is_traced_with_its_close_code_and_no_message(
    collector: Collector, tmp_path: Path
):
    endpoint = f"http://127.0.0.1:{collector.port}"
    async with _serving(tmp_path, endpoint, OTEL_SERVICE_NAME="pairpilot-eu") as server:
        async with connect(server.ws_url("refused-room", "not.a.token")) as websocket:
            with pytest.raises(ConnectionClosed) as closed:
                await websocket.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4401
        await wait_until(lambda: bool(collector.named("websocket.connect")), timeout=60)
        await _wait_until_counted(server, "exported")
    (refused,) = collector.named("websocket.connect")
    assert refused["pairpilot.outcome"] == "refused"
    assert refused["pairpilot.close_code"] == 4401
    assert refused["error.type"] == "UnauthenticatedError"
    assert "enduser.id" not in refused  # the token named nobody
    assert collector.events == []  # no exception event: its message could quote the input
    assert b"not.a.token" not in b"".join(collector.bodies)
    assert collector.services == {"pairpilot-eu"}


async def test_a_collector_that_is_down_costs_nothing_visible(tmp_path: Path):
    nobody = f"http://127.0.0.1:{free_port()}"  # the exporter retries 10 s a batch there
    async with _serving(tmp_path, nobody) as server:
        ada = await new_user(server.http_url, "Ada")
        assert (await ada.join("dark-room")).status_code == 200
        async with synced_client(server.ws_url("dark-room", ada.token)) as doc:
            doc.get("code", type=Text).insert(0, "still works")
        async with synced_client(server.ws_url("dark-room", ada.token)) as again:
            await wait_until(lambda: str(again.get("code", type=Text)) == "still works")
        assert (await ada.call("GET", "/readyz")).status_code == 200
        await _wait_until_counted(server, "failed")  # what an operator sees
        assert await _spans_counted(server, "exported") == 0


async def test_the_spans_still_queued_are_exported_when_the_server_stops(
    collector: Collector, tmp_path: Path
):
    # Batches every 10 minutes: what arrives was sent by the stop.
    endpoint = f"http://127.0.0.1:{collector.port}"
    async with _serving(tmp_path, endpoint, OTEL_BSP_SCHEDULE_DELAY="600000") as server:
        ada = await new_user(server.http_url, "Ada")
        assert (await ada.join("stopping-room")).status_code == 200
        assert collector.spans == []
    assert collector.named("POST /api/rooms/{room_id}/join")
