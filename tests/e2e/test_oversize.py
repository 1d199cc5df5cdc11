"""Oversized WebSocket messages against every server setup the README documents: the
development server (scripts/serve.sh: manage.py runserver, Daphne), the `daphne` command,
and the production script (scripts/serve-production.sh: gunicorn with uvicorn workers, on
PostgreSQL and Redis). A message between FACEAUTH_MAX_MESSAGE_BYTES and the server's own
limit gets a JSON ``message_too_large`` and the session goes on; above the server's limit
(a 10 MB message) the server closes with 1009 and a close frame, never a silent drop
(1006), and the session ends cancelled with reason ``message_too_large``."""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.live_server import REPO, LiveServer, live_server, production_environment, runserver_command

from .conftest import postgres_and_redis

LIMIT = 1_400_000  # FACEAUTH_MAX_MESSAGE_BYTES (default)
SERVER_LIMIT = 2 * LIMIT  # what the servers are configured with (config/settings.py)
PRODUCTION_SCRIPT = REPO / "scripts" / "serve-production.sh"
METRICS_TOKEN = secrets.token_urlsafe(16)


def daphne_command(port: int) -> list[str]:
    """The README's command for Daphne (its own limits are 1 MiB by default)."""
    return [str(Path(sys.executable).with_name("daphne")), "-b", "127.0.0.1", "-p", str(port),
            "--websocket-max-message-size", str(SERVER_LIMIT),
            "--websocket-max-frame-size", str(SERVER_LIMIT), "config.asgi:application"]


def production_command(port: int) -> list[str]:
    return ["env", "HOST=127.0.0.1", f"PORT={port}", "bash", str(PRODUCTION_SCRIPT)]


def _env(workdir: Path, **extra: str) -> dict[str, str]:
    return production_environment(
        workdir,
        FACEAUTH_WARM_UP_MODELS="0",
        FACEAUTH_ENGINE_THREADS="1",
        FACEAUTH_METRICS_TOKEN=METRICS_TOKEN,
        **extra,
    )


@pytest.fixture(scope="module", params=["runserver", "daphne", "gunicorn-uvicorn"])
def server(request, tmp_path_factory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp(request.param)
    if request.param == "runserver":
        with live_server(request.param, workdir, _env(workdir), command=runserver_command) as started:
            yield started
        return
    if request.param == "daphne":
        with live_server(request.param, workdir, _env(workdir), command=daphne_command) as started:
            yield started
        return
    if not PRODUCTION_SCRIPT.exists():
        pytest.skip("scripts/serve-production.sh is not in this checkout")
    with postgres_and_redis("oversize") as services:
        env = _env(workdir, WEB_CONCURRENCY="2", **services)
        with live_server(request.param, workdir, env, command=production_command) as started:
            yield started


def open_session(server: LiveServer) -> dict:
    token = requests.post(
        f"{server.base_url}/api/auth/client/",
        json={"api_key": server.api_key, "secret_key": server.secret_key}, timeout=30,
    ).json()["token"]
    response = requests.post(f"{server.base_url}/api/auth/enrollment/", json={"user_id": "u1"},
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 201, response.text
    return {**response.json(), "jwt": token}


def final_status(server: LiveServer, session: dict, timeout: float = 10) -> dict:
    """The session's status once it is no longer active (the server ends it when the
    socket closes)."""
    deadline = time.monotonic() + timeout
    while True:
        status = requests.get(
            f"{server.base_url}/api/auth/sessions/{session['session_id']}/status/",
            headers={"Authorization": f"Bearer {session['jwt']}"}, timeout=30,
        ).json()
        if not status["is_active"] or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def test_a_message_over_the_service_limit_gets_a_json_error(server):
    session = open_session(server)
    with connect(session["websocket_url"], max_size=None) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "connection_established"
        ws.send(json.dumps({"type": "frame", "image": "A" * (LIMIT + 100_000)}))
        answer = json.loads(ws.recv(timeout=30))
        assert answer["type"] == "error" and answer["code"] == "message_too_large", answer
        assert answer["fatal"] is False
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=30))["type"] == "pong"


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_a_10_mb_message_is_closed_with_1009(server, binary):
    session = open_session(server)
    payload = b"\xff" * 10_000_000 if binary else json.dumps({"type": "frame", "image": "A" * 10_000_000})
    with connect(session["websocket_url"], max_size=None) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "connection_established"
        with pytest.raises(ConnectionClosed) as closed:
            ws.send(payload)
            while True:
                ws.recv(timeout=30)
    received = closed.value.rcvd
    assert received is not None, f"dropped without a close frame:\n{server.log_tail()}"
    assert received.code == 1009
    final = final_status(server, session)
    assert final["status"] == "cancelled" and final["reason"] == "message_too_large", final


def test_metrics_add_up_over_every_worker(server):
    """Runs after the tests above on the same server: three sessions were created, two
    ended by 1009, none is open (with two workers the figures are summed over both)."""
    assert requests.get(f"{server.base_url}/metrics", timeout=30).status_code == 401
    response = requests.get(f"{server.base_url}/metrics", timeout=30,
                            headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text) for sample in family.samples
    }
    enrollment = (("kind", "enrollment"), ("mode", "enrollment"))
    assert samples[("faceauth_sessions_created_total", enrollment)] == 3
    too_big = enrollment + (("reason", "message_too_large"), ("status", "cancelled"))
    assert samples[("faceauth_sessions_finished_total", tuple(sorted(too_big)))] == 2
    assert samples[("faceauth_websockets_open", ())] == 0
    assert samples[("faceauth_websocket_errors_total", (("code", "message_too_large"),))] == 1
