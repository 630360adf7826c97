"""The webhook service: events in (never blocking), signed deliveries out, retried for a day.

``emit`` only appends to a list and wakes the ``webhook-delivery`` task (under the process's
supervisor): requests and rooms never wait for the database or an endpoint. That task writes
the events to the durable queue (``WebhookOutbox``), claims what is due, and sends each
endpoint's claimed deliveries in order in a task of the endpoint's own (at most
``MAX_IN_FLIGHT`` endpoints at once, one batch per endpoint at a time), so a slow or failing
endpoint holds up nothing but itself. A delivery is signed per the
Standard Webhooks spec (``standardwebhooks``: ``webhook-id``, ``webhook-timestamp``,
``webhook-signature``); a 2xx answer delivers it; anything else (another status, a timeout, a
refused connection) schedules it again after an exponential backoff, until ``retry_for_s``
after the event, when the endpoint is disabled with the reason its owner then sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from pairpilot.errors import BadRequestError, StorageError
from pairpilot.observability.sentry import report
from pairpilot.observability.tracing import span, tag
from pairpilot.webhooks.addresses import check_address
from pairpilot.webhooks.debounce import RoomUpdates
from pairpilot.webhooks.events import (
    ROOM_DELETED,
    Event,
    member_joined,
    member_left,
    room_created,
    room_deleted,
    room_updated,
    version_created,
)
from pairpilot.webhooks.outbox import Claimed, WebhookOutbox

if TYPE_CHECKING:
    import httpx

    from pairpilot.observability.metrics import Metrics
    from pairpilot.settings import Settings
    from pairpilot.supervisor import Supervisor

log = structlog.get_logger(__name__)

MAX_IN_FLIGHT = 32  # endpoints sent to at once
CLAIM_BATCH = 16  # deliveries claimed at a time
# Beyond the request's own timeout: how long a claim outlives the send before another process
# may take the delivery (a process killed mid-send).
CLAIM_MARGIN_S = 30.0
# With nothing queued, the queue is looked at this often anyway (another process's retries).
IDLE_POLL_S = 30.0
MAX_ERROR_CHARS = 300


def backoff_s(attempt: int, first_s: float, max_s: float) -> float:
    """Seconds before retry ``attempt`` (1, 2, …): doubling from ``first_s``, capped, jittered."""
    wait: float = min(max_s, first_s * 2.0 ** (attempt - 1))
    return wait * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not a secret


class Webhooks:
    """Events from the rooms and the API to every endpoint that wants them."""

    def __init__(
        self, outbox: WebhookOutbox, settings: Settings, metrics: Metrics | None = None
    ) -> None:
        self.outbox = outbox
        self._metrics = metrics
        self._settings = settings
        self._events: list[Event] = []
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}  # by endpoint
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self.updates = RoomUpdates(
            lambda room_id: self.emit(room_updated(room_id)),
            quiet_s=settings.webhook_debounce_s,
            max_s=settings.webhook_debounce_max_s,
        )
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def emit(self, event: Event) -> None:
        """Queue ``event`` for delivery (returns at once; the delivery task stores it)."""
        self._events.append(event)
        self._wake.set()

    def joined(self, room_id: str, user_id: str, role: str) -> None:
        """A new membership; the owner's of a room its join created: ``room.created`` first."""
        if role == "owner":  # only creating a room makes an owner by joining
            self.emit(room_created(room_id, user_id))
        self.emit(member_joined(room_id, user_id, role))

    def left(self, room_id: str, user_id: str) -> None:
        """A member left or was removed."""
        self.emit(member_left(room_id, user_id))

    def deleted(self, room_id: str, by: str) -> None:
        """The room was deleted: its last event (its endpoints retire once it is sent)."""
        self.updates.forget(room_id)
        self.emit(room_deleted(room_id, by))

    def version_made(self, room_id: str, version_id: int, kind: str, author_id: str | None) -> None:
        """A named version or restore point was written."""
        self.emit(version_created(room_id, version_id, kind, author_id))

    def rooms_written(self, room_ids: list[str]) -> None:
        """The flusher stored these rooms' edits: each gets a debounced ``room.updated``."""
        for room_id in room_ids:
            self.updates.changed(room_id)

    def start(self, supervisor: Supervisor) -> asyncio.Task[None]:
        """Run the delivery loop under ``supervisor`` (``close`` stops it)."""
        self._task = supervisor.start("webhook-delivery", self.run)
        return self._task

    async def close(self) -> None:
        """Announce pending updates, store what was emitted, stop sending (shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.updates.close()
        try:
            await self._store_events()
        except StorageError as exc:
            log.error(
                "webhook events not stored at shutdown", error=str(exc), lost=len(self._events)
            )
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run(self) -> None:
        """Store events, claim due deliveries, send them; wait for more."""
        settings = self._settings
        await self.outbox.set_operator(settings.webhook_url, settings.webhook_secret)
        while True:
            self._wake.clear()
            await self._store_events()
            await self._claim_and_send()
            await self.outbox.sweep()
            due = await self.outbox.next_due()
            wait = IDLE_POLL_S if due is None else (due - self.clock()).total_seconds()
            # asyncio.timeout, not wait_for: 3.11's wait_for swallows a cancellation that
            # arrives as the event is set (shutdown announces pending updates just then).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(wait, IDLE_POLL_S))):
                    await self._wake.wait()

    async def _store_events(self) -> None:
        if not self._events:
            return
        events, self._events = self._events, []
        try:
            await self.outbox.enqueue(events)
        except StorageError:
            self._events[:0] = events  # kept in order for the next try
            raise
        for event in events:
            if event.type == ROOM_DELETED:
                await self.outbox.room_deleted(event.room_id)

    async def _claim_and_send(self) -> None:
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            return
        # Each endpoint's rows go one after another (in the order of their events), so the
        # claim must outlast them all.
        timeout = self._settings.webhook_timeout_s
        lease = timedelta(seconds=timeout * CLAIM_BATCH + CLAIM_MARGIN_S)
        by_endpoint: dict[str, list[Claimed]] = {}
        for delivery in await self.outbox.claim(CLAIM_BATCH, lease, set(self._in_flight)):
            by_endpoint.setdefault(delivery.endpoint_id, []).append(delivery)
        for endpoint_id, deliveries in by_endpoint.items():
            task = asyncio.create_task(self._deliver_all(deliveries), name="webhook-send")
            self._in_flight[endpoint_id] = task
            task.add_done_callback(functools.partial(self._sent, endpoint_id))

    def _sent(self, endpoint_id: str, task: asyncio.Task[None]) -> None:
        if self._in_flight.get(endpoint_id) is task:
            del self._in_flight[endpoint_id]
        self._wake.set()  # its endpoint may take the next ones now
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.error("webhook delivery failed unexpectedly", exc_info=error)
            report(error, task="webhook-delivery")  # type: ignore[arg-type]

    async def _deliver_all(self, deliveries: list[Claimed]) -> None:
        for delivery in deliveries:
            await self._deliver(delivery)

    async def _deliver(self, delivery: Claimed) -> None:
        attempt = delivery.attempts + 1
        where = {"room_id": delivery.room_id, "webhook_id": delivery.endpoint_id}
        with span("webhook.delivery", attempt=attempt, **where):
            error = await self._send(delivery)
            tag(delivered=error is None)
        try:
            if error is None:
                self._count("delivered")
                await self.outbox.delivered(delivery)
                return
            age = self.clock() - delivery.created_at
            if age.total_seconds() >= self._settings.webhook_retry_for_s:
                reason = (
                    f"disabled after failing for {age.total_seconds() / 3600:.1f} h "
                    f"({delivery.attempts + 1} attempts); last error: {error}"
                )
                log.warning("webhook disabled", endpoint_id=delivery.endpoint_id, reason=reason)
                self._count("disabled")
                await self.outbox.disable(delivery, reason[:MAX_ERROR_CHARS])
                return
            settings = self._settings
            wait = backoff_s(
                delivery.attempts + 1, settings.webhook_retry_first_s, settings.webhook_retry_max_s
            )
            self._count("retried")
            log.info(
                "webhook delivery failed; retrying",
                endpoint_id=delivery.endpoint_id,
                room_id=delivery.room_id,
                error=error,
                retry_s=round(wait, 1),
            )
            await self.outbox.retry(delivery, error, self.clock() + timedelta(seconds=wait))
        except StorageError as exc:  # the claim runs out and the delivery is tried again
            log.error(
                "webhook outcome not stored", error=str(exc), endpoint_id=delivery.endpoint_id
            )

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.webhook_deliveries.labels(outcome).inc()

    async def _send(self, delivery: Claimed) -> str | None:
        """POST the delivery, signed; None when the endpoint took it, else what went wrong."""
        import httpx  # noqa: PLC0415 - only a server that has webhooks to send
        from standardwebhooks.webhooks import Webhook  # noqa: PLC0415 - the same

        if delivery.check_address:
            try:
                await check_address(
                    delivery.url, allow_private=self._settings.webhook_allow_private
                )
            except BadRequestError as exc:
                return str(exc)[:MAX_ERROR_CHARS]
        if self._client is None:
            timeout = self._settings.webhook_timeout_s
            self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        now = self.clock()
        signature = Webhook(delivery.secret).sign(delivery.event_id, now, delivery.payload)
        headers = {
            "content-type": "application/json",
            "user-agent": "PairPilot-Webhooks",
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        try:
            response = await self._client.post(
                delivery.url, content=delivery.payload.encode(), headers=headers
            )
        except httpx.TimeoutException:
            return f"no answer within {self._settings.webhook_timeout_s:g} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"
