"""Restart safety and webhooks through real restarts, on the zero-setup server (runserver,
SQLite) and the production setup (scripts/serve-production.sh: gunicorn with two uvicorn
workers on PostgreSQL and Redis).

A client registers a webhook whose receiver fails (500) at first; a user enrolls with real
footage; another session is left streaming. The server is killed (SIGKILL of every
process) and started again, the receiver recovers: the completed enrollment is still
there, the streaming session ends ``cancelled`` with reason ``server_stopped`` (its
worker's heartbeat stopped), and both sessions' webhooks arrive, signed, exactly once
each. Then a clean stop (SIGTERM) with a session streaming: it is ended too."""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from websockets.sync.client import connect

from tests.live_server import live_server, production_environment, runserver_command
from tests.webhook_receiver import Receiver

from .conftest import Server, postgres_and_redis
from .test_oversize import PRODUCTION_SCRIPT, production_command

MAN = "video/liveportrait_d9.mp4"
WEBHOOK_SECRET = "whsec_" + secrets.token_urlsafe(24)


def _env(workdir, **extra: str) -> dict[str, str]:
    return production_environment(
        workdir,
        FACEAUTH_ADMISSION_LATENCY_MS="0",
        PYTHONFAULTHANDLER="1",  # a crash at exit prints where it happened into the log
        # Short clocks so that the test takes seconds: an orphan is found 2 s after its
        # worker's last heartbeat. Failed webhooks are retried after 1.5 s, then 3 s: the
        # test kills the server about a second after the second attempt, and a kill in the
        # middle of an attempt would leave its lease (40 s) to run out before the delivery
        # is taken over, as designed; the third attempt must not fall there.
        FACEAUTH_WORKER_HEARTBEAT_SECONDS="0.5",
        FACEAUTH_WEBHOOK_POLL_SECONDS="0.2",
        FACEAUTH_WEBHOOK_BACKOFF_SECONDS="1.5",
        FACEAUTH_WEBHOOK_BACKOFF_MAX_SECONDS="3",
        FACEAUTH_WEBHOOK_MAX_ATTEMPTS="1000",
        FACEAUTH_WEBHOOK_ALLOW_PRIVATE_URLS="1",
        **extra,
    )


@pytest.fixture(params=["runserver-sqlite", "gunicorn-postgres"])
def server(request, tmp_path, faces_dir) -> Iterator[Server]:
    if request.param == "runserver-sqlite":
        with live_server(request.param, tmp_path, _env(tmp_path), server_class=Server,
                         command=runserver_command) as started:
            yield started
        return
    if not PRODUCTION_SCRIPT.exists():
        pytest.skip("scripts/serve-production.sh is not in this checkout")
    with postgres_and_redis("restart") as services:
        env = _env(tmp_path, WEB_CONCURRENCY="2", FACEAUTH_ENGINE_THREADS="1", **services)
        with live_server(request.param, tmp_path, env, server_class=Server,
                         command=production_command) as started:
            yield started


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver(WEBHOOK_SECRET, [500])
    yield started
    started.close()


def api(server: Server, method: str, path: str, **kwargs) -> requests.Response:
    token = requests.post(
        f"{server.base_url}/api/auth/client/",
        json={"api_key": server.api_key, "secret_key": server.secret_key}, timeout=30,
    ).json()["token"]
    return requests.request(method, f"{server.base_url}{path}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs)


@contextlib.contextmanager
def streaming_session(server: Server) -> Iterator[dict]:
    """An authentication session whose WebSocket is connected (the session is active)
    while the block runs."""
    created = api(server, "post", "/api/auth/authentication/", json={"user_id": "man"})
    assert created.status_code == 201, created.text
    session = created.json()
    with connect(session["websocket_url"], max_size=None) as socket:
        assert json.loads(socket.recv(timeout=30))["type"] == "connection_established"
        status = api(server, "get", f"/api/auth/sessions/{session['session_id']}/status/").json()
        assert status["status"] == "active"
        yield session


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def ended(server: Server, session: dict) -> dict | None:
    status = api(server, "get", f"/api/auth/sessions/{session['session_id']}/status/").json()
    return None if status["is_active"] else status


def test_a_killed_server_loses_nothing_and_leaves_nothing_active(server, receiver, faces_dir):
    put = api(server, "put", "/api/auth/webhook/", json={"url": receiver.url, "secret": WEBHOOK_SECRET})
    assert put.status_code == 200, put.text

    enrollment = server.client("enrollment", "man", "--video", str(faces_dir / MAN),
                               "--duration", "10", "--target-samples", "3")
    assert enrollment.returncode == 0, enrollment.explain()
    enrollment_id = enrollment.result["enrollment_id"]
    wait_for(lambda: len(receiver.received) >= 2, 20, "failed webhook attempts before the crash")
    with streaming_session(server) as orphan:
        server.crash()
    receiver.statuses = [200]
    server.start()

    # The streaming session is ended by the restarted server, with the reason.
    status = wait_for(lambda: ended(server, orphan), 30, "the orphaned session to end")
    assert status["status"] == "cancelled" and status["reason"] == "server_stopped", status
    # The enrollment completed before the crash is intact.
    user = api(server, "get", "/api/auth/users/man/").json()
    assert user["templates"] == 3, user
    completed = api(server, "get", f"/api/auth/sessions/{enrollment_id}/status/").json()
    assert completed["status"] == "completed" and completed["result"]["success"] is True

    # Both sessions' webhooks arrive after the restart: signed, once each.
    def delivered() -> dict | None:
        bodies = [json.loads(r["body"]) for r in receiver.accepted()]
        events = {body["data"]["session_id"]: body for body in bodies}
        return events if {enrollment_id, orphan["session_id"]} <= set(events) else None

    events = wait_for(delivered, 30, "webhook deliveries after the restart")
    assert events[enrollment_id]["event"] == "session.completed"
    assert events[enrollment_id]["data"]["encrypted_data"]["encrypted_payload"]
    assert events[orphan["session_id"]]["data"]["reason"] == "server_stopped"
    assert all(r["verified"] for r in receiver.received)
    per_delivery = Counter(r["headers"]["X-FaceAuth-Delivery"] for r in receiver.accepted())
    assert set(per_delivery.values()) == {1}, per_delivery
    log = api(server, "get", f"/api/auth/sessions/{enrollment_id}/webhooks/").json()
    (delivery,) = log["deliveries"]
    assert delivery["status"] == "delivered"
    codes = [attempt["status_code"] for attempt in delivery["log"]]
    assert codes[-1] == 200 and set(codes[:-1]) == {500} and len(codes) >= 3, codes

    # A clean stop (SIGTERM) with a session streaming ends it as well.
    with streaming_session(server) as stopping:
        exit_code = server.stop()
    log = server.log.read_text(errors="replace")
    if server.name.startswith("runserver") and exit_code == -signal.SIGSEGV:
        # Known open defect: Daphne's dev server sometimes crashes in CPython's garbage
        # collector while finalizing its connection queues at exit, after it has released
        # its sessions. The production server must exit cleanly.
        assert "active session(s) at shutdown" in log and "Segmentation fault" in log, server.log_tail()
    else:
        assert exit_code == 0, server.log_tail()
    server.start()
    status = wait_for(lambda: ended(server, stopping), 30, "the session streaming at shutdown to end")
    assert status["status"] == "cancelled" and status["reason"] in {"server_stopped", "disconnected"}
    assert "Traceback" not in server.log.read_text(errors="replace"), server.log_tail(8000)
