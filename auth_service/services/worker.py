"""Per-process background duties of a server worker, in one daemon thread:

- heartbeats of the sessions this process streams (AuthSession.worker_id / heartbeat_at);
- ending orphaned sessions: active ones whose worker stopped heartbeating (killed,
  restarted) are cancelled with reason ``server_stopped``, at start-up and then regularly;
  open sessions past their time are expired (so their webhooks go out on time).
  Ownership is per process, so with several workers (or hosts) a worker never ends a
  session that another live worker streams: that one's heartbeat stays fresh;
- webhook delivery from the database outbox (services.webhooks).

Why a thread in each ASGI worker rather than a separate command: the zero-setup mode is
one process with nothing else to run, and every production worker already has the
database; claims with leases keep several workers from sending the same delivery, and the
outbox in the database makes delivery survive restarts. At a clean exit (SIGTERM) the
process cancels its own active sessions at once instead of waiting for the sweep."""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections

from auth_service.services import admission, sessions, webhooks

logger = logging.getLogger(__name__)

# A session is orphaned after this many missed heartbeats (a busy worker may be late).
STALE_HEARTBEATS = 4
_lock = threading.Lock()
_worker: BackgroundWorker | None = None
_identity: tuple[int, str] | None = None


def worker_id() -> str:
    """This process's identity: host, pid and a random part (pids are reused after a
    restart). A forked child gets a new one."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        _identity = (pid, f"{socket.gethostname()[:40]}:{pid}:{secrets.token_hex(4)}")
    return _identity[1]


class BackgroundWorker(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="faceauth-background", daemon=True)
        self.worker_id = worker_id()
        self.stopping = threading.Event()

    def run(self) -> None:
        admission.name_thread("fa-background")  # told apart in per-thread CPU figures (bench/load.py)
        heartbeat = settings.FACEAUTH_WORKER_HEARTBEAT_SECONDS
        poll = settings.FACEAUTH_WEBHOOK_POLL_SECONDS
        next_beat = 0.0
        while not self.stopping.is_set():
            now = time.monotonic()
            beat = now >= next_beat
            if beat:
                next_beat = now + heartbeat
            try:
                close_old_connections()
                self.round(sessions_due=beat)
            except Exception:
                # The database may be briefly unreachable; the next round tries again.
                logger.exception("background worker round failed")
            finally:
                close_old_connections()
            webhooks.outbox_signal.wait(timeout=min(poll, max(next_beat - time.monotonic(), 0.05)))

    def round(self, *, sessions_due: bool = True) -> None:
        """One pass of the duties: the sessions' (every heartbeat period), then the outbox."""
        if sessions_due:
            sessions.sessions_heartbeat(worker_id=self.worker_id)
            stale_after = timedelta(seconds=STALE_HEARTBEATS * settings.FACEAUTH_WORKER_HEARTBEAT_SECONDS)
            ended = sessions.sessions_end_orphaned(stale_after=stale_after)
            if ended:
                logger.warning("ended %d session(s) left active by a stopped server", ended)
            sessions.sessions_expire_overdue()
        webhooks.outbox_signal.clear()
        webhooks.deliver_due(worker_id=self.worker_id)

    def stop(self) -> None:
        """Ends the thread and cancels this process's active sessions (clean exit)."""
        self.stopping.set()
        webhooks.outbox_signal.set()
        self.join(timeout=5)
        try:
            ended = sessions.sessions_release(worker_id=self.worker_id)
            if ended:
                logger.warning("cancelled %d active session(s) at shutdown", ended)
        except Exception:
            logger.exception("could not release this worker's sessions at shutdown")
        finally:
            close_old_connections()


def ensure_started() -> None:
    """Starts this process's background thread once (again in a forked child)."""
    global _worker
    if not settings.FACEAUTH_BACKGROUND_WORKER:
        return
    with _lock:
        if _worker is not None and _worker.worker_id == worker_id():
            return
        _worker = BackgroundWorker()
        _worker.start()
        atexit.register(_worker.stop)


def with_background_worker(application):
    """Wraps the ASGI application so that the first request or WebSocket a process serves
    starts its background thread (after any fork of a pre-loading server)."""

    async def app(scope, receive, send):
        if _worker is None or _worker.worker_id != worker_id():
            ensure_started()
        return await application(scope, receive, send)

    return app
