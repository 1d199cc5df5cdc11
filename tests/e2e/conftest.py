"""End-to-end fixtures: the real server (`manage.py runserver --noreload`, Daphne) in a
subprocess on a free port, once with the zero-setup defaults (SQLite, in-memory channel
layer, generated development key) and once production-like (PostgreSQL, Redis channel
layer and cache, DEBUG off). The client is test_websocket_auth.py, run as a user would.

PostgreSQL and Redis are taken from FACEAUTH_TEST_POSTGRES_URL / FACEAUTH_TEST_REDIS_URL
(default: the CI machine's 127.0.0.1 services); that variant skips with the reason only
when they are unreachable. Each run gets its own database and key prefix."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live_server import REPO, LiveServer, clean_environment, live_server, production_environment

CLIENT = REPO / "test_websocket_auth.py"
POSTGRES_URL = os.environ.get("FACEAUTH_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FACEAUTH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CLIENT_TIMEOUT = 180


@dataclass
class ClientRun:
    args: list[str]
    returncode: int
    output: str

    @property
    def result(self) -> dict:
        """The decrypted result the client printed."""
        start = self.output.index("Decrypted result")
        brace = self.output.index("{", start)
        return json.JSONDecoder().raw_decode(self.output[brace:])[0]

    def explain(self) -> str:
        return f"client {' '.join(self.args[2:])} exited {self.returncode}:\n{self.output[-6000:]}"


class Server(LiveServer):
    def client(self, *args: str, secret_key: str | None = None) -> ClientRun:
        """Runs test_websocket_auth.py against this server, as a user would."""
        command = [
            sys.executable, str(CLIENT), self.api_key, secret_key or self.secret_key, self.base_url, *args,
        ]
        completed = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=CLIENT_TIMEOUT,
            env=clean_environment(),
        )
        return ClientRun(command, completed.returncode, completed.stdout + completed.stderr)


def start_server(name: str, workdir: Path, env: dict[str, str]) -> Iterator[Server]:
    with live_server(name, workdir, env, server_class=Server) as server:
        yield server


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database for one run (so parallel runs never collide), dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}")
    name = f"faceauth_e2e_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _require_redis() -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")


@contextlib.contextmanager
def postgres_and_redis(name: str) -> Iterator[dict[str, str]]:
    """The settings of a production server on a fresh PostgreSQL database and the shared Redis
    under its own key prefix (so parallel runs never collide); skips when either is missing."""
    _require_redis()
    with postgres_database() as database_url:
        yield {"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
               "FACEAUTH_CACHE_KEY_PREFIX": f"faceauth-{name}-{secrets.token_hex(4)}"}


@pytest.fixture(scope="module", params=["sqlite-memory", "postgres-redis"])
def server(request, tmp_path_factory, faces_dir) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite-memory":
        # Exactly the README's zero-setup mode: no settings at all besides a data folder.
        env = clean_environment(FACEAUTH_DATA_DIR=str(workdir / "data"))
        yield from start_server(request.param, workdir, env)
        return
    with postgres_and_redis("e2e") as services:
        yield from start_server(request.param, workdir, production_environment(workdir, **services))
