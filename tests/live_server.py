"""The real FaceAuth server in a subprocess, as the end-to-end and browser tests run it:
`manage.py migrate`, one API client from `create_client --json`, then `manage.py runserver
--noreload` (Daphne) on a free loopback port until the test is done."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any FaceAuth or Django setting, plus ``extra``.

    Admission control is off unless ``extra`` turns it on: these suites test flows on
    machines whose load they do not control (a busy CI machine would get 503 overloaded);
    admission control has its own tests (tests/service/test_admission.py, bench/load.py)."""
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "FACEAUTH_")) and key not in {"DATABASE_URL", "REDIS_URL"}
    }
    env["FACEAUTH_ADMISSION_LATENCY_MS"] = "0"
    env.update(extra)
    return env


def production_environment(workdir: Path, **extra: str) -> dict[str, str]:
    """A deployment's settings for a server whose data lives in ``workdir``: DEBUG off, its
    own secret key and encryption key, loopback hosts only; plus ``extra``."""
    from cryptography.fernet import Fernet

    return clean_environment(
        FACEAUTH_DATA_DIR=str(workdir / "data"),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        FACEAUTH_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        **extra,
    )


@dataclass
class LiveServer:
    name: str
    base_url: str
    env: dict[str, str]
    log: Path
    credentials: dict = field(default_factory=dict)  # client_id, api_key, secret_key
    process: subprocess.Popen | None = field(default=None, repr=False)
    command: list[str] = field(default_factory=list)

    @property
    def api_key(self) -> str:
        return self.credentials["api_key"]

    @property
    def secret_key(self) -> str:
        return self.credentials["secret_key"]

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO, env=self.env, capture_output=True,
            text=True, timeout=300, check=True,
        )

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no server log)"

    def start(self) -> None:
        """Starts (or restarts) the server process, appending to its log, and waits until
        it answers."""
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                self.command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_up()

    def crash(self) -> None:
        """Kills the server and every process it started (workers of a multi-process
        setup) without a goodbye, as a crash or a cut network would."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int:
        """Stops the server as a process manager does (SIGTERM, then SIGKILL after
        ``timeout``); returns its exit status."""
        assert self.process is not None
        self.process.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.crash()
            return self.process.returncode

    def _wait_until_up(self, timeout: float = 90) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.base_url}/api/health/", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        pytest.fail(f"{self.name} server did not answer within {timeout:.0f} s:\n{self.log_tail()}")


def runserver_command(port: int) -> list[str]:
    """`manage.py runserver` (Daphne), as scripts/serve.sh starts it."""
    return [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]


@contextlib.contextmanager
def live_server(
    name: str, workdir: Path, env: dict[str, str], *, server_class: type[LiveServer] = LiveServer,
    command: Callable[[int], list[str]] = runserver_command,
) -> Iterator[LiveServer]:
    """A migrated server with one API client (named ``name``), logging to workdir/server.log;
    ``server_class`` lets a suite add its own helpers to the handle, ``command`` gives the
    server's command line for a port (another documented server setup)."""
    port = free_port()
    server = server_class(name, f"http://127.0.0.1:{port}", env, workdir / "server.log")
    server.manage("migrate", "--noinput")
    server.credentials = json.loads(server.manage("create_client", name, "--json").stdout)
    server.command = command(port)
    server.start()
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop(timeout=15)
        with contextlib.suppress(ProcessLookupError):  # workers left behind by their master
            os.killpg(server.process.pid, signal.SIGKILL)
