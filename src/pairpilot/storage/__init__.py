"""Durable rooms: a RoomStore port and its SQL adapter (SQLite and PostgreSQL)."""

from pairpilot.storage.store import RoomStore, StoredRoom

__all__ = ["RoomStore", "StoredRoom"]
