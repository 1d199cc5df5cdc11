"""WebSocket routes of the app (composed in config/asgi.py)."""

from django.urls import re_path

from auth_service.consumers import ProcessImageConsumer

WEBSOCKET_PATH = "ws/auth/process-image/{token}/"

websocket_urlpatterns = [
    # Any token shape reaches the consumer, so a malformed one gets a JSON error and close
    # code 4004 like an unknown one, instead of a bare refused handshake.
    re_path(r"^ws/auth/process-image/(?P<session_token>[^/]{1,256})/?$", ProcessImageConsumer.as_asgi()),
]


def websocket_path(token: str) -> str:
    return "/" + WEBSOCKET_PATH.format(token=token)
