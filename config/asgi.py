"""ASGI entry point: HTTP through Django, WebSockets through Channels.

Run with `python manage.py runserver` (Daphne) or `daphne config.asgi:application`."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django must be set up before the consumer modules (which import models) are imported.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from auth_service.origins import WebSocketOriginValidator  # noqa: E402
from auth_service.routing import websocket_urlpatterns  # noqa: E402
from auth_service.services.worker import with_background_worker  # noqa: E402
from config.daphne_limits import close_oversized_messages_cleanly  # noqa: E402

close_oversized_messages_cleanly()
# Each process starts its background thread (webhooks, session heartbeats) when it serves
# its first request.
application = with_background_worker(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": WebSocketOriginValidator(URLRouter(websocket_urlpatterns)),
        }
    )
)

if settings.FACEAUTH_WARM_UP_MODELS:
    # The engine pool's first thread loads the face models (its initializer, about 2 s) and
    # the process waits for it before serving: its first frames would otherwise wait for the
    # models, and admission control would take that wait for overload and refuse sessions.
    # Loaded in the main thread instead, OpenVINO's objects made the Daphne dev server crash
    # with SIGSEGV as it exited (tests/e2e/test_restart.py).
    from auth_service.services.frames import engine_executor

    engine_executor().submit(int).result()
