"""One live document, its sockets and its presence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from pycrdt import Awareness, Doc

from pairpilot.bus import Persistence, RoomBus
from pairpilot.errors import ProtocolError, RefusedError
from pairpilot.guardrails import BACKLOG, DocumentQuota
from pairpilot.observability.metrics import Metrics
from pairpilot.sync import protocol
from pairpilot.sync.protocol import (
    EMPTY_UPDATE,
    AwarenessUpdate,
    Message,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
)
from pairpilot.sync.session import SavedHolds, Session, encode_frame

log = structlog.get_logger(__name__)

OnUpdate = Callable[["Room", bytes], None]
# Awareness frames a room remembers having relayed, to know their echoes: a room's clients
# renew their presence every 15 s, and the echoes of a renewal come back within milliseconds.
RELAYED_AWARENESS_KEPT = 10
UNLIMITED = 1 << 62  # a room built without a quota (tests, tools)
# Presence a socket may introduce: a page has one document (one client id); a reconnect within
# one socket never needs another. Bounds the fake participants one socket can add.
MAX_AWARENESS_IDS = 8
# Client ids a connection's sync step 2 may add to its "saved" messages (Session.restored_ids).
MAX_RESTORED_IDS = 8


def _reported(session: Session) -> set[int]:
    """The client ids a "saved" message to ``session`` names (none: every id).

    The first one a socket gets names every id, once: its page may wait for edits of its device
    that reached the room first through another socket (another tab of the room, offline too),
    which neither its presence nor its own sync names. Later ones name its own ids only, so a
    busy room's "saved" messages stay a few bytes whatever the room's history.
    """
    if not session.named_all:
        session.named_all = True
        return set()
    if not session.awareness_ids:
        return set()
    return session.awareness_ids | session.restored_ids


class AwarenessDropped(Exception):  # noqa: N818 - a verdict, not an error to report
    """A session's awareness frame touches presence it does not own: drop it (``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RemoteProcess:
    """The origin of presence relayed from another process (its bus id)."""

    id: bytes


class Room:
    """A live room: one pycrdt Doc, the sessions editing it, and their awareness states.

    Every frame a room sends goes through the bus, so a bus that spans processes reaches every
    replica. Applied updates are handed to ``on_update`` (the flusher) for durable storage.
    """

    def __init__(
        self,
        room_id: str,
        doc: Doc[Any],
        *,
        bus: RoomBus,
        on_update: OnUpdate,
        max_awareness_bytes: int,
        metrics: Metrics | None = None,
        holds: SavedHolds | None = None,
    ) -> None:
        self.id = room_id
        self.doc = doc
        self.sessions: dict[int, Session] = {}
        # Callers between Registry.acquire and release (a request mid-change, a socket): an
        # idle unload never drops a room someone still holds.
        self.borrowers = 0
        self.pending: list[bytes] = []
        # The bytes of ``pending``, and their bound: past it (storage is down) edits are
        # refused until a write succeeds (the registry sets the configured bound).
        self.pending_bytes = 0
        self.max_pending_bytes = UNLIMITED
        self.log_bytes = 0
        self.log_count = 0
        self.snapshot_bytes = 0
        self.updated_at: float | None = None
        # Version history: when the last version was made (epoch s), and whether updates came
        # in since (the flusher and the registry decide checkpoints from these).
        self.versioned_at = time.time()
        self.unversioned = False
        # A batch of this room's updates is being written (taken from ``pending``), and where
        # the bus was when it was taken.
        self.writing = False
        self._taken_at: str | None = None
        # Updates applied here were dropped (another process was to write them): the next write
        # from here is the whole document. Writing only what came in since, with this replica's
        # state vector as "saved", told clients edits were stored that no process had written
        # (a Redis outage makes every process write; tests/integration/test_chaos.py).
        self._partial = False
        # The clocks storage is known to hold (this process's writes and the persister's).
        self.stored_clocks: dict[int, int] = {}
        self._bus = bus
        self._on_update = on_update
        self._max_awareness_bytes = max_awareness_bytes
        self._metrics = metrics
        self._holds = holds if holds is not None else SavedHolds()
        self._relayed_awareness: dict[bytes, None] = {}  # the newest last (_remember_relayed)
        self.awareness = Awareness(doc)
        # The document quota (the registry sets the configured one when it loads the room).
        self.quota = DocumentQuota(UNLIMITED, 0, doc)
        # Held from an upload's last look at the room's files to its last piece applied: the
        # pieces of two uploads never interleave (web/transfer.py).
        self.bulk = asyncio.Lock()
        # Awareness client ids that came from each other process (its id), see drop_process.
        self._remote_presence: dict[bytes, set[int]] = {}
        # Who introduced each awareness client id: a local session or another process (its
        # id). Only that owner may change or remove the id's presence (see _check_owner).
        self._owners: dict[int, Session | bytes] = {}
        # The server is not a participant: it has no presence of its own.
        self.awareness.set_local_state(None)
        self.awareness.observe(self._track_awareness_owner)
        bus.subscribe(room_id, self)

    def join(self, session: Session) -> None:
        """Add a session and greet it with the server's state vector and everyone's presence."""
        self.sessions[session.id] = session
        self._send(session, protocol.sync_step1(self.doc.get_state()))
        if self.awareness.states:
            self._send(session, self._encode_awareness(list(self.awareness.states)))

    def leave(self, session: Session) -> None:
        """Remove a session and tell the others that its presence is gone."""
        if self.sessions.pop(session.id, None) is None:
            return
        gone = [cid for cid in session.awareness_ids if cid in self.awareness.states]
        if gone:
            self.awareness.remove_awareness_states(gone, origin=None)
            self._bus.publish(self.id, self._encode_awareness(gone), None)
        for client in session.awareness_ids:  # its ids are free again (a reconnect takes them)
            if self._owners.get(client) is session:
                del self._owners[client]

    def receive(self, session: Session, message: Message) -> None:
        """Act on one decoded message from a session; ProtocolError if its content is invalid."""
        if isinstance(message, SyncStep1):
            self._send(session, protocol.sync_step2(self._diff_for(message.state_vector)))
        elif isinstance(message, SyncUpdate):
            self._accept_update(session, message.update, message.frame)
        elif isinstance(message, SyncStep2):
            before = self.doc.get_state()
            self._accept_update(session, message.update, None)
            self._note_restored(session, before)
        elif isinstance(message, AwarenessUpdate):
            self._accept_awareness(session, message)
        elif isinstance(message, QueryAwareness):
            self._send(session, self._encode_awareness(list(self.awareness.states)))

    def deliver(self, frame: bytes, origin: int | None) -> None:
        """Send a frame to every local session except ``origin`` (bus callback).

        The WebSocket frame is encoded once and the same bytes go to every socket.
        """
        if len(self.sessions) <= (origin in self.sessions):
            return  # nobody to send it to: a big upload's frame is not even encoded
        wire = encode_frame(frame)
        sent = 0
        for session_id, session in self.sessions.items():
            if session_id != origin:
                session.send_encoded(wire)
                sent += 1
        if sent and self._metrics is not None:
            self._metrics.traffic.count_out(frame, sent)

    def _send(self, session: Session, frame: bytes) -> None:
        session.send(frame)
        if self._metrics is not None:
            self._metrics.traffic.count_out(frame)

    def apply_remote(self, frame: bytes, process: bytes = b"") -> None:
        """Apply a frame from another process's replica and pass it to the local sockets.

        Presence it brings is remembered as ``process``'s, to be dropped if that process dies.
        A comments message (web/comments.py) is only passed on.
        """
        if protocol.is_comments_changed(frame):
            self.deliver(frame, None)
            return
        try:
            message = protocol.decode_message(frame)
            if isinstance(message, SyncUpdate | SyncStep2):
                self.quota.count(len(message.update))  # admitted by the process it came from
                self._apply(message.update)
            elif isinstance(message, AwarenessUpdate):
                if not self._apply_awareness(message.update, RemoteProcess(process)):
                    return  # this replica had it already
                self._remember_relayed(frame)
            else:
                return
        except (ProtocolError, RuntimeError, IndexError, ValueError, TypeError) as exc:
            log.warning("bad frame from another replica", room_id=self.id, error=repr(exc))
            return
        self.deliver(frame, None)

    def state_vector(self) -> bytes:
        """The document's state vector."""
        return self.doc.get_state()

    def catch_up(self, state_vector: bytes) -> list[bytes]:
        """What a replica at ``state_vector`` lacks: a document update and every presence."""
        frames: list[bytes] = []
        try:
            update = self.doc.get_update(state_vector)
        except ValueError:
            update = self.doc.get_update()
        if update != EMPTY_UPDATE:
            frames.append(protocol.sync_update(update))
        if self.awareness.states:
            frames.append(self._encode_awareness(list(self.awareness.states)))
        return frames

    def apply_update(self, update: bytes) -> None:
        """Apply an update that did not come from a session (REST merge, restore, upload).

        RefusedError (413 room_full) when it would take the room past its quota, (503) when
        updates waiting for storage or Redis are at their bound.
        """
        self.refuse_if_backlogged()
        self.quota.check(update)
        self._apply(update)
        self.quota.count(len(update))  # counted once applied: bytes that fail to apply are not
        self._bus.publish(self.id, protocol.sync_update(update), None)

    async def apply_pieces(self, pieces: Sequence[bytes]) -> None:
        """Apply an upload's updates in order, the event loop running between them.

        Refused as :meth:`apply_update` refuses their sum, before any is applied; counted
        whole then, so edits in between cannot take the room the later pieces were admitted
        into. Each piece is stored and relayed as it is applied: a server stopped midway keeps
        the files applied so far (its caller got no answer). Pieces come from
        sync/transfer.py's ``files_updates``: applying them cannot fail.
        """
        self.refuse_if_backlogged()
        length = sum(len(piece) for piece in pieces)
        self.quota.check_at_least(length)
        self.quota.count(length)
        for index, piece in enumerate(pieces):
            if index:
                await asyncio.sleep(0)  # the other rooms' frames go out between the pieces
            self._apply(piece)
            self._bus.publish(self.id, protocol.sync_update(piece), None)

    def _diff_for(self, state_vector: bytes) -> bytes:
        try:
            return self.doc.get_update(state_vector)
        except ValueError as exc:
            raise ProtocolError(f"bad state vector: {exc}") from exc

    def take_pending(self) -> tuple[list[bytes], bytes, list[Session]]:
        """Hand the pending updates to a write.

        Returns them, the state vector they bring the room to, and the sessions to tell once
        they are stored.
        """
        updates, self.pending = self.pending, []
        self.pending_bytes = 0
        if self._partial:  # the returned state vector must not claim what nobody wrote
            updates, self._partial = [self.doc.get_update()], False
        self.writing = True
        self._taken_at = self._bus.position(self.id)
        waiting = [session for session in self.sessions.values() if session.unsaved]
        for session in waiting:
            session.unsaved = False
        return updates, self.doc.get_state(), waiting

    def return_pending(self, updates: list[bytes], waiting: list[Session]) -> None:
        """A write of ``take_pending``'s updates failed: keep them for the next one."""
        self.pending[:0] = updates
        self.pending_bytes += sum(len(update) for update in updates)
        self.writing = False
        for session in waiting:
            session.unsaved = True

    def persistence(self) -> Persistence:
        """Whether this process writes the room's updates now (the bus's lease decides)."""
        return self._bus.persistence(self.id)

    @property
    def partial(self) -> bool:
        """Updates applied here were dropped for another process to write (see ``__init__``)."""
        return self._partial

    def fenced(self) -> None:
        """The store refused the fence: another process writes the room now."""
        self._partial = True  # the refused batch's updates were dropped
        self._bus.fenced(self.id)

    def drop_pending(self) -> None:
        """Another process persists the room: forget the updates (they are in the stream)."""
        self.pending = []
        self.pending_bytes = 0
        self._partial = True

    def became_persister(self) -> None:
        """The room is now written here: store everything it has (a no-op merge if stored)."""
        self._on_update(self, self.doc.get_update())
        self._partial = False

    def stored_elsewhere(self, state_vector: bytes) -> None:
        """The persister stored the room up to ``state_vector``: tell the sessions waiting."""
        clocks = protocol.decode_state_vector(state_vector)
        self._remember_stored(clocks)
        for session in self.sessions.values():
            if session.unsaved:
                self._hold_saved(session, clocks)
                session.unsaved = not self._covered(clocks, _reported(session))

    def stored_covers_doc(self) -> bool:
        """Whether storage holds everything this replica has (by insertions)."""
        clocks = protocol.decode_state_vector(self.doc.get_state())
        return all(self.stored_clocks.get(client, 0) >= clock for client, clock in clocks.items())

    def _ack_if_stored(self, session: Session) -> None:
        """Tell a peer that brought nothing new that all is saved, if the room is stored."""
        here = self._bus.persistence(self.id).here
        if here and not self.pending and not self.writing:
            clocks = protocol.decode_state_vector(self.doc.get_state())
        elif not here and self.stored_covers_doc():
            clocks = self.stored_clocks
        else:
            session.unsaved = True  # the next write (or the persister's) tells it
            return
        session.unsaved = False
        self._send(session, protocol.saved(clocks, _reported(session)))

    def _remember_stored(self, clocks: dict[int, int]) -> None:
        for client, clock in clocks.items():
            if clock > self.stored_clocks.get(client, 0):
                self.stored_clocks[client] = clock

    def _covered(self, clocks: dict[int, int], clients: set[int]) -> bool:
        mine = protocol.decode_state_vector(self.doc.get_state())
        wanted = clients or set(mine)
        return all(clocks.get(client, 0) >= mine.get(client, 0) for client in wanted)

    def mark_saved(self, state_vector: bytes, waiting: list[Session]) -> None:
        """The updates up to ``state_vector`` are stored: tell the sessions that sent them."""
        self.writing = False
        self._bus.persisted(self.id, self._taken_at)
        self._bus.stored(self.id, state_vector)
        clocks = protocol.decode_state_vector(state_vector)
        self._remember_stored(clocks)
        if not self.pending:  # nothing came in since: everything this room has is stored
            for session in self.sessions.values():
                if session.unsaved and session not in waiting:
                    session.unsaved = False
                    waiting.append(session)
        for session in waiting:
            if session.id in self.sessions:
                self._hold_saved(session, clocks)

    def _hold_saved(self, session: Session, clocks: dict[int, int]) -> None:
        message = protocol.saved(clocks, _reported(session))
        self._holds.hold(session, message)
        if self._metrics is not None:
            self._metrics.traffic.count_out(message)

    def _note_restored(self, session: Session, before: bytes) -> None:
        """Remember the clients whose edits the session's step 2 brought first (once per socket).

        A page that restored a copy kept on its device (client/README.md) sends an earlier
        page's edits, under that page's client id; the "saved" message must name that id for
        the page to see them stored. At most MAX_RESTORED_IDS ids, of clocks the room lacked.
        """
        was = protocol.decode_state_vector(before)
        now = protocol.decode_state_vector(self.doc.get_state())
        ahead = [client for client, clock in now.items() if clock > was.get(client, 0)]
        session.restored_ids.update(ahead[: MAX_RESTORED_IDS - len(session.restored_ids)])

    def _accept_update(self, session: Session, update: bytes, frame: bytes | None) -> None:
        if update == EMPTY_UPDATE:  # a sync's empty step 2: nothing to refuse, even a viewer's
            self._ack_if_stored(session)
            return
        if not session.can_write:
            self._send(
                session, protocol.permission_denied("read-only: your role cannot edit this room")
            )
            return
        self.refuse_if_backlogged()  # RefusedError (close 1013): storage or Redis is behind
        self.quota.check(update)  # RefusedError (close 4413) before anything is applied
        session.unsaved = True
        started = time.perf_counter()
        self._apply(update)
        self.quota.count(len(update))
        self._bus.publish(self.id, frame or protocol.sync_update(update), session.id)
        if self._metrics is not None:
            self._metrics.fanout_seconds.observe(time.perf_counter() - started)

    def refuse_if_backlogged(self) -> None:
        """RefusedError(BACKLOG) while updates waiting for storage or Redis are at their bound.

        Nothing is applied then: the client keeps its edit and sends it again when it
        reconnects (close 1013), so nothing acknowledged is dropped and memory stays bounded.
        """
        if self.pending_bytes >= self.max_pending_bytes:
            raise RefusedError(BACKLOG, "edits wait for storage: try again later")
        if self._bus.backlogged():
            raise RefusedError(BACKLOG, "edits wait for the other servers: try again later")

    def _apply(self, update: bytes) -> None:
        try:
            self.doc.apply_update(update)
        except ValueError as exc:
            raise ProtocolError(f"not a Yjs update: {exc}") from exc
        self.updated_at = time.time()
        self._on_update(self, update)

    def _accept_awareness(self, session: Session, message: AwarenessUpdate) -> None:
        if message.frame in self._relayed_awareness:
            return  # an echo (see below), byte for byte: not news, so not even read
        if len(message.update) > self._max_awareness_bytes:
            raise ProtocolError("awareness update over the size limit")
        try:
            news = self._apply_awareness(message.update, session)
        except (RuntimeError, IndexError, ValueError, TypeError) as exc:
            raise ProtocolError(f"bad awareness update: {exc}") from exc
        except AwarenessDropped as dropped:  # not applied, not relayed; the socket stays
            if self._metrics is not None:
                self._metrics.awareness_dropped.labels(dropped.reason).inc()
            return
        # Relayed to the sender too: that is what keeps a lone client's connection alive.
        # Only news is relayed, as the reference server does: a stock client re-sends every
        # awareness update it receives, so each renewal comes back from every other client in
        # the room with a clock the room already has; relaying those would multiply the traffic
        # by the room's size.
        if news:
            self._remember_relayed(message.frame)
            self._bus.publish(self.id, message.frame, None)

    def _remember_relayed(self, frame: bytes) -> None:
        """Keep the last few awareness frames relayed: their echoes are dropped on sight.

        A stock client re-encodes what it received from the same clock and state, so its echo
        is the relayed frame's bytes; a frame equal to one already applied is never news (its
        clocks are not newer than the room's), so dropping it changes nothing but the cost.
        """
        relayed = self._relayed_awareness
        relayed[frame] = None
        if len(relayed) > RELAYED_AWARENESS_KEPT:
            del relayed[next(iter(relayed))]

    def _apply_awareness(self, update: bytes, origin: Session | RemoteProcess) -> bool:
        """Apply an awareness update if it tells the room anything new; True when it did.

        News is pycrdt's rule (a newer clock, or a removal at the same clock), decided on the
        clocks alone: the echoes of a renewal cost no JSON parsing and are not applied at all.
        A session's news about a client id it may not change raises AwarenessDropped (nothing
        of the update is applied); an echo of another's presence is not news, so it passes.
        """
        meta, states = self.awareness.meta, self.awareness.states
        news = False
        claimed = 0  # ids this frame introduces
        for client, clock, has_state in protocol.awareness_clocks(update):
            known = meta.get(client)
            current = 0 if known is None else known["clock"]
            if current < clock or (current == clock and not has_state and client in states):
                if isinstance(origin, Session):
                    claimed += self._check_owner(origin, client, claimed)
                news = True
        if news:
            self.awareness.apply_awareness_update(update, origin)
        return news

    def _check_owner(self, session: Session, client: int, claimed: int) -> bool:
        """AwarenessDropped unless ``session`` may set or remove ``client``'s presence.

        True when the id is new to the session (``claimed`` others are, in the same frame).

        A session owns the ids it introduced: ids nobody owned when it first sent them (up to
        MAX_AWARENESS_IDS). An id owned by another process's replica, or by a socket of another
        user, cannot be taken over; one of the same user's sockets can (a page that reconnected
        before its old socket was seen to close).
        """
        owner = self._owners.get(client)
        if owner is session:
            return False
        if owner is None:
            if len(session.awareness_ids) + claimed >= MAX_AWARENESS_IDS:
                raise AwarenessDropped("too_many_ids")
            return True
        if isinstance(owner, Session) and owner.user_id == session.user_id:
            return True
        raise AwarenessDropped("not_owner")

    def _encode_awareness(self, client_ids: list[int]) -> bytes:
        return protocol.awareness(self.awareness.encode_awareness_update(client_ids))

    def _track_awareness_owner(self, topic: str, event: tuple[dict[str, Any], Any]) -> None:
        changes, origin = event
        if topic != "update":
            return
        owners = self._owners
        owner: Session | bytes
        if isinstance(origin, Session):
            owner, owned = origin, origin.awareness_ids
        elif isinstance(origin, RemoteProcess) and origin.id:
            owner, owned = origin.id, self._remote_presence.setdefault(origin.id, set())
        else:  # the server removed presence (a socket or a process gone): the ids are free
            for client in changes["removed"]:
                owners.pop(client, None)
            return
        for client in (*changes["added"], *changes["updated"]):
            previous = owners.get(client)
            if previous is not owner:
                self._disown(previous, client)
                owners[client] = owner
                owned.add(client)
        if isinstance(origin, RemoteProcess):  # a session keeps its ids until it leaves
            for client in changes["removed"]:
                owned.discard(client)
                if owners.get(client) == owner:
                    del owners[client]

    def _disown(self, previous: Session | bytes | None, client: int) -> None:
        if isinstance(previous, Session):
            previous.awareness_ids.discard(client)
        elif previous is not None:
            self._remote_presence.get(previous, set()).discard(client)

    def drop_process(self, process: bytes) -> None:
        """Another process died: remove the presence its sockets had, for the local sockets.

        Every surviving process does the same for its own sockets, so nothing is relayed.
        """
        owned = self._remote_presence.pop(process, set())
        gone = [client for client in owned if client in self.awareness.states]
        if gone:
            self.awareness.remove_awareness_states(gone, origin=None)
            self.deliver(self._encode_awareness(gone), None)
        for client in owned:
            if self._owners.get(client) == process:
                del self._owners[client]

    def set_write_access(self, user_id: str, *, can_write: bool) -> None:
        """Apply a role change to the user's open sessions at once."""
        for session in self.sessions.values():
            if session.user_id == user_id:
                session.can_write = can_write

    def revoke(self, user_id: str, code: int, reason: str) -> int:
        """Close every session of ``user_id`` with ``code`` (a removed member); how many."""
        gone = [session for session in self.sessions.values() if session.user_id == user_id]
        for session in gone:  # closing leaves the room: not while iterating its sessions
            session.close(code, reason)
        return len(gone)

    def close(self) -> None:
        """Detach from the bus; the room is being unloaded."""
        self._bus.unsubscribe(self.id)

    def delete(self, code: int, reason: str) -> int:
        """The room was deleted: forget its unwritten updates, close every socket; how many."""
        self.pending = []
        self.pending_bytes = 0
        self._partial = False
        gone = list(self.sessions.values())
        for session in gone:  # closing leaves the room: not while iterating its sessions
            session.close(code, reason)
        return len(gone)
