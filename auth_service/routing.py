"""WebSocket routes of the app (composed in config/asgi.py)."""

from django.urls import re_path

from auth_service.consumers import ProcessImageConsumer, UnknownPathConsumer

WEBSOCKET_PATH = "ws/auth/process-image/{token}/"

websocket_urlpatterns = [
    # Any token shape and length reaches the consumer, so a malformed one gets a JSON error
    # and close code 4004 like an unknown one, instead of a bare refused handshake.
    re_path(r"^ws/auth/process-image/(?P<session_token>[^/]+)/?$", ProcessImageConsumer.as_asgi()),
    # Any other path: the same JSON not_found and 4004, not an HTTP 500 from the router.
    re_path(r"", UnknownPathConsumer.as_asgi()),
]


def websocket_path(token: str) -> str:
    return "/" + WEBSOCKET_PATH.format(token=token)
