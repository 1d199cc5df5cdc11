"""Admission control: session creation answers 503 + Retry-After + the JSON error when the
measured engine load says one more session would miss the latency target, and a socket that
connects anyway gets a clear error and close 4503 while its session stays usable."""

from __future__ import annotations

import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from auth_service.errors import Overloaded
from auth_service.models import AuthSession, SessionStatus
from auth_service.services import admission, sessions
from config.asgi import application
from face_engine.models import usable_cores


@pytest.fixture(autouse=True)
def _admission_on(settings):
    settings.FACEAUTH_ADMISSION_LATENCY_MS = 100
    settings.FACEAUTH_ADMISSION_CPU_SHARE = 0.8
    settings.FACEAUTH_MAX_FPS = 10


def publish(*, wait_p95: float = 0.02, cpu_per_second: float = 0.5, frames_per_second: float = 100.0,
            worker: str = "host-a:1", host: str = "host-a", cores: int = 2,
            host_cpu_per_second: float | None = None) -> None:
    """What a worker publishes after measuring its engine (admission.EngineLoad); by default
    nothing else runs on its host."""
    admission._publish(admission.WorkerLoad(
        worker=worker, host=host, cores=cores, cpu_per_second=cpu_per_second,
        host_cpu_per_second=cpu_per_second if host_cpu_per_second is None else host_cpu_per_second,
        frames_per_second=frames_per_second, wait_p95=wait_p95, frames_in_window=500,
    ))


def test_a_cold_server_assumes_a_frame_cost_until_it_measures_one(db, settings):
    # 2 cores x 0.8 at 10 frames/s and 10 ms a frame: 16 sessions may stream at once.
    settings.FACEAUTH_ADMISSION_CPU_SHARE = 0.8 * 2 / usable_cores()
    assert admission.decide(sessions=1).admit
    assert admission.decide(sessions=16).admit
    assert not admission.decide(sessions=17).admit


def test_measured_frames_are_published_for_every_worker_to_read(db):
    load = admission.EngineLoad()
    for _ in range(20):
        load.record(0.03)  # each frame waited 30 ms for an engine thread
    (published,) = [w for w in admission.worker_loads() if w.worker == load._worker]
    assert published.frames_in_window >= 1 and published.wait_p95 == pytest.approx(0.03)
    assert published.cores >= 1


def test_frames_waiting_for_the_engine_on_any_worker_refuse(db):
    publish(worker="host-a:1")
    assert admission.decide(sessions=1).admit
    publish(worker="host-a:2", wait_p95=0.25)
    decision = admission.decide(sessions=1)
    assert not decision.admit and "250 ms" in decision.reason and decision.retry_after >= 1


def test_refused_clients_are_told_different_delays(db):
    # One delay for everyone brought the refused crowd back at the same second.
    publish(wait_p95=0.25)
    delays = {admission.decide(sessions=1).retry_after for _ in range(60)}
    low, high = admission.RETRY_AFTER_SECONDS
    assert delays <= set(range(low, high + 1)) and len(delays) > 1


def test_a_drained_backlog_stops_refusing_once_it_leaves_the_window(db, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(admission, "time", SimpleNamespace(
        monotonic=lambda: clock[0], process_time=time.process_time, time=time.time))
    load = admission.EngineLoad()
    for _ in range(20):
        load.record(0.3)  # a backlog: each frame waited 300 ms
    assert not admission.decide(sessions=1).admit
    clock[0] += admission.WINDOW_SECONDS - 0.5
    load.record(0.005)  # the backlog has drained, but its frames are still in the window
    assert not admission.decide(sessions=1).admit
    clock[0] += 1.0
    load.record(0.005)
    assert admission.decide(sessions=1).admit


def test_every_session_is_counted_at_the_measured_cpu_per_frame(db):
    # 200 frames/s cost 1.0 CPU s/s: 5 ms a frame, so a session at 10 frames/s needs 0.05
    # of a core, and 1.6 usable cores carry 32 sessions, whatever the CPU in use right now.
    publish(cpu_per_second=1.0, frames_per_second=200.0, cores=2)
    assert admission.decide(sessions=32).admit
    assert not admission.decide(sessions=33).admit
    # A second host adds its cores.
    publish(worker="host-b:1", host="host-b", cpu_per_second=0.0, frames_per_second=0.0, cores=2)
    assert admission.decide(sessions=64).admit
    assert not admission.decide(sessions=65).admit


def test_open_sessions_are_the_active_ones_and_those_about_to_connect(credentials):
    def create() -> AuthSession:
        return sessions.enrollment_session_create(
            client=credentials.client, user_id="user123", target_samples=3
        ).session

    waiting, just_connected, streaming, old_pending, ended = create(), create(), create(), create(), create()
    sessions.transition(just_connected, SessionStatus.ACTIVE, started_at=timezone.now())
    sessions.transition(streaming, SessionStatus.ACTIVE, started_at=timezone.now() - timedelta(seconds=60))
    # Created long ago and never connected: abandoned, not about to start.
    AuthSession.objects.filter(pk=old_pending.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    sessions.session_abort(session_id=ended.id, reason="disconnected")
    assert waiting.status == SessionStatus.PENDING
    # Each counted once, however long it has streamed (the measured CPU is per frame).
    assert admission._open_sessions() == 3  # waiting, just_connected and streaming


def test_cpu_taken_by_other_processes_on_the_host_is_not_offered(db):
    # Two workers on one host use 0.25 each; the host is busy 1.5: 1.0 goes to others.
    publish(worker="host-a:1", cpu_per_second=0.25, frames_per_second=50.0, host_cpu_per_second=1.5)
    publish(worker="host-a:2", cpu_per_second=0.25, frames_per_second=50.0, host_cpu_per_second=1.4)
    # 1.6 usable - 1.0 for others leaves 0.6: twelve sessions at 0.05 each.
    assert admission.decide(sessions=12).admit
    assert not admission.decide(sessions=13).admit


def test_a_target_of_zero_turns_admission_control_off(db, settings):
    settings.FACEAUTH_ADMISSION_LATENCY_MS = 0
    publish(wait_p95=5.0)
    assert admission.decide(sessions=100).admit


def test_session_creation_answers_503_with_retry_after_and_a_json_error(api):
    publish(wait_p95=0.4)
    response = api.post("/api/auth/enrollment/", {"user_id": "user123"}, format="json")
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "overloaded" and "capacity" in error["message"]
    assert set(response.json()) == {"error"}


def test_the_error_is_in_the_catalogue():
    assert Overloaded.http_status == 503 and Overloaded.close_code == 4503 and Overloaded.fatal


@pytest.mark.django_db(transaction=True)
async def test_a_socket_that_connects_anyway_gets_a_clear_error_and_its_session_waits(credentials):
    created = await _create(credentials)
    await _publish_async(wait_p95=0.4)
    communicator = WebsocketCommunicator(application, f"/ws/auth/process-image/{created.token}/")
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    error = await communicator.receive_json_from(timeout=10)
    assert error["type"] == "error" and error["code"] == "overloaded" and error["fatal"] is True
    assert "retry in" in error["message"]
    assert (await communicator.receive_output(timeout=10))["code"] == 4503
    await communicator.wait(timeout=10)
    assert await _status(created.session.id) == SessionStatus.PENDING  # usable once load drops

    await _publish_async(wait_p95=0.02)
    communicator = WebsocketCommunicator(application, f"/ws/auth/process-image/{created.token}/")
    await communicator.connect(timeout=10)
    assert (await communicator.receive_json_from(timeout=10))["type"] == "connection_established"
    await communicator.disconnect()


async def _create(credentials):
    return await database_sync_to_async(sessions.enrollment_session_create)(
        client=credentials.client, user_id="user123", target_samples=3
    )


async def _publish_async(**figures) -> None:
    await database_sync_to_async(publish)(**figures)


async def _status(session_id) -> str:
    return await database_sync_to_async(lambda: AuthSession.objects.get(pk=session_id).status)()
