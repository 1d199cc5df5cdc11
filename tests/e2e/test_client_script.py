"""test_websocket_auth.py's command line, without a server: usage errors and unreachable
servers exit with status 2 and say why."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.live_server import REPO, clean_environment, free_port

from .conftest import CLIENT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CLIENT), *args], cwd=REPO, capture_output=True, text=True,
        timeout=60, env=clean_environment(),
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["k", "s", "http://x", "enrollment"], "enrollment needs a USER_ID"),
        (["k", "s", "http://x", "authentication", "u", "--fps", "15"], "--fps"),
        (["k", "s", "http://x", "login"], "invalid choice"),
        (["k", "s"], "required"),
    ],
)
def test_usage_errors(args, message):
    completed = run(*args)
    assert completed.returncode == 2 and message in completed.stderr


def test_unreachable_server_is_an_error(tmp_path):
    completed = run("k", "s", f"http://127.0.0.1:{free_port()}", "authentication",
                    "--images", str(tmp_path), "--timeout", "5")
    assert completed.returncode == 2
    assert "ERROR: POST" in completed.stdout and "/api/auth/client/" in completed.stdout


def test_help_documents_exit_status():
    completed = run("--help")
    assert completed.returncode == 0
    for text in ("--video", "--images", "--camera", "--start", "--duration", "Exit status"):
        assert text in completed.stdout
