"""Daphne: refuse oversized WebSocket messages with a close frame instead of a dropped
connection.

Daphne enforces --websocket-max-message-size (DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE under
runserver) through autobahn, whose server factory defaults to ``failByDrop=True``: a
message over the limit makes autobahn abort the TCP connection, so the client sees 1006
and no reason. With ``failByDrop`` off autobahn performs the closing handshake instead:
close code 1009 (message too big) with the reason, and the application still gets its
``websocket.disconnect`` (code 1009). Daphne has no option for this, so the factory is
adjusted when the ASGI application is imported, which both ``manage.py runserver`` and the
``daphne`` command do before they build their WebSocket factory."""

from __future__ import annotations

import sys

CLOSE_HANDSHAKE_TIMEOUT = 5  # seconds


def close_oversized_messages_cleanly() -> None:
    """Makes Daphne's WebSocket factory fail connections with a close frame (1009 for
    oversized messages). Does nothing in processes that do not run Daphne (uvicorn)."""
    server = sys.modules.get("daphne.server")
    if server is None:
        return
    factory = server.WebSocketFactory
    if getattr(factory, "faceauth_close_cleanly", False):
        return
    reset = factory.resetProtocolOptions

    def reset_without_fail_by_drop(self) -> None:
        reset(self)
        self.failByDrop = False
        # A client still uploading the oversized message reads the close frame only once
        # its send finishes: wait for its close reply longer than autobahn's 1 s.
        self.closeHandshakeTimeout = CLOSE_HANDSHAKE_TIMEOUT

    factory.resetProtocolOptions = reset_without_fail_by_drop
    factory.faceauth_close_cleanly = True
