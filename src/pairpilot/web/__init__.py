"""HTTP and WebSocket surface: create_app is the single wiring point."""

from pairpilot.web.app import create_app

__all__ = ["create_app"]
