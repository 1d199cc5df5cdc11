"""Two production server processes (scripts/serve-production.sh: gunicorn with the FaceAuth
uvicorn worker) on one PostgreSQL database and one Redis, as a load balancer would spread a
client over them: a session created through worker A streams on worker B and completes, a
cancel sent to A closes B's socket with 4012, and the status is right on both; session creations
reuse a worker's pooled database connections. Within one
server, gunicorn's workers share the connections evenly (each its own listening socket) and
the master's copy of the landmark model (config/gunicorn.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import psutil
import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from face_engine.video import fit_frame, video_frames
from tests.live_server import REPO, LiveServer, free_port, production_environment

from .conftest import postgres_and_redis

CLIP = "video/liveportrait_d10.mp4"  # blinks at 4 s and 7.6 s


@contextlib.contextmanager
def production_worker(name: str, workdir: Path, env: dict[str, str]) -> Iterator[LiveServer]:
    """scripts/serve-production.sh with one worker process on a free port."""
    port = free_port()
    env = {**env, "PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"metrics-{name}")}
    server = LiveServer(name, f"http://127.0.0.1:{port}", env, workdir / f"{name}.log")
    with server.log.open("w") as log:
        # Its own process group, so that the worker goes too if the master must be killed.
        server.process = subprocess.Popen(["bash", "scripts/serve-production.sh"], cwd=REPO, env=env,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        server._wait_until_up()
        yield server
    finally:
        server.process.terminate()  # gunicorn's master: it stops its worker gracefully
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


@pytest.fixture(scope="module")
def workers(tmp_path_factory, faces_dir) -> Iterator[tuple[LiveServer, LiveServer]]:
    workdir = tmp_path_factory.mktemp("workers")
    with postgres_and_redis("workers") as services:
        env = production_environment(workdir, WEB_CONCURRENCY="1", FACEAUTH_ENGINE_THREADS="1", **services)
        with production_worker("a", workdir, env) as a:
            a.credentials = json.loads(a.manage("create_client", "two-workers", "--json").stdout)
            with production_worker("b", workdir, env) as b:
                b.credentials = a.credentials  # one client, whichever worker it talks to
                yield a, b


@pytest.fixture(scope="module")
def frames(faces_dir) -> list[bytes]:
    return [cv2.imencode(".jpg", fit_frame(frame), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
            for _, frame in video_frames(faces_dir / CLIP, fps=10, duration=12)]


def bearer(server: LiveServer) -> dict[str, str]:
    response = requests.post(f"{server.base_url}/api/auth/client/", timeout=30,
                             json={"api_key": server.api_key, "secret_key": server.secret_key})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def create_on(server: LiveServer, headers: dict[str, str], user_id: str) -> dict:
    response = requests.post(f"{server.base_url}/api/auth/enrollment/", headers=headers, timeout=30,
                             json={"user_id": user_id, "metadata": {"target_samples": 3}})
    assert response.status_code == 201, response.text
    return response.json()


def on_other_worker(created: dict, server: LiveServer) -> str:
    """The session's websocket_url, pointed at ``server`` instead of the worker that made it."""
    path = created["websocket_url"].split("/ws/", 1)[1]
    return server.base_url.replace("http://", "ws://") + "/ws/" + path


def status_on(server: LiveServer, headers: dict[str, str], session_id: str) -> dict:
    response = requests.get(f"{server.base_url}/api/auth/sessions/{session_id}/status/", headers=headers,
                            timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_session_created_on_one_worker_streams_and_completes_on_another(workers, frames):
    a, b = workers
    headers = bearer(a)
    created = create_on(a, headers, "walker")
    with connect(on_other_worker(created, b), max_size=None) as socket:
        assert json.loads(socket.recv(timeout=30))["type"] == "connection_established"
        done = None
        for data in frames:
            # Paced by the answers, as the client guide says: at most 10 frames a second.
            sent = time.monotonic()
            socket.send(data)
            answer = json.loads(socket.recv(timeout=30))
            assert answer["type"] == "frame_processed", answer
            if answer["samples_collected"] >= 3 and answer["liveness"]["is_live"]:
                done = json.loads(socket.recv(timeout=30))
                break
            time.sleep(max(0.0, sent + 0.105 - time.monotonic()))
        assert done is not None, "the frames ran out before the enrollment completed"
        assert done["type"] == "enrollment_complete"
        assert done["success"] is True and done["samples"] == 3, (done["reason"], done["detail"])
    for server in (a, b):
        status = status_on(server, headers, created["enrollment_id"])
        assert status["status"] == "completed" and status["result"]["success"] is True


def test_a_cancel_sent_to_one_worker_closes_the_socket_on_another_with_4012(workers, frames):
    a, b = workers
    headers = bearer(b)  # tokens from either worker are good on both
    created = create_on(a, headers, "canceller")
    with connect(on_other_worker(created, b), max_size=None) as socket:
        assert json.loads(socket.recv(timeout=30))["type"] == "connection_established"
        for data in frames[:3]:
            socket.send(data)
            assert json.loads(socket.recv(timeout=30))["type"] == "frame_processed"
            time.sleep(0.1)
        assert status_on(a, headers, created["enrollment_id"])["status"] == "active"
        response = requests.post(f"{a.base_url}/api/auth/sessions/{created['enrollment_id']}/cancel/",
                                 headers=headers, timeout=30)
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        error = json.loads(socket.recv(timeout=30))
        assert error["type"] == "error" and error["code"] == "session_cancelled"
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=30)
        assert closed.value.rcvd.code == 4012
    for server in (a, b):
        status = status_on(server, headers, created["enrollment_id"])
        assert status["status"] == "cancelled" and status["reason"] == "cancelled_by_client"


def database_sessions(database_url: str) -> int:
    """Connections PostgreSQL has accepted to the database so far (pg_stat_database.sessions)."""
    import psycopg

    server, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as admin:
        row = admin.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (name,)).fetchone()
    return row[0]


def test_session_creations_reuse_the_workers_pooled_database_connections(workers):
    # Django serves each HTTP request on a thread of its own, and a connection belongs to its
    # thread: before serve-production.sh gave each worker a pool, every session created opened
    # a connection, and PostgreSQL started a backend for it (8-9 ms of its CPU a creation).
    a, _ = workers
    headers = bearer(a)
    create_on(a, headers, "pooled-0")  # the pool has opened its connections
    before = database_sessions(a.env["DATABASE_URL"])
    for index in range(1, 11):
        create_on(a, headers, f"pooled-{index}")
    time.sleep(2)  # a backend's statistics reach pg_stat_database within a second of its exit
    assert database_sessions(a.env["DATABASE_URL"]) - before <= 3


def test_a_deployment_that_keeps_connections_by_max_age_still_starts(tmp_path):
    # FACEAUTH_DB_CONN_MAX_AGE set alone (how deployments kept connections before the pool):
    # serve-production.sh leaves the pool off rather than start with both, which the settings refuse.
    with postgres_and_redis("max-age") as services:
        env = production_environment(tmp_path, WEB_CONCURRENCY="1", FACEAUTH_ENGINE_THREADS="1",
                                     FACEAUTH_DB_CONN_MAX_AGE="60", **services)
        with production_worker("max-age", tmp_path, env) as server:
            response = requests.get(f"{server.base_url}/api/health/", timeout=30)
            assert response.status_code == 200, server.log_tail()


def shared_anonymous_bytes(process: psutil.Process) -> int:
    """Memory of ``process`` that no file backs and that another process maps too (pages
    inherited through fork and not written since)."""
    return sum(region.shared_clean + region.shared_dirty for region in process.memory_maps(grouped=True)
               if region.path in ("[heap]", "[anon]", ""))


def test_one_servers_workers_share_its_connections_and_the_landmark_model(tmp_path, faces_dir):
    # On one listening socket the worker that woke first took most connections (82 against
    # 36 frames/s under load); with a socket per worker the kernel spreads them.
    with postgres_and_redis("spread") as services:
        env = production_environment(tmp_path, WEB_CONCURRENCY="2", FACEAUTH_ENGINE_THREADS="1", **services)
        with production_worker("spread", tmp_path, env) as server:
            port = int(server.base_url.rsplit(":", 1)[1])
            clients = [requests.Session() for _ in range(40)]
            try:
                for client in clients:  # each keeps its connection open (keep-alive)
                    assert client.get(f"{server.base_url}/api/health/", timeout=30).status_code == 200
                master = psutil.Process(server.process.pid)
                held, listening = {}, {}
                for process in (master, *master.children()):
                    mine = [c for c in process.net_connections("tcp") if c.laddr.port == port]
                    listening[process.pid] = sum(c.status == psutil.CONN_LISTEN for c in mine)
                    if process is not master:
                        held[process.pid] = sum(c.status == psutil.CONN_ESTABLISHED for c in mine)
                shared = {worker.pid: shared_anonymous_bytes(worker) for worker in master.children()}
            finally:
                for client in clients:
                    client.close()
    # The mechanism: a listening socket in each worker, none shared from the master (on an idle
    # server a shared socket spreads evenly too; under load it did not).
    assert listening.pop(master.pid) == 0 and list(listening.values()) == [1, 1], listening
    assert len(held) == 2 and sum(held.values()) == 40, held
    # Binomial(40, 1/2): fewer than 10 on either worker happens once in 1,500 runs.
    assert min(held.values()) >= 10, held
    # The landmark model (64 MiB of arrays) and its compiled fit, loaded by the master before
    # the fork, keep about 88 MiB of each worker's memory shared with the others (9 MB when
    # each worker loaded its own copy of dlib's).
    assert len(shared) == 2 and min(shared.values()) > 50 * 2**20, shared
