"""Telling every server process that a client's templates changed, through the channel layer.

``publish`` forgets the client's gallery in this process at once and sends a
``gallery.changed`` event to the group every process joins. Each process with a channel layer
that spans processes (Redis) runs one listener thread: its own event loop and its own layer
instance, subscribed to the group, forgetting the named client's gallery on each event. The
in-memory channel layer lives in one process, so there the local forgetting is all it takes.

Whenever the listener (re)subscribes, every cached gallery is forgotten: events sent while it
was not listening are lost. Cached galleries also expire after FACEAUTH_GALLERY_CACHE_SECONDS,
which bounds staleness if an event is lost anyway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import DEFAULT_CHANNEL_LAYER, InMemoryChannelLayer, channel_layers, get_channel_layer

logger = logging.getLogger(__name__)

GROUP = "faceauth.gallery"
EVENT = "gallery.changed"
# channels_redis drops group members after a day (group_expiry): rejoin well before that.
_REJOIN_SECONDS = 3600.0
_RECEIVE_TIMEOUT_SECONDS = 300.0
_RETRY_SECONDS = 5.0
_SUBSCRIBE_WAIT_SECONDS = 2.0


def spans_processes() -> bool:
    """Whether the configured channel layer reaches other processes."""
    layer = get_channel_layer()
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


class Invalidations:
    """Calls ``forget(client_id)`` in every process when a client's templates change
    (``forget(None)``: forget every client)."""

    def __init__(self, forget: Callable[[str | None], None]) -> None:
        self._forget = forget
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self.subscribed = threading.Event()

    def publish(self, client_id: str) -> None:
        self._forget(client_id)
        if not spans_processes():
            return
        try:
            async_to_sync(get_channel_layer().group_send)(GROUP, {"type": EVENT, "client_id": client_id})
        except Exception:  # the change is committed; other processes catch up by expiry
            logger.warning("could not announce a gallery change of client %s", client_id, exc_info=True)

    def ensure_listening(self) -> None:
        """Starts this process's listener once (when the layer spans processes) and waits
        briefly for it to subscribe, so a gallery loaded next cannot miss an event."""
        if not spans_processes():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self.subscribed.clear()
                self._loop = asyncio.new_event_loop()
                self._task = self._loop.create_task(self._listen())
                self._thread = threading.Thread(
                    target=self._run, name="faceauth-gallery-listener", daemon=True
                )
                self._thread.start()
        self.subscribed.wait(_SUBSCRIBE_WAIT_SECONDS)

    def stop(self) -> None:
        """Stops this process's listener (tests; a server process just exits)."""
        with self._start_lock:
            thread, loop, task = self._thread, self._loop, self._task
            if thread is None or loop is None or task is None:
                return
            loop.call_soon_threadsafe(task.cancel)
            thread.join(10)
            self._thread = None
            self.subscribed.clear()

    def _run(self) -> None:
        loop, task = self._loop, self._task
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)
        loop.close()

    async def _listen(self) -> None:
        while True:
            layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
            try:
                channel = await layer.new_channel()
                await layer.group_add(GROUP, channel)
                joined = time.monotonic()
                self._forget(None)
                self.subscribed.set()
                while True:
                    try:
                        message = await asyncio.wait_for(layer.receive(channel), _RECEIVE_TIMEOUT_SECONDS)
                    except TimeoutError:
                        message = None
                    if message and message.get("type") == EVENT:
                        self._forget(message.get("client_id"))
                    if time.monotonic() - joined > _REJOIN_SECONDS:
                        await layer.group_add(GROUP, channel)
                        joined = time.monotonic()
            except Exception:
                logger.warning("gallery change listener lost the channel layer; retrying", exc_info=True)
                self.subscribed.clear()
                self._forget(None)
                await asyncio.sleep(_RETRY_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await layer.close_pools()  # channels_redis: close this instance's connections
