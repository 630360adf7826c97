"""Webhooks: room events to operator and owner endpoints, queued in the database, signed."""

from pairpilot.webhooks.delivery import Webhooks
from pairpilot.webhooks.events import EVENT_TYPES, Event
from pairpilot.webhooks.outbox import Endpoint, WebhookOutbox

__all__ = ["EVENT_TYPES", "Endpoint", "Event", "WebhookOutbox", "Webhooks"]
