"""Rights of open sockets follow the database, on every process.

A change of rights (a role changed, a member removed, a room's link access) is applied to this
process's sockets at once and published on the room's bus (an ``ACCESS`` entry naming the
user). Every other process then reads that user's membership again, as at connect, and applies
it to its own sockets: an editor made viewer is read-only from the next frame, a member who is
gone is closed with 4403. The entry names whom to re-check, never what to grant: the database
stays the only source of rights. The same re-read runs for a socket's token renewal, for a join
authorised before a change it could have missed, and for every socket of every live room when
the bus is back from an outage (entries may have been lost meanwhile).

Re-reads go through one task per process, room after room: two reads of one user can never
finish out of order and apply an older role over a newer one, and an outage's re-check of
every socket costs the database one query at a time.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import structlog

from pairpilot.access.policy import Role, can_edit
from pairpilot.errors import NotFoundError, RoomDeletedError, StorageError
from pairpilot.observability.sentry import report

if TYPE_CHECKING:
    from pairpilot.access.authorizer import Authorizer
    from pairpilot.bus.base import RoomBus
    from pairpilot.sync.registry import RoomRegistry

log = structlog.get_logger(__name__)

REVOKED_CODE = 4403  # "not a member": the page stops retrying
DELETED_CODE = 4410
REVOKED_REASON = "you are no longer a member of this room"
RETRY_MAX_S = 5.0
# A room's last change is remembered this long, for joins authorised before it (see joined).
REMEMBER_S = 60.0
EVERYONE = None


class LiveAccess:
    """Applies changes of rights to the open sockets of this process and tells the others."""

    def __init__(self, authorizer: Authorizer, registry: RoomRegistry, bus: RoomBus) -> None:
        self._authorizer = authorizer
        self._registry = registry
        self._bus = bus
        # Rooms to re-check, with the users to re-read (None: every user with a socket).
        self._queue: dict[str, set[str] | None] = {}
        self._changed_at: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        bus.on_access(self.recheck)

    def role_changed(self, room_id: str, user_id: str, role: Role) -> None:
        """The member's role was changed (committed): apply it here now, re-check everywhere."""
        live = self._registry.rooms.get(room_id)
        if live is not None:
            live.set_write_access(user_id, can_write=can_edit(role))
        self.publish_access_change(room_id, user_id)

    def removed(self, room_id: str, user_id: str, reason: str) -> int:
        """The member is gone (committed): close their sockets here (4403) and everywhere."""
        live = self._registry.rooms.get(room_id)
        closed = live.revoke(user_id, REVOKED_CODE, reason) if live is not None else 0
        self.publish_access_change(room_id, user_id)
        return closed

    def publish_access_change(self, room_id: str, user_id: str | None = EVERYONE) -> None:
        """Rights in the room changed in the database: every process re-checks its sockets.

        ``user_id`` None re-checks every user with a socket in the room (a link-access change).
        Call it after the change is committed.
        """
        self.recheck(room_id, user_id)
        self._bus.access_changed(room_id, user_id)

    def recheck(self, room_id: str, user_id: str | None = EVERYONE) -> None:
        """Read the user's membership again (None: every socket's) and apply it, soon."""
        self._changed_at[room_id] = time.monotonic()
        if self._closed:
            return
        self._enqueue(room_id, None if user_id is None else {user_id})
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._drain(), name="access-recheck"
            )

    def joined(self, room_id: str, user_id: str, authorised_at: float) -> None:
        """A socket joined with rights read at ``authorised_at``: re-read them if changed since."""
        if self._changed_at.get(room_id, -1.0) >= authorised_at:
            self.recheck(room_id, user_id)

    async def close(self) -> None:
        """Stop re-checking (shutdown: storage closes next)."""
        self._closed = True
        self._queue.clear()
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _drain(self) -> None:
        delay = 0.1
        try:
            while self._queue and not self._closed:
                room_id = next(iter(self._queue))
                users = self._queue.pop(room_id)
                try:
                    await self._recheck_room(room_id, users)
                except StorageError as exc:  # rights stay as they were; read again later
                    log.warning("membership re-check failed", room_id=room_id, error=str(exc))
                    self._enqueue(room_id, users)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
                else:
                    delay = 0.1
            self._forget_old_changes()
        finally:
            self._task = None

    def _enqueue(self, room_id: str, users: set[str] | None) -> None:
        if room_id in self._queue:
            queued = self._queue[room_id]
            users = None if queued is None or users is None else queued | users
        self._queue[room_id] = users

    async def _recheck_room(self, room_id: str, users: set[str] | None) -> None:
        live = self._registry.rooms.get(room_id)
        if live is None:
            return
        present = {session.user_id for session in live.sessions.values()}
        for user_id in sorted(present if users is None else present & users):
            try:
                can_write = await self._authorizer.can_write(room_id, user_id)
            except RoomDeletedError:
                self._revoke(room_id, user_id, DELETED_CODE, "This room was deleted")
            except NotFoundError:
                self._revoke(room_id, user_id, REVOKED_CODE, REVOKED_REASON)
            except StorageError:
                raise
            except Exception as exc:  # a bug: log it, and let the other users be re-read
                log.error("membership re-check failed", room_id=room_id, exc_info=exc)
                report(exc, task="access-recheck", room_id=room_id, user_id=user_id)
            else:
                room = self._registry.rooms.get(room_id)  # it may have unloaded meanwhile
                if room is not None:
                    room.set_write_access(user_id, can_write=can_write)

    def _revoke(self, room_id: str, user_id: str, code: int, reason: str) -> None:
        room = self._registry.rooms.get(room_id)
        closed = room.revoke(user_id, code, reason) if room is not None else 0
        if closed:
            log.info("sockets closed on re-check", room_id=room_id, code=code, sockets=closed)

    def _forget_old_changes(self) -> None:
        if len(self._changed_at) > 1024:
            oldest = time.monotonic() - REMEMBER_S
            self._changed_at = {r: at for r, at in self._changed_at.items() if at >= oldest}
