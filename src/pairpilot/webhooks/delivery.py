"""The webhook service: events in (never blocking), signed deliveries out, retried for a day.

Events are stored with the change that causes them (pairpilot.webhooks.journal): a request
does one small insert in its own transaction and never waits for an endpoint. The
``webhook-delivery`` task (under the process's supervisor) turns ended ``room.updated`` windows
into events, fans events out to the durable queue of deliveries (``WebhookOutbox``), claims
what is due, and sends each
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

from pairpilot.errors import StorageError
from pairpilot.observability.sentry import report
from pairpilot.observability.tracing import span, tag
from pairpilot.webhooks.addresses import Resolver, resolve
from pairpilot.webhooks.debounce import RoomUpdates
from pairpilot.webhooks.journal import EventJournal
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
        self,
        outbox: WebhookOutbox,
        journal: EventJournal,
        settings: Settings,
        metrics: Metrics | None = None,
    ) -> None:
        self.outbox = outbox
        self.journal = journal
        journal.on_committed = self.wake
        self._metrics = metrics
        self._settings = settings
        self._ended: list[tuple[str, bool]] = []  # windows over: (room id, recorded)
        self._late: list[str] = []  # windows that opened with no pending row stored
        # Cached (read each round, and set when an endpoint is made here): with none anywhere,
        # a flush stores no pending row and the debounce keeps nothing.
        self.endpoints_exist = True
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}  # by endpoint
        self._client: httpx.AsyncClient | None = None
        self._checked_client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self.updates = RoomUpdates(
            self._window_ended,
            quiet_s=settings.webhook_debounce_s,
            max_s=settings.webhook_debounce_max_s,
        )
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.resolver: Resolver = resolve  # how owners' endpoints' hosts are looked up

    def wake(self) -> None:
        """Something is due: events stored, an endpoint made (returns at once)."""
        self._wake.set()

    def endpoint_added(self) -> None:
        """An endpoint was made: rooms' edits are worth a pending row from now on."""
        self.endpoints_exist = True
        self._wake.set()  # a round already reading "none" is followed by one that reads it

    def forget(self, room_id: str) -> None:
        """The room was deleted: no ``room.updated`` after its ``room.deleted``."""
        self.updates.forget(room_id)

    # WriteWatcher: the flusher's writes

    def windows(self, room_ids: list[str]) -> list[str]:
        """The rooms whose write must store a pending row: none while no endpoint exists."""
        return self.updates.unrecorded(room_ids) if self.endpoints_exist else []

    def written(self, room_ids: list[str], windows: list[str]) -> None:
        """The flusher stored these rooms' edits: each gets a debounced ``room.updated``."""
        if not self.endpoints_exist and not windows:
            return
        for room_id in room_ids:
            self.updates.changed(room_id)
        stored = set(room_ids)
        self.updates.recorded([room_id for room_id in windows if room_id in stored])
        # A window that ended during the write, then opened again by it, has no row yet.
        late = self.updates.unrecorded(room_ids) if self.endpoints_exist else []
        if late:
            self.updates.recorded(late)
            self._late.extend(late)
            self._wake.set()

    def _window_ended(self, room_id: str, recorded: bool) -> None:  # noqa: FBT001 - a callback
        self._ended.append((room_id, recorded))
        self._wake.set()

    def start(self, supervisor: Supervisor) -> asyncio.Task[None]:
        """Run the delivery loop under ``supervisor`` (``close`` stops it)."""
        self._task = supervisor.start("webhook-delivery", self.run)
        return self._task

    async def close(self) -> None:
        """Announce pending updates, stop sending (shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.updates.close()
        try:
            await self._store_windows()
            while await self.journal.fan_out():
                pass
        except StorageError as exc:  # the rows stay: sent after a restart (or by another)
            log.error("webhook events not queued at shutdown", error=str(exc))
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in (self._client, self._checked_client):
            if client is not None:
                await client.aclose()
        self._client = self._checked_client = None

    async def run(self) -> None:
        """Queue stored events, claim due deliveries, send them; wait for more."""
        settings = self._settings
        await self.outbox.set_operator(settings.webhook_url, settings.webhook_secret)
        while True:
            self._wake.clear()
            self.endpoints_exist = await self.outbox.any_enabled()
            await self._store_windows()
            orphans_due = await self.journal.announce_orphans()
            while await self.journal.fan_out():
                pass
            await self._claim_and_send()
            await self.outbox.sweep()
            due = min(
                (at for at in (await self.outbox.next_due(), orphans_due) if at is not None),
                default=None,
            )
            wait = IDLE_POLL_S if due is None else (due - self.clock()).total_seconds()
            # asyncio.timeout, not wait_for: 3.11's wait_for swallows a cancellation that
            # arrives as the event is set (shutdown announces pending updates just then).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(wait, IDLE_POLL_S))):
                    await self._wake.wait()

    async def _store_windows(self) -> None:
        """Store late windows' rows, then turn ended windows into events (in that order)."""
        if self._late:
            late, self._late = self._late, []
            try:
                await self.journal.open_windows(late)
            except StorageError:
                self._late[:0] = late
                raise
        if self._ended:
            ended, self._ended = self._ended, []
            try:
                await self.journal.announce(ended)
            except StorageError:
                self._ended[:0] = ended
                raise

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

    def _http_client(self, *, checked: bool) -> httpx.AsyncClient:
        """The operator's endpoint's client, or owners' (connected to checked addresses only)."""
        import httpx  # noqa: PLC0415 - only a server that has webhooks to send

        from pairpilot.webhooks.network import checked_client  # noqa: PLC0415 - the same

        timeout = self._settings.webhook_timeout_s
        if not checked:
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
            return self._client
        if self._checked_client is None:
            self._checked_client = checked_client(
                timeout=timeout,
                allow_private=self._settings.webhook_allow_private,
                resolver=self.resolver,
            )
        return self._checked_client

    async def _send(self, delivery: Claimed) -> str | None:
        """POST the delivery, signed; None when the endpoint took it, else what went wrong."""
        import httpx  # noqa: PLC0415 - only a server that has webhooks to send
        from standardwebhooks.webhooks import Webhook  # noqa: PLC0415 - the same

        client = self._http_client(checked=delivery.check_address)
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
            response = await client.post(
                delivery.url, content=delivery.payload.encode(), headers=headers
            )
        except httpx.TimeoutException:
            return f"no answer within {self._settings.webhook_timeout_s:g} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"
