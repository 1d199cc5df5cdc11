"""Fixtures of the browser tests: a real FaceAuth server in a subprocess, fake cameras made
from real footage, and headless Debian Chromium driven by Playwright (SPEC.md section 8).

Everything skips with a reason when a piece is missing (Chromium, ffmpeg, ../shared/faces),
so a user's checkout without them still runs the rest of the suite."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FACES = (REPO / ".." / "shared" / "faces").resolve()
ARTIFACTS = REPO / "test-artifacts" / "browser"

# The clip the fake camera plays, and which part of it: the man with glasses blinks
# repeatedly in this stretch (frames ~380-533 at 30 fps, see ../shared/faces/README.md)
# while his head moves a little. Chromium loops the file.
CLIP = "video/liveportrait_d9.mp4"
CLIP_START_S = float(os.environ.get("FACEAUTH_BROWSER_CLIP_START", "11"))
CLIP_SECONDS = float(os.environ.get("FACEAUTH_BROWSER_CLIP_SECONDS", "8"))
# A printed photo held up to the camera: one still picture, repeated.
PHOTO = "obama/obama.jpg"

# SPEC.md section 8: the flags that make getUserMedia work headless with a file as camera.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# 480x480 centred on a 640x480 frame, as a phone's 4:3 camera would frame a face.
CAMERA_FILTER = "scale=480:480,pad=640:480:80:0:black"


def chromium_binary() -> str | None:
    for candidate in (os.environ.get("FACEAUTH_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_binary()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; scripts/test.sh does)")
    return path


def _ffmpeg() -> str:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg; scripts/test.sh does)")
    return ffmpeg


def _face_file(name: str) -> Path:
    path = FACES / name
    if not path.is_file():
        pytest.skip(f"real face data not found at {path} (../shared/faces beside the checkout)")
    return path


def _to_y4m(input_args: list[str], out: Path) -> Path:
    """Converts to the y4m Chromium's fake capture device reads (640x480, 4:2:0)."""
    subprocess.run(
        [_ffmpeg(), "-v", "error", "-y", *input_args, "-vf", CAMERA_FILTER, "-pix_fmt", "yuv420p", str(out)],
        check=True, timeout=120,
    )
    return out


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A live person: the clip segment where he blinks and moves."""
    clip = _face_file(CLIP)
    out = tmp_path_factory.mktemp("camera") / "live.y4m"
    return _to_y4m(["-ss", str(CLIP_START_S), "-t", str(CLIP_SECONDS), "-i", str(clip)], out)


@pytest.fixture(scope="module")
def photo_camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A still photo in front of the camera (a presentation attack)."""
    photo = _face_file(PHOTO)
    out = tmp_path_factory.mktemp("camera") / "photo.y4m"
    return _to_y4m(["-loop", "1", "-framerate", "15", "-t", "2", "-i", str(photo)], out)


@pytest.fixture(scope="module")
def empty_camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A camera that sees nobody (an empty, dim room)."""
    _ffmpeg()
    out = tmp_path_factory.mktemp("camera") / "empty.y4m"
    return _to_y4m(["-f", "lavfi", "-i", "color=c=0x303840:s=640x480:r=15", "-t", "2"], out)


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    base_url: str
    api_key: str
    secret_key: str
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def crash(self) -> None:
        """Kills the server without a goodbye, as a crash or a cut network would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def _manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


@contextlib.contextmanager
def run_server(data_dir: Path, name: str, **settings: str) -> Iterator[Server]:
    """`manage.py runserver --noreload` on a free port with its own SQLite database and
    development secret in ``data_dir``, plus one API client made by `create_client --json`.
    ``settings`` are extra FACEAUTH_* environment variables."""
    if not (REPO / "manage.py").is_file():
        pytest.skip("manage.py not found: the FaceAuth service is not in this checkout")
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "FACEAUTH_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        {
            "FACEAUTH_DATA_DIR": str(data_dir),
            "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}",
            "PYTHONUNBUFFERED": "1",
            **settings,
        }
    )
    migrate = _manage(["migrate", "--noinput"], env)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    created = _manage(["create_client", f"browser-{name}", "--json"], env)
    assert created.returncode == 0, created.stdout + created.stderr
    client = json.loads(created.stdout)

    port = _free_port()
    log_path = data_dir / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", client["api_key"], client["secret_key"], log_path, process)
    try:
        _wait_until_up(server)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_path, ARTIFACTS / f"server-{name}.log")


def _wait_until_up(server: Server, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"the server exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.base_url + "/demo/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    pytest.fail(f"the server did not answer within {timeout:.0f} s:\n{server.log_tail()}")


@pytest.fixture(scope="module")
def faceauth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server most tests share, with the default settings."""
    with run_server(tmp_path_factory.mktemp("faceauth-server"), "main") as server:
        yield server


@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        yield playwright


@contextlib.contextmanager
def launch_chromium(playwright, chromium: str, *, camera: Path | None, allow_camera: bool = True):
    """Chromium with a fake camera playing ``camera`` (Chromium's own test pattern when
    None); without ``allow_camera`` every permission prompt is refused."""
    flags = list(CHROMIUM_FLAGS)
    if not allow_camera:
        flags.remove("--use-fake-ui-for-media-stream")
    if camera is not None:
        flags.append(f"--use-file-for-fake-video-capture={camera}")
    browser = playwright.chromium.launch(executable_path=chromium, args=flags)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def browser(playwright_instance, chromium: str, fake_camera: Path) -> Iterator[object]:
    """Chromium whose camera shows the live person, camera permission granted."""
    with launch_chromium(playwright_instance, chromium, camera=fake_camera) as browser:
        yield browser


@pytest.fixture()
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def launch_browser(playwright_instance, chromium: str):
    """launch_browser(camera=..., allow_camera=...) as a context manager, for tests that
    need a camera or permissions of their own."""

    def launch(*, camera: Path | None, allow_camera: bool = True):
        return launch_chromium(playwright_instance, chromium, camera=camera, allow_camera=allow_camera)

    return launch


@pytest.fixture()
def start_server(tmp_path_factory: pytest.TempPathFactory):
    """start_server(name, **FACEAUTH_settings) as a context manager: a server of the test's own."""

    def start(name: str, **settings: str):
        return run_server(tmp_path_factory.mktemp(f"faceauth-{name}"), name, **settings)

    return start
