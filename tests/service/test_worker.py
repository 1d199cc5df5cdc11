"""Restart safety: session ownership by worker heartbeats, the orphan sweep and the
release at shutdown; the background thread's identity."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from auth_service.models import AuthSession
from auth_service.services import sessions, worker

from .test_sessions import enroll_session

pytestmark = pytest.mark.django_db
STALE = timedelta(seconds=20)


def streaming(creds, user_id: str, worker_id: str) -> AuthSession:
    created = enroll_session(creds, user_id=user_id)
    return sessions.session_connect(token=created.token, worker_id=worker_id)


def age_heartbeat(session: AuthSession, seconds: float) -> None:
    AuthSession.objects.filter(pk=session.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_connect_records_the_owner_and_a_heartbeat(credentials):
    session = streaming(credentials, "a", "host:1:aa")
    row = AuthSession.objects.get(pk=session.pk)
    assert row.status == "active" and row.worker_id == "host:1:aa"
    assert timezone.now() - row.heartbeat_at < timedelta(seconds=5)


def test_orphans_are_cancelled_with_a_reason_and_live_workers_sessions_are_kept(credentials):
    dead = streaming(credentials, "a", "host:1:dead")
    alive = streaming(credentials, "b", "host:2:alive")
    age_heartbeat(dead, 60)
    age_heartbeat(alive, 60)
    assert sessions.sessions_heartbeat(worker_id="host:2:alive") == 1  # the live one beats
    assert sessions.sessions_end_orphaned(stale_after=STALE) == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.status, dead.reason) == ("cancelled", "server_stopped") and dead.completed_at
    assert alive.status == "active"


def test_a_fresh_heartbeat_is_never_swept(credentials):
    session = streaming(credentials, "a", "host:1:aa")
    age_heartbeat(session, STALE.total_seconds() - 5)
    assert sessions.sessions_end_orphaned(stale_after=STALE) == 0


def test_release_at_shutdown_ends_only_this_workers_sessions(credentials):
    mine = streaming(credentials, "a", "me")
    theirs = streaming(credentials, "b", "them")
    assert sessions.sessions_release(worker_id="me") == 1
    assert AuthSession.objects.get(pk=mine.pk).status == "cancelled"
    assert AuthSession.objects.get(pk=theirs.pk).status == "active"


def test_a_completed_session_is_never_touched_by_the_sweep(credentials):
    session = streaming(credentials, "a", "gone")
    sessions.transition(session, "failed", reason="liveness_failed")
    age_heartbeat(session, 600)
    assert sessions.sessions_end_orphaned(stale_after=STALE) == 0
    assert AuthSession.objects.get(pk=session.pk).status == "failed"


def test_worker_id_names_host_and_process():
    identity = worker.worker_id()
    assert identity == worker.worker_id()
    host, pid, _ = identity.split(":")
    assert host and int(pid) > 0


def test_overdue_open_sessions_are_expired_by_the_sweep(credentials):
    waiting = enroll_session(credentials, user_id="a").session
    fresh = enroll_session(credentials, user_id="b").session
    AuthSession.objects.filter(pk=waiting.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    sessions.sessions_expire_overdue()
    waiting.refresh_from_db()
    assert (waiting.status, waiting.reason) == ("expired", "session_expired")
    assert AuthSession.objects.get(pk=fresh.pk).status == "pending"


def test_one_round_of_the_background_thread(credentials, settings):
    """The thread's round: this worker's session keeps its heartbeat, the orphan ends."""
    settings.FACEAUTH_WORKER_HEARTBEAT_SECONDS = 0.05
    mine = streaming(credentials, "a", worker.worker_id())
    orphan = streaming(credentials, "b", "host:9:gone")
    age_heartbeat(mine, 60)
    age_heartbeat(orphan, 60)
    worker.BackgroundWorker().round()  # one round, in this thread
    assert AuthSession.objects.get(pk=mine.pk).status == "active"
    assert AuthSession.objects.get(pk=orphan.pk).reason == "server_stopped"
