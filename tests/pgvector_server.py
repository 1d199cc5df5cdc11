"""A throwaway PostgreSQL 16 with pgvector, from the ``pgserver`` wheel's binaries, for the
pgvector gallery tests and bench/gallery.py.

Debian's PostgreSQL here has no pgvector. PostgreSQL refuses to run as root, so as root the
server runs as a dedicated unprivileged system user (created once with ``useradd``, reused
afterwards); otherwise as the current user. Data lives in a fresh directory under /tmp that
is removed on stop; the server listens on a free 127.0.0.1 port with trust authentication."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.live_server import free_port

SERVICE_USER = "faceauth-pgvector"


class PgvectorUnavailable(RuntimeError):
    """The server could not be started (the reason is in the message)."""


def _binaries() -> Path:
    # Found without importing pgserver: its import sets up a server manager we do not use.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PgvectorUnavailable("the pgserver package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "pg_ctl").exists():
        raise PgvectorUnavailable(f"pgserver has no PostgreSQL binaries at {path}")
    return path


def _run_as() -> list[str]:
    """The command prefix that runs a program as the server's user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        created = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            capture_output=True, text=True,
        )
        # Another process may have created it meanwhile: only a still-missing user is fatal.
        if created.returncode != 0:
            try:
                pwd.getpwnam(SERVICE_USER)
            except KeyError:
                message = f"useradd {SERVICE_USER} failed: {created.stderr.strip()}"
                raise PgvectorUnavailable(message) from None
    return ["runuser", "-u", SERVICE_USER, "--"]


def _check(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    if done.returncode != 0:
        raise PgvectorUnavailable(f"{what} failed: {(done.stderr or done.stdout).strip()[-2000:]}")


@contextlib.contextmanager
def pgvector_server(**server_settings: str) -> Iterator[str]:
    """Starts the server and yields its URL (``postgresql://postgres@127.0.0.1:PORT/postgres``,
    the ``vector`` extension created); stops it and removes its data on exit.
    ``server_settings`` are PostgreSQL settings, e.g. ``shared_buffers="1GB"``."""
    binaries = _binaries()
    prefix = _run_as()
    data_root = Path(tempfile.mkdtemp(prefix="faceauth-pgvector-"))
    data = data_root / "data"
    try:
        if prefix:
            shutil.chown(data_root, user=SERVICE_USER)
        _check([*prefix, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                "--no-sync", "-E", "UTF8"], "initdb")
        port = free_port()
        options = f"-p {port} -k {data_root} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += "".join(f" -c {name}={value}" for name, value in server_settings.items())
        _check([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-o", options,
                "-l", str(data_root / "server.log"), "-w", "-t", "60", "start"], "pg_ctl start")
    except BaseException:
        shutil.rmtree(data_root, ignore_errors=True)
        raise
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        _check([str(binaries / "psql"), url, "-v", "ON_ERROR_STOP=1", "-c",
                "CREATE EXTENSION IF NOT EXISTS vector"], "CREATE EXTENSION vector")
        yield url
    finally:
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
        shutil.rmtree(data_root, ignore_errors=True)
