"""The gunicorn worker class of the production server (scripts/serve-production.sh).

gunicorn manages the processes (pre-fork, restarts a worker that dies or hangs, graceful
reload and shutdown); each worker is uvicorn running config.asgi:application on its own
event loop. The class fixes what uvicorn would otherwise take from its own defaults:

- the WebSocket message size limit, from FACEAUTH_MAX_MESSAGE_BYTES as under Daphne
  (twice it: the service answers messages between the two limits with a friendlier
  ``message_too_large``); above it the websockets protocol closes with 1009;
- no permessage-deflate: frames are JPEG, which does not compress, and inflating every
  message costs CPU the engine needs (Daphne does not negotiate it either);
- no ASGI lifespan: Django's ASGI handler does not implement it."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker

from config.uvicorn_websockets import ClosingWebSocketProtocol

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def _max_message_bytes() -> int:
    from django.conf import settings

    return settings.DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE


class FaceAuthWorker(UvicornWorker):
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        # uvicorn's websockets-sansio, except that an oversized message gets a close 1009
        # the client receives (config.uvicorn_websockets).
        "ws": ClosingWebSocketProtocol,
        "ws_max_size": _max_message_bytes(),
        "ws_per_message_deflate": False,
        "lifespan": "off",
    }
