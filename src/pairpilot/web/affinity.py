"""Room affinity between the workers of `serve --workers N`: a room's sockets meet in one process.

The kernel spreads connections over the workers' SO_REUSEPORT sockets at random, so without
this nearly every room is open on several workers, which then share it through Redis (a frame
crossing processes waits for the bus's batch). Here each room has a *home* worker, a stable hash
of its id modulo N. A worker that reads an upgrade request for a room whose home is another
worker passes the connection on before answering anything: the socket's file descriptor
(SCM_RIGHTS) and the request bytes it has read, as one message on the home worker's Unix socket
``worker-{index}.sock`` in the run's private directory. Then it lets go of its own copy without
writing a byte (closing one of two descriptors of a socket sends no FIN; nothing here ever calls
``shutdown``). The home worker replays the request into a ``CollabConnection`` of its own, and
from then on the connection is an ordinary one of that worker.

When the home cannot take it (its socket gone or refusing: restarting, stopped, backed up) the
receiving worker serves the connection itself and the bus keeps the room correct, as without
affinity. Each such fallback is counted (``pairpilot_room_handoff_fallbacks_total{reason}``) and
logged with its reason. Only plain TCP sockets are passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from pairpilot.observability.metrics import Metrics

log = structlog.get_logger(__name__)

# An upgrade request larger than this (headers included) is served where it landed. uvicorn's
# HTTP parsers accept far less in practice; a Unix SEQPACKET message must fit the send buffer.
HANDOFF_MAX_BYTES = 64 * 1024
# Messages read per wake-up of a channel before the loop serves other callbacks.
RECEIVE_BATCH = 64
LISTEN_BACKLOG = 128
# What a failed send or connect means for the fallback's reason.
_UNREACHABLE = {
    errno.ENOENT,
    errno.ECONNREFUSED,
    errno.EPIPE,
    errno.ECONNRESET,
    errno.ENOTCONN,
}
_BUSY = {errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS}


def home_of(room_id: str, workers: int) -> int:
    """The index of the worker a room's sockets belong to: the same in every process and run."""
    digest = hashlib.blake2b(room_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % workers


def socket_path(directory: Path, index: int) -> Path:
    """Where worker ``index`` takes connections passed on by the others."""
    return directory / f"worker-{index}.sock"


@dataclass(frozen=True, slots=True)
class WorkerPlace:
    """Which worker this process is, of how many, and the run's private directory."""

    index: int
    count: int
    directory: Path


class _Fallback(Exception):  # noqa: N818 - a reason to serve here, not an error
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# The home worker's side: a socket and the request bytes read from it, to serve from now on.
Adopt = Callable[[socket.socket, bytes], None]


class RoomAffinity:
    """A worker's half of room affinity: pass connections home, and take them in."""

    def __init__(self, place: WorkerPlace, metrics: Metrics) -> None:
        self.place = place
        self._metrics = metrics
        self._channels: dict[int, socket.socket] = {}  # home index -> connected socket
        self._listener: socket.socket | None = None
        self._accepted: set[socket.socket] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._adopt: Adopt | None = None

    # the receiving worker

    def pass_on(self, transport: asyncio.Transport, request: bytes, room_id: str) -> bool:
        """Hand the connection to the room's home worker; False when it is to be served here.

        ``request`` is every byte read from the socket so far. On True the caller must close its
        transport without writing anything.
        """
        home = home_of(room_id, self.place.count)
        if home == self.place.index:
            return False
        try:
            fd = _plain_tcp_fd(transport)
            if len(request) > HANDOFF_MAX_BYTES:
                raise _Fallback("request_too_large")  # noqa: TRY301 - one way out, see below
            self._send(home, request, fd)
        except _Fallback as fallback:
            self._metrics.handoff_fallbacks.labels(fallback.reason).inc()
            log.warning(
                "room connection served off its home worker",
                reason=fallback.reason,
                room_id=room_id[:80],
                home=home,
                worker=self.place.index,
            )
            return False
        self._metrics.handoffs.labels("passed").inc()
        return True

    def _send(self, home: int, request: bytes, fd: int) -> None:
        for attempt in (1, 2):  # a home restarted since the channel was made: connect again
            channel = self._channel(home)
            try:
                socket.send_fds(channel, [request], [fd], socket.MSG_NOSIGNAL)
            except OSError as exc:
                if exc.errno in _BUSY:  # kept: a new channel would go round the back-pressure
                    raise _Fallback("home_busy") from exc
                self._drop_channel(home)
                if attempt == 2 or exc.errno not in _UNREACHABLE:
                    raise _Fallback(_reason(exc)) from exc
            else:
                return

    def _channel(self, home: int) -> socket.socket:
        channel = self._channels.get(home)
        if channel is not None:
            return channel
        channel = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        channel.settimeout(0.0)  # the event loop's thread: a busy home is a fallback
        try:
            channel.connect(str(socket_path(self.place.directory, home)))
        except OSError as exc:
            channel.close()
            raise _Fallback(_reason(exc)) from exc
        self._channels[home] = channel
        return channel

    def _drop_channel(self, home: int) -> None:
        channel = self._channels.pop(home, None)
        if channel is not None:
            channel.close()

    # the home worker

    def listen(self, loop: asyncio.AbstractEventLoop, adopt: Adopt) -> None:
        """Take connections from the other workers on this worker's Unix socket."""
        path = socket_path(self.place.directory, self.place.index)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a previous run of this worker's (killed, restarted)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            listener.bind(str(path))
            listener.listen(LISTEN_BACKLOG)
        except OSError:
            listener.close()
            raise
        listener.settimeout(0.0)
        self._loop, self._adopt, self._listener = loop, adopt, listener
        loop.add_reader(listener.fileno(), self._accept)
        log.info("room affinity on", worker=self.place.index, workers=self.place.count)

    def close(self) -> None:
        """Stop taking connections (the others serve theirs themselves) and drop the channels."""
        loop, listener = self._loop, self._listener
        if loop is not None and listener is not None:
            loop.remove_reader(listener.fileno())
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                socket_path(self.place.directory, self.place.index).unlink()
            for channel in self._accepted:
                loop.remove_reader(channel.fileno())
                channel.close()
        self._listener = None
        self._accepted.clear()
        for home in list(self._channels):
            self._drop_channel(home)

    def _accept(self) -> None:
        assert self._loop is not None  # noqa: S101 - listening
        assert self._listener is not None  # noqa: S101
        while True:
            try:
                channel, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            channel.settimeout(0.0)
            self._accepted.add(channel)
            self._loop.add_reader(channel.fileno(), self._receive, channel)

    def _receive(self, channel: socket.socket) -> None:
        assert self._loop is not None  # noqa: S101 - listening
        assert self._adopt is not None  # noqa: S101
        for _ in range(RECEIVE_BATCH):
            try:
                request, fds, flags, _address = socket.recv_fds(channel, HANDOFF_MAX_BYTES, 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("room affinity channel failed", exc_info=exc)
                request, fds, flags = b"", [], 0
            if not request and not fds:  # the other worker closed its end
                self._loop.remove_reader(channel.fileno())
                self._accepted.discard(channel)
                channel.close()
                return
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 1:
                for fd in fds:  # never happens with a sender of this module's
                    socket.close(fd)
                continue
            self._metrics.handoffs.labels("received").inc()
            self._adopt(socket.socket(fileno=fds[0]), request)


def _plain_tcp_fd(transport: asyncio.Transport) -> int:
    """The descriptor of a plain TCP socket behind ``transport`` (TLS or anything else: none)."""
    sock = transport.get_extra_info("socket")
    if (
        transport.get_extra_info("sslcontext") is not None
        or sock is None
        or sock.family not in (socket.AF_INET, socket.AF_INET6)
        or sock.type != socket.SOCK_STREAM
    ):
        raise _Fallback("not_plain_tcp")
    fd: int = sock.fileno()
    return fd


def _reason(error: OSError) -> str:
    if error.errno in _UNREACHABLE:
        return "home_unreachable"
    if error.errno in _BUSY:
        return "home_busy"
    return "error"
