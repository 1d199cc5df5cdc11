"""Which web origins may call the API (CORS) and open capture WebSockets.

FACEAUTH_ALLOWED_ORIGINS lists exact origins ("https://app.example.com",
"http://localhost:8080"), "null" for pages opened from file://, or "*" for any (the
development default). The service's own pages (/demo/) are always allowed. WebSocket
handshakes without an Origin header come from non-browser clients (the Python client,
a backend) and are allowed: they carry no ambient credentials, the session token is the
capability."""

from __future__ import annotations

from channels.security.websocket import WebsocketDenier
from django.conf import settings


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def origin_allowed(origin: str, *, host: str | None = None) -> bool:
    """Whether a browser page from ``origin`` may talk to us (``host``: our Host header)."""
    allowed = {normalize_origin(o) for o in settings.FACEAUTH_ALLOWED_ORIGINS}
    origin = normalize_origin(origin)
    if "*" in allowed or origin in allowed:
        return True
    # Same origin (our own /demo/ page): the origin's host:port is the Host we serve.
    return bool(host) and origin.split("://", 1)[-1] == host.lower()


class WebSocketOriginValidator:
    """ASGI middleware refusing WebSocket handshakes from origins that are not allowed."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        origin = headers.get(b"origin")
        host = headers.get(b"host", b"").decode("latin1")
        if origin is None or origin_allowed(origin.decode("latin1"), host=host):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
