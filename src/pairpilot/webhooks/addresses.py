"""Where a room owner's webhook may point: http(s) only, and not inside the server's network.

A webhook makes the server send requests to an address someone typed: without a guard, a room
owner could have it call the cloud's metadata service or an internal admin page (SSRF). So an
owner's endpoint must be an ``http`` or ``https`` URL whose host resolves only to public
addresses: loopback, private, link-local, shared, multicast and reserved ranges are refused,
unless the operator allows them (``PAIRPILOT_WEBHOOK_ALLOW_PRIVATE``). The check runs when the
endpoint is registered and again at every connection a delivery opens, on the very addresses
the connection then goes to (pairpilot.webhooks.network): a name that answers a public address
to the check and a private one a moment later (DNS rebinding) is never asked twice. The
operator's own endpoint is trusted and not checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from pairpilot.errors import BadRequestError

MAX_URL_LENGTH = 2048
# Looks a host up: its addresses, in the order to try them.
Resolver = Callable[[str, int], Awaitable[list[str]]]


def check_url(url: str) -> tuple[str, int]:
    """The URL's host and port, or BadRequestError when it is no http(s) URL."""
    if len(url) > MAX_URL_LENGTH:
        raise BadRequestError(f"a webhook URL has at most {MAX_URL_LENGTH} characters")
    if any(c < " " or c == "\x7f" for c in url):  # PostgreSQL's text holds no NUL, either
        raise BadRequestError("a webhook URL may not hold control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadRequestError(f"not a URL: {exc}") from exc
    if parts.scheme not in {"http", "https"}:
        raise BadRequestError("a webhook URL must start with http:// or https://")
    if not parts.hostname:
        raise BadRequestError("a webhook URL must name a host")
    if parts.username or parts.password:
        raise BadRequestError("a webhook URL may not carry a user name or password")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    """The host's addresses (the system resolver, off the event loop), each once, in order."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


async def checked_addresses(
    host: str, port: int, *, allow_private: bool, resolver: Resolver = resolve
) -> list[str]:
    """The host's addresses, resolved once; BadRequestError if any is private (unless allowed)."""
    try:
        addresses = await resolver(host, port)
    except (OSError, UnicodeError, ValueError) as exc:  # unknown, not IDNA, a NUL in it
        raise BadRequestError(f"the webhook's host {host[:100]!r} does not resolve") from exc
    private = sorted(a for a in addresses if not _public(a))
    if (private or not addresses) and not allow_private:
        raise BadRequestError(
            f"the webhook's host {host!r} is a loopback or private address ({', '.join(private)}):"
            " refused unless the operator sets PAIRPILOT_WEBHOOK_ALLOW_PRIVATE"
        )
    return addresses


async def check_address(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> None:
    """BadRequestError unless ``url`` is http(s) and (unless allowed) reaches only public IPs."""
    host, port = check_url(url)
    if not allow_private:
        await checked_addresses(host, port, allow_private=False, resolver=resolver)
