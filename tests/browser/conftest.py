"""Fixtures of the browser tests: a real FaceAuth server in a subprocess, fake cameras made
from real footage, and headless Debian Chromium driven by Playwright (SPEC.md section 8).

Everything skips with a reason when a piece is missing (Chromium, ffmpeg, ../shared/faces),
so a user's checkout without them still runs the rest of the suite."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import REPO, LiveServer, clean_environment, live_server

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


def _to_y4m(input_args: list[str], out: Path) -> Path:
    """Converts to the y4m Chromium's fake capture device reads (640x480, 4:2:0)."""
    subprocess.run(
        [_ffmpeg(), "-v", "error", "-y", *input_args, "-vf", CAMERA_FILTER, "-pix_fmt", "yuv420p", str(out)],
        check=True, timeout=120,
    )
    return out


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Path:
    """A live person: the clip segment where he blinks and moves."""
    clip = faces_dir / CLIP
    out = tmp_path_factory.mktemp("camera") / "live.y4m"
    return _to_y4m(["-ss", str(CLIP_START_S), "-t", str(CLIP_SECONDS), "-i", str(clip)], out)


@pytest.fixture(scope="module")
def photo_camera(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Path:
    """A still photo in front of the camera (a presentation attack)."""
    photo = faces_dir / PHOTO
    out = tmp_path_factory.mktemp("camera") / "photo.y4m"
    return _to_y4m(["-loop", "1", "-framerate", "15", "-t", "2", "-i", str(photo)], out)


@pytest.fixture(scope="module")
def empty_camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A camera that sees nobody (an empty, dim room)."""
    _ffmpeg()
    out = tmp_path_factory.mktemp("camera") / "empty.y4m"
    return _to_y4m(["-f", "lavfi", "-i", "color=c=0x303840:s=640x480:r=15", "-t", "2"], out)


@contextlib.contextmanager
def run_server(data_dir: Path, name: str, **settings: str) -> Iterator[LiveServer]:
    """The real server with its own SQLite database and development secret in ``data_dir``
    and one API client; ``settings`` are extra FACEAUTH_* environment variables. Its log
    is kept in the artifacts."""
    if not (REPO / "manage.py").is_file():
        pytest.skip("manage.py not found: the FaceAuth service is not in this checkout")
    env = clean_environment(FACEAUTH_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", **settings)
    try:
        with live_server(f"browser-{name}", data_dir, env) as server:
            yield server
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        if (data_dir / "server.log").exists():
            shutil.copyfile(data_dir / "server.log", ARTIFACTS / f"server-{name}.log")


@pytest.fixture(scope="module")
def faceauth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
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
