"""Owners' endpoints are connected to at exactly the addresses that were checked.

Checking a URL's host and then letting the HTTP client look it up again to connect leaves a
gap: a name can answer a public address to the check and ``127.0.0.1`` to the connection (DNS
rebinding). So owners' deliveries go through an httpcore network backend that resolves the
host once per connection, refuses it when any address is private (unless the operator allows
them: ``addresses.checked_addresses``), and connects to those very addresses. The request still
names the host: TLS verifies the certificate against it and sends it as SNI, and the ``Host``
header carries it, because httpcore takes both from the URL, not from the connected address.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpcore
import httpx

from pairpilot.errors import BadRequestError
from pairpilot.webhooks.addresses import Resolver, checked_addresses, resolve


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """Connects to a host's checked addresses, never to a second answer of its name."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver = resolve,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._backend = backend or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve ``host`` once, refuse private addresses, connect to the first that answers."""
        try:
            addresses = await checked_addresses(
                host, port, allow_private=self._allow_private, resolver=self._resolver
            )
        except BadRequestError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        failed: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failed = exc
        raise failed or httpcore.ConnectError(f"{host!r} has no address")

    async def connect_unix_socket(
        self,
        path: str,  # noqa: ARG002 - httpcore's signature
        timeout: float | None = None,  # noqa: ARG002, ASYNC109 - the same
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,  # noqa: ARG002
    ) -> httpcore.AsyncNetworkStream:
        """Never: an endpoint is an http(s) URL."""
        raise httpcore.ConnectError("webhooks connect over TCP only")

    async def sleep(self, seconds: float) -> None:
        """As the wrapped backend sleeps."""
        await self._backend.sleep(seconds)


class CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a ``CheckedBackend`` (no proxy from the environment)."""

    def __init__(self, backend: CheckedBackend) -> None:
        super().__init__(trust_env=False)
        # httpx has no argument for the network backend: the pool it made is replaced by the
        # same pool (its defaults, httpx's verified TLS context) over ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=backend
        )


def checked_client(
    *, timeout: float, allow_private: bool, resolver: Resolver = resolve
) -> httpx.AsyncClient:
    """An HTTP client for owners' endpoints: every connection goes to a checked address."""
    backend = CheckedBackend(allow_private=allow_private, resolver=resolver)
    return httpx.AsyncClient(
        transport=CheckedTransport(backend),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
