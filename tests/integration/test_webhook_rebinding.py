"""Owners' endpoints are connected to at the addresses that were checked, never a second answer.

A name that answers a public address to one lookup and ``127.0.0.1`` to the next (DNS
rebinding) must not reach the loopback receiver: each connection looks the host up once,
checks every address, and connects to those. The resolver is the test's own, so which answer
comes when is certain.
"""

import ssl
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import httpcore
import pytest
from tests.receiver import Receiver, webhook_receiver
from tests.support import certificates, eventually, new_user

from pairpilot.testing import LiveServer, live_server, quick_settings
from pairpilot.webhooks.network import CheckedBackend, checked_client

pytestmark = pytest.mark.anyio

PUBLIC = "93.184.215.14"


class Rebinding:
    """Answers ``PUBLIC`` to the first ``public`` lookups, ``127.0.0.1`` to every later one."""

    def __init__(self, public: int = 1) -> None:
        self.public = public
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return [PUBLIC] if len(self.asked) <= self.public else ["127.0.0.1"]


class NoInternet(httpcore.AsyncNetworkBackend):
    """Records where connections go; only loopback ones are made (tests reach no internet)."""

    def __init__(self) -> None:
        self.real = httpcore.AnyIOBackend()
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if host != "127.0.0.1":
            raise httpcore.ConnectError(f"{host} is not reachable from the tests")
        return await self.real.connect_tcp(host, port, timeout, local_address, socket_options)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as running:
        yield running


async def test_a_connection_goes_to_the_address_its_one_lookup_checked(receiver: Receiver):
    resolver, network = Rebinding(public=1), NoInternet()
    backend = CheckedBackend(allow_private=False, resolver=resolver, backend=network)
    pool = httpcore.AsyncConnectionPool(network_backend=backend)
    url = f"http://rebind.test:{receiver.port}/hook"
    # The public answer is connected to, at that address: no second lookup to be rebound.
    with pytest.raises(httpcore.ConnectError, match="not reachable"):
        await pool.request("POST", url, content=b"{}")
    assert network.connects == [(PUBLIC, receiver.port)]
    # The next connection's lookup answers loopback: refused before any connection.
    with pytest.raises(httpcore.ConnectError, match="PAIRPILOT_WEBHOOK_ALLOW_PRIVATE"):
        await pool.request("POST", url, content=b"{}")
    assert network.connects == [(PUBLIC, receiver.port)]
    assert resolver.asked == ["rebind.test", "rebind.test"]
    assert receiver.received == []
    await pool.aclose()


async def test_a_plain_http_endpoint_is_reached_with_its_host_name(receiver: Receiver):
    """An allowed (here: loopback) endpoint over http works through the checked client, and the
    request still names the host it was addressed to."""
    async with checked_client(timeout=5, allow_private=True) as client:
        response = await client.post(f"http://localhost:{receiver.port}/hook", content=b"{}")
    assert response.status_code == 204
    (received,) = receiver.received
    assert received.headers["host"] == f"localhost:{receiver.port}"


async def test_https_goes_to_the_checked_address_and_verifies_the_certificate_for_the_name(
    tmp_path: Path,
):
    """Connected to the looked-up address, TLS still sends and checks the URL's host name: a
    certificate for hooks.test is accepted there, and refused for another name (same address)."""
    ca, key, cert = certificates(tmp_path, "DNS:hooks.test")
    resolver = Rebinding(public=0)  # every name answers 127.0.0.1
    backend = CheckedBackend(allow_private=True, resolver=resolver)
    context = ssl.create_default_context(cafile=str(ca))
    async with (
        webhook_receiver(tls=(key, cert)) as receiver,
        httpcore.AsyncConnectionPool(ssl_context=context, network_backend=backend) as pool,
    ):
        url = f"https://hooks.test:{receiver.port}/hook"
        assert (await pool.request("POST", url, content=b"{}")).status == 204
        with pytest.raises(httpcore.ConnectError, match="certificate"):
            await pool.request("POST", f"https://other.test:{receiver.port}/hook", content=b"{}")
    assert resolver.asked == ["hooks.test", "other.test"]
    (received,) = receiver.received
    assert received.headers["host"] == f"hooks.test:{receiver.port}"


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(quick_settings(tmp_path, webhook_retry_first_s=60)) as running:
        yield running


async def test_a_host_rebound_to_loopback_after_registration_is_never_sent_to(
    guarded: LiveServer, receiver: Receiver, room: str
):
    resolver = Rebinding(public=1)  # the registration's check sees a public address
    guarded.services.webhooks.resolver = resolver
    ada = await new_user(guarded.http_url, "Ada")
    assert (await ada.join(room)).status_code == 200
    url = f"http://rebind.test:{receiver.port}/hook"
    made = await ada.call("POST", f"/api/rooms/{room}/webhooks", json={"url": url})
    assert made.status_code == 201, made.text
    bob = await new_user(guarded.http_url, "Bob")
    assert (await bob.join(room)).status_code == 200

    async def refused() -> bool:
        (hook,) = (await ada.call("GET", f"/api/rooms/{room}/webhooks")).json()
        return "PAIRPILOT_WEBHOOK_ALLOW_PRIVATE" in (hook["last_error"] or "")

    await eventually(refused, expected=True, what="the delivery refused")
    assert resolver.asked == ["rebind.test", "rebind.test"]  # the check's, the connection's
    assert receiver.received == []
