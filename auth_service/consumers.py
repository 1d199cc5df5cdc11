"""The capture WebSocket: ws(s)://HOST/ws/auth/process-image/{session_token}/.

Thin by design: it parses messages (protocol), gates and processes frames (services.frames,
in the engine thread pool), and persists through services.sessions (database thread). One
socket owns one session; frames are handled strictly in order, and a lock keeps the
deadline watchdog and a cancel from interleaving with a frame.

Messages are taken off the socket as they arrive and queued (``INBOX_SIZE``), with their
arrival time, for one task that handles them in order: the frame rate limit judges when a
client sent, not when a slow frame before it let the next one through (a queue drained as a
burst would look like a client over the rate). A full queue stops reading from the socket."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from auth_service import metrics, protocol
from auth_service.errors import (
    FaceAuthError,
    IdleTimeout,
    InvalidMessage,
    MessageTooLarge,
    NotFound,
    SessionCancelled,
)
from auth_service.models import AuthSession
from auth_service.services import admission, sessions, worker
from auth_service.services.frames import (
    FrameProcessor,
    ProcessingConfig,
    Verdict,
    run_in_engine,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

NORMAL_CLOSURE = 1000
# Sent by the server (Daphne, uvicorn) itself for a message above its WebSocket size limit.
MESSAGE_TOO_BIG = 1009
# Progress for the status endpoint is written at most once a second when samples or
# liveness changed, and every few seconds for the frame counters alone: a database write
# per socket and second cost more than the writes were worth under load.
PROGRESS_SAVE_INTERVAL = 1.0
PROGRESS_REFRESH_INTERVAL = 5.0
WATCHDOG_PERIOD = 0.5  # seconds
# Messages waiting for their turn (a second of frames at 10 a second); beyond it the server
# stops reading the socket until there is room (TCP pushes back on the client).
INBOX_SIZE = 10


def _session_step(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """A database call that a session makes once (connection, end) on the database thread,
    its CPU counted by admission control as the session's own work, not its frames'."""
    return database_sync_to_async(admission.counted_as_session_work(function))


class ProcessImageConsumer(AsyncWebsocketConsumer):
    session_id: uuid.UUID | None = None
    processor: FrameProcessor | None = None
    finished = True  # until a session is claimed there is nothing to finish
    watchdog: asyncio.Task | None = None
    handler: asyncio.Task | None = None
    progress_write: asyncio.Task | None = None
    counted_open = False
    language: str | None = None  # the session's (auth_service.i18n); None: the server's default

    async def connect(self) -> None:
        # Accept first so that a refusal can carry a JSON error and a 4xxx close code.
        await self.accept()
        metrics.WEBSOCKETS_OPEN.inc()
        self.counted_open = True
        token = self.scope["url_route"]["kwargs"]["session_token"]
        try:
            # Before the session is claimed: refused here, it stays pending for a retry.
            await _session_step(admission.admit_connection)()
            session = await _session_step(sessions.session_connect)(
                token=token, worker_id=worker.worker_id()
            )
        except FaceAuthError as exc:
            # A known session (expired, used, busy) is refused in its own language.
            self.language = await _session_step(sessions.session_language_for_token)(token=token)
            await self._send(protocol.error(exc, language=self.language))
            await self.close(code=exc.close_code)
            return
        self.session_id = session.id
        self.language = session.language
        self.processor = FrameProcessor(
            ProcessingConfig.from_settings(
                samples_needed=session.target_samples, liveness_mode=session.metadata.get("liveness")
            )
        )
        self.processor.created_at = time.monotonic() - (timezone.now() - session.created_at).total_seconds()
        self.limits = self.processor.config.limits
        self.lock = asyncio.Lock()
        self.finished = False
        self.last_message_at = time.monotonic()
        self.last_saved_at = 0.0
        self.saved_progress: tuple | None = None
        remaining = (session.expires_at - timezone.now()).total_seconds()
        self.deadline = time.monotonic() + remaining
        self.inbox: asyncio.Queue[tuple[str | None, bytes | None, float]] = asyncio.Queue(INBOX_SIZE)
        await self.channel_layer.group_add(sessions.group_name(session.id), self.channel_name)
        self.watchdog = asyncio.create_task(self._watch())
        self.handler = asyncio.create_task(self._handle_inbox())
        await self._send(
            protocol.connection_established(
                session, self.limits, liveness=self.processor.liveness_mode, language=self.language
            )
        )

    async def disconnect(self, code: int) -> None:
        if self.counted_open:
            self.counted_open = False
            metrics.WEBSOCKETS_OPEN.dec()
        for task in (self.watchdog, self.handler):
            if task is not None:
                task.cancel()
        if self.session_id is None:
            return
        await self.channel_layer.group_discard(sessions.group_name(self.session_id), self.channel_name)
        if not self.finished:
            self.finished = True
            await _session_step(sessions.session_abort)(
                session_id=self.session_id,
                reason=MessageTooLarge.code if code == MESSAGE_TOO_BIG else "disconnected",
            )

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections before every handler: a hop to the
        # worker's one database thread, so every frame of every socket queued behind whatever
        # that thread was doing (a session's matching, an admission decision) before it was
        # even timestamped. Frames touch no database here, and every database call of this
        # consumer goes through database_sync_to_async, which closes them around itself.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        now = time.monotonic()
        self.last_message_at = now
        if not self.finished:
            await self.inbox.put((text_data, bytes_data, now))

    async def _handle_inbox(self) -> None:
        """Handles queued messages in order. Once the session is finished it still takes them
        off the queue, unhandled, until the socket goes: receive() must never wait on a full
        queue, or the disconnect behind it would not be dispatched."""
        while True:
            text_data, bytes_data, now = await self.inbox.get()
            async with self.lock:
                if self.finished:
                    continue
                try:
                    await self._handle(text_data, bytes_data, now)
                except FaceAuthError as exc:
                    await self._report(exc)
                except Exception:
                    logger.exception("session %s: unexpected error", self.session_id)
                    await self._report(FaceAuthError())

    async def _handle(self, text_data: str | None, bytes_data: bytes | None, now: float) -> None:
        try:
            message = protocol.parse_client_message(
                text_data, bytes_data, max_bytes=self.limits.max_message_bytes
            )
        except (InvalidMessage, MessageTooLarge):
            self.processor.note_invalid()  # raises TooManyInvalidFrames at the limit
            raise
        if message.type == "ping":
            await self._send(protocol.pong())
            return
        self.processor.admit(now)
        report = await run_in_engine(self.processor.process, message.image, now)
        if report.error is not None:
            await self._send(protocol.error(report.error, language=self.language))
        else:
            await self._send(
                protocol.frame_processed(
                    report, samples_needed=self.processor.config.samples_needed, language=self.language
                )
            )
        metrics.FRAME_ROUND_TRIP.observe(time.monotonic() - now)  # from arrival, queueing included
        if report.verdict is not None:
            await self._finish(report.verdict)
        elif now - self.last_saved_at >= PROGRESS_SAVE_INTERVAL:
            self._save_progress(now)

    def _save_progress(self, now: float) -> None:
        """Writes the counters the status endpoint shows, in the background: the next frame
        does not wait for the worker's database thread, which every socket shares. One write at
        a time per socket; one that lands after the session ended changes nothing
        (``session_record_progress`` updates active sessions only)."""
        if self.progress_write is not None and not self.progress_write.done():
            return
        processor = self.processor
        liveness = processor.state.as_dict() if processor.state is not None else {}
        shown = (processor.samples_collected, {k: v for k, v in liveness.items() if k != "frames"})
        if shown == self.saved_progress and now - self.last_saved_at < PROGRESS_REFRESH_INTERVAL:
            return
        self.last_saved_at, self.saved_progress = now, shown
        self.progress_write = asyncio.create_task(database_sync_to_async(sessions.session_record_progress)(
            session_id=self.session_id,
            frames_received=processor.frames_received,
            frames_processed=processor.frames_processed,
            samples_collected=processor.samples_collected,
            liveness=liveness,
        ))
        self.progress_write.add_done_callback(self._progress_written)

    def _progress_written(self, write: asyncio.Task) -> None:
        if not write.cancelled() and write.exception() is not None:
            logger.error("session %s: progress not saved", self.session_id, exc_info=write.exception())

    async def _finish(self, verdict: Verdict) -> None:
        """Completes the session, sends the completion message and closes normally."""
        self.finished = True
        session: AuthSession = await _session_step(sessions.session_finish)(
            session_id=self.session_id, verdict=verdict
        )
        await self._send(protocol.completion(session))
        await self.close(code=NORMAL_CLOSURE)

    async def _report(self, exc: FaceAuthError) -> None:
        """Sends an error; a fatal one also ends the session and closes with its code."""
        await self._send(protocol.error(exc, language=self.language))
        if not exc.fatal:
            return
        if not self.finished:
            self.finished = True
            await _session_step(sessions.session_abort)(
                session_id=self.session_id, reason=exc.code
            )
        await self.close(code=exc.close_code)

    async def _watch(self) -> None:
        """Ends the session at its expiry (with a completion message) or when idle."""
        try:
            while not self.finished:
                await asyncio.sleep(WATCHDOG_PERIOD)
                now = time.monotonic()
                if now >= self.deadline:
                    async with self.lock:
                        if not self.finished:
                            await self._finish(self.processor.expired_verdict())
                    return
                if now - self.last_message_at >= self.limits.idle_timeout_seconds:
                    async with self.lock:
                        if not self.finished:
                            await self._report(
                                IdleTimeout(format_lazy(
                                    _("No message for {seconds} s; the session was closed."),
                                    seconds=self.limits.idle_timeout_seconds,
                                ))
                            )
                    return
        except asyncio.CancelledError:
            raise
        except FaceAuthError as exc:
            await self._report(exc)
        except Exception:
            logger.exception("session %s: watchdog failed", self.session_id)
            await self._report(FaceAuthError())

    async def session_cancelled(self, event: dict) -> None:
        """Channel-layer event: the client cancelled this session through the REST API."""
        async with self.lock:
            if not self.finished:
                self.finished = True  # the REST call already moved it to cancelled
                cancelled = SessionCancelled(_("The session was cancelled by the client."))
                await self._send(protocol.error(cancelled, language=self.language))
                await self.close(code=SessionCancelled.close_code)

    async def _send(self, message: dict) -> None:
        if message["type"] == "error":
            metrics.WEBSOCKET_ERRORS.labels(code=message["code"]).inc()
        await self.send(text_data=protocol.dumps(message))


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Any WebSocket path other than the capture route: a JSON not_found, then close 4004."""

    async def connect(self) -> None:
        await self.accept()
        missing = NotFound(format_lazy(
            _("No WebSocket at {path}; connect to the websocket_url of a session."),
            path="/" + self.scope["path"].lstrip("/"),
        ))
        await self.send(text_data=protocol.dumps(protocol.error(missing)))
        await self.close(code=missing.close_code)
