"""The y-websocket protocol: pure codec, one connection (session), one live document (room)."""
