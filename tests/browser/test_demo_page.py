"""websocket_demo.html in headless Chromium with a fake camera playing real footage.

The main test enrolls a user through the page served at /demo/, verifies the same user
(laptop size) and identifies them (phone size); the page must show the decrypted results.
The others check that the page works opened as a file and from `python -m http.server`
(REST and WebSocket from another origin), and that each way a session can go wrong ends in
a clear message and a retry: a refused camera, an unreachable server, a wrong secret, a
still photo (liveness fails), a dropped connection (the server is killed) and an expired
session. Screenshots go to test-artifacts/browser/.

FACEAUTH_UPDATE_DEMO_SCREENSHOT=1 also writes docs/images/demo.png (the README's picture):
it is taken deliberately, not on every run, so the tree stays clean in CI."""

from __future__ import annotations

import gettext
import importlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import REPO, free_port

FLOW_TIMEOUT_MS = 150_000
USER_ID = "browser-demo-user"


def _new_page(browser, *, width: int = 1280, height: int = 800):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.problems = []  # uncaught exceptions and console errors, reported on failure
    page.on("pageerror", lambda error: page.problems.append(f"pageerror: {error}"))
    page.on(
        "console",
        lambda message: page.problems.append(f"console.{message.type}: {message.text}")
        if message.type == "error" else None,
    )
    return context, page


def _fill_credentials(page, server) -> None:
    page.fill("#server-url", server.base_url)
    page.fill("#api-key", server.api_key)
    page.fill("#secret-key", server.secret_key)


def _run_flow(page, server, mode: str, *, artifacts: Path, name: str) -> dict:
    """Starts the flow in `mode` and waits for the result (or the error) the page shows."""
    page.click(f"label[for=mode-{mode}]")
    page.click("#start")
    # Mid-stream picture: live video, face box, hint and progress.
    page.wait_for_function(
        "parseInt(document.getElementById('frames-value').textContent, 10) >= 3"
        " || !document.getElementById('alert').hidden",
        timeout=FLOW_TIMEOUT_MS,
    )
    page.screenshot(path=str(artifacts / f"{name}-streaming.png"))
    page.wait_for_selector("#result:not([hidden]), #alert:not([hidden])", timeout=FLOW_TIMEOUT_MS)
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    if page.is_visible("#alert"):
        pytest.fail(
            f"{mode}: the page shows an error: {page.inner_text('#alert')}\n"
            f"message log:\n{page.text_content('#log')}\n"
            f"browser problems: {page.problems}\nserver log:\n{server.log_tail()}"
        )
    result_class = page.get_attribute("#result", "class") or ""
    if "success" not in result_class:
        pytest.fail(
            f"{mode}: the session failed: {page.inner_text('#result')}\n"
            f"message log:\n{page.text_content('#log')}\nserver log:\n{server.log_tail()}"
        )
    return json.loads(page.inner_text("#result-json"))


def test_enroll_then_verify_through_the_demo_page(
    browser, faceauth_server, artifacts: Path
) -> None:
    context, page = _new_page(browser)
    try:
        page.goto(faceauth_server.base_url + "/demo/")
        # Served by FaceAuth itself, the page points at its own origin.
        assert page.input_value("#server-url") == faceauth_server.base_url
        _fill_credentials(page, faceauth_server)
        page.fill("#user-id", USER_ID)

        enrolled = _run_flow(page, faceauth_server, "enroll", artifacts=artifacts, name="1-enrolled")
        assert page.inner_text("#result-title") == f"Enrolled {USER_ID}"
        assert enrolled["type"] == "enrollment"
        assert enrolled["success"] is True
        assert enrolled["user_id"] == USER_ID
        assert enrolled["id"] and enrolled["timestamp"].endswith("Z")
        assert page.inner_text("#hmac-badge") == "HMAC-SHA256 verified"

        page.click("#again")
        verified = _run_flow(page, faceauth_server, "verify", artifacts=artifacts, name="2-verified")
        assert page.inner_text("#result-title") == f"Verified as {USER_ID}"
        assert verified["type"] == "authentication"
        assert verified["success"] is True
        assert verified["mode"] == "verification"
        assert verified["user_id"] == USER_ID
        assert verified["similarity"] >= verified["threshold"]
        assert verified["liveness"]["is_live"] is True
        assert page.inner_text("#hmac-badge") == "HMAC-SHA256 verified"

        # The frames really went through the socket and were answered one by one.
        log = "\n".join(page.eval_on_selector_all("#log li", "items => items.map(i => i.textContent)"))
        assert "frame_processed #1 " in log
        (artifacts / "message-log.txt").write_text(log)
        assert page.problems == []

        # Identification on a phone-sized screen: the same person is found among the
        # client's enrolled users.
        phone_context, phone = _new_page(browser, width=390, height=844)
        try:
            phone.goto(faceauth_server.base_url + "/demo/")
            _fill_credentials(phone, faceauth_server)
            identified = _run_flow(
                phone, faceauth_server, "identify", artifacts=artifacts, name="3-identified-phone"
            )
            assert phone.inner_text("#result-title") == f"Identified as {USER_ID}"
            assert identified["mode"] == "identification"
            assert identified["user_id"] == USER_ID
            assert phone.problems == []
        finally:
            phone_context.close()

        if os.environ.get("FACEAUTH_UPDATE_DEMO_SCREENSHOT") == "1":
            # The README's picture blurs the camera: real faces stay out of the repository.
            images = REPO / "docs" / "images"
            images.mkdir(parents=True, exist_ok=True)
            page.add_style_tag(content="#video, #still { filter: blur(18px); }")
            page.screenshot(path=str(images / "demo.png"), full_page=True)
    finally:
        context.close()


def _indonesian_hints() -> list[str]:
    """The Indonesian text of every hint the server can send (engine hints and challenge
    instructions, translated in auth_service/locale), read from the compiled catalogue."""
    # Modules, not the package's functions of the same names (face_engine.quality is one).
    challenge, liveness, quality = (
        importlib.import_module(f"face_engine.{name}") for name in ("challenge", "liveness", "quality")
    )
    english = [*quality.HINTS.values(), *challenge.INSTRUCTIONS.values(), "hold still, looking at the camera",
               *(text for name, text in vars(liveness).items() if name.startswith("HINT_"))]
    mo = REPO / "auth_service" / "locale" / "id" / "LC_MESSAGES" / "django.mo"
    with mo.open("rb") as handle:
        catalogue = gettext.GNUTranslations(handle)
    translated = sorted({catalogue.gettext(text) for text in english} - set(english))
    assert len(translated) >= 15, translated
    return translated


def test_the_demo_in_indonesian_announces_indonesian_hints(browser, faceauth_server, artifacts: Path) -> None:
    """The language switch sets metadata.language; the server's hints come back in Indonesian
    and the polite live region announces them, beside the page's own Indonesian instructions.
    Frames go as binary messages (the client's default)."""
    context, page = _new_page(browser)
    try:
        page.goto(faceauth_server.base_url + "/demo/")
        page.click("label[for=lang-id]")
        assert page.get_attribute("html", "lang") == "id"
        assert page.inner_text("#start") == "Mulai pendaftaran"
        assert page.get_attribute("#announcer", "aria-live") == "polite"
        _fill_credentials(page, faceauth_server)
        page.fill("#user-id", "budi-browser")
        page.click("#start")
        page.wait_for_function(
            "(hints) => hints.includes(document.getElementById('announcer').textContent)",
            arg=_indonesian_hints(), timeout=FLOW_TIMEOUT_MS,
        )
        announced = page.text_content("#announcer")
        page.screenshot(path=str(artifacts / "indonesian-streaming.png"))
        page.wait_for_selector("#result:not([hidden]), #alert:not([hidden])", timeout=FLOW_TIMEOUT_MS)
        log = "\n".join(page.eval_on_selector_all("#log li", "items => items.map(i => i.textContent)"))
        assert page.is_visible("#result"), f"{page.inner_text('#alert')}\n{log}"
        assert "sent as binary" in log
        assert page.problems == []
        print(f"announced: {announced!r}")
    finally:
        context.close()


@pytest.fixture(scope="module")
def static_server() -> Iterator[str]:
    """`python -m http.server` from the repository root, as the quick start serves the page."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(base + "/websocket_demo.html", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("opened_as", ["file", "http.server"])
def test_page_works_opened_as_a_file_or_from_http_server(
    request, opened_as: str, browser, faceauth_server, artifacts: Path
) -> None:
    """Away from /demo/ the page is another origin ("null" for file://): the REST calls
    (CORS) and the WebSocket handshake must still be accepted, and every asset must load
    from demo_assets/ beside the page."""
    if opened_as == "file":
        url = (REPO / "websocket_demo.html").as_uri()
    else:
        url = request.getfixturevalue("static_server") + "/websocket_demo.html"
    context, page = _new_page(browser)
    try:
        page.goto(url)
        assert page.evaluate("typeof window.CryptoJS.AES.decrypt") == "function"
        assert page.evaluate("window.FaceAuth.VERSION")
        assert page.input_value("#server-url") == "http://localhost:8000"
        page.screenshot(path=str(artifacts / f"opened-as-{opened_as}.png"), full_page=True)

        established = page.evaluate(
            """async ([baseUrl, apiKey, secretKey]) => {
                const client = new FaceAuth.FaceAuthClient(baseUrl);
                await client.authenticateClient(apiKey, secretKey);
                const session = await client.createEnrollment('other-origin-user');
                return await new Promise((resolve, reject) => {
                    const ws = new WebSocket(session.websocket_url);
                    ws.onmessage = (event) => { resolve(JSON.parse(event.data)); ws.close(); };
                    ws.onclose = (event) => reject(new Error('closed ' + event.code));
                    setTimeout(() => reject(new Error('no message')), 20000);
                });
            }""",
            [faceauth_server.base_url, faceauth_server.api_key, faceauth_server.secret_key],
        )
        assert established["type"] == "connection_established"
        assert established["session_type"] == "enrollment"
        assert page.problems == []
    finally:
        context.close()


def _wait_for_alert(page, timeout_ms: int) -> None:
    page.wait_for_selector("#alert:not([hidden])", timeout=timeout_ms)


def test_refused_camera_shows_a_clear_message_and_retry(
    launch_browser, faceauth_server, artifacts: Path
) -> None:
    with launch_browser(camera=None, allow_camera=False) as browser:
        context, page = _new_page(browser)
        page.goto(faceauth_server.base_url + "/demo/")
        _fill_credentials(page, faceauth_server)
        page.fill("#user-id", "nobody")
        page.click("#start")
        _wait_for_alert(page, 20_000)
        page.screenshot(path=str(artifacts / "error-camera-refused.png"), full_page=True)
        assert page.inner_text("#alert-title") == "Camera permission refused"
        assert "code: camera_denied" in page.inner_text("#alert-code")
        assert page.is_visible("#retry")
        assert page.is_enabled("#start")
        context.close()


def test_unreachable_server_then_retry(browser, faceauth_server, artifacts: Path) -> None:
    context, page = _new_page(browser)
    try:
        page.goto(faceauth_server.base_url + "/demo/")
        _fill_credentials(page, faceauth_server)
        # Port 9 (discard) on loopback: nothing listens there, the connection is refused.
        page.fill("#server-url", "http://127.0.0.1:9")
        page.fill("#user-id", "retry-user")
        page.click("#start")
        _wait_for_alert(page, 30_000)
        page.screenshot(path=str(artifacts / "error-server-unreachable.png"), full_page=True)
        assert page.inner_text("#alert-title") == "Cannot reach the server"
        assert "code: network_error" in page.inner_text("#alert-code")

        # Retry runs the flow again with what the form says now.
        page.fill("#server-url", faceauth_server.base_url)
        page.click("#retry")
        page.wait_for_selector("#result:not([hidden])", timeout=FLOW_TIMEOUT_MS)
        assert page.is_hidden("#alert")
        assert page.inner_text("#result-title") == "Enrolled retry-user"
    finally:
        context.close()


def test_wrong_secret_shows_the_server_error(browser, faceauth_server, artifacts: Path) -> None:
    context, page = _new_page(browser)
    try:
        page.goto(faceauth_server.base_url + "/demo/")
        _fill_credentials(page, faceauth_server)
        page.fill("#secret-key", "not-the-secret")
        page.fill("#user-id", "nobody")
        page.click("#start")
        _wait_for_alert(page, 30_000)
        page.screenshot(path=str(artifacts / "error-wrong-secret.png"), full_page=True)
        assert page.inner_text("#alert-title") == "Sign-in failed"
        assert "code: invalid_credentials · HTTP 401" in page.inner_text("#alert-code")
        assert page.is_visible("#retry")
    finally:
        context.close()


def test_photo_in_front_of_the_camera_fails_liveness(
    launch_browser, photo_camera: Path, faceauth_server, artifacts: Path
) -> None:
    """A still photo is a face of good quality that never blinks or moves: the session
    fails, and the page says why and offers to try again."""
    with launch_browser(camera=photo_camera) as browser:
        context, page = _new_page(browser)
        page.goto(faceauth_server.base_url + "/demo/")
        _fill_credentials(page, faceauth_server)
        page.fill("#user-id", "photo-attack")
        page.click("#start")
        page.wait_for_selector("#result:not([hidden]), #alert:not([hidden])", timeout=FLOW_TIMEOUT_MS)
        page.screenshot(path=str(artifacts / "fail-photo.png"), full_page=True)
        assert page.is_visible("#result"), page.inner_text("#alert")
        assert "failure" in (page.get_attribute("#result", "class") or "")
        assert page.inner_text("#result-title") == "Enrollment failed"
        assert "reason: liveness_failed" in page.inner_text("#result-sub")
        payload = json.loads(page.inner_text("#result-json"))
        assert payload["success"] is False
        assert payload["reason"] == "liveness_failed"
        assert page.inner_text("#again") == "Try again"
        context.close()


def test_dropped_connection_shows_a_clear_message_and_retry(
    browser, start_server, artifacts: Path
) -> None:
    with start_server("crash") as server:
        context, page = _new_page(browser)
        try:
            page.goto(server.base_url + "/demo/")
            _fill_credentials(page, server)
            page.fill("#user-id", "dropped-user")
            page.click("#start")
            # Enrollment needs 5 samples spaced 250 ms apart: after 2 frames it is still going.
            page.wait_for_function(
                "parseInt(document.getElementById('frames-value').textContent, 10) >= 2",
                timeout=FLOW_TIMEOUT_MS,
            )
            server.crash()
            _wait_for_alert(page, 30_000)
            page.screenshot(path=str(artifacts / "error-connection-dropped.png"), full_page=True)
            assert page.inner_text("#alert-title") == "Connection dropped"
            assert "close code 1006" in page.inner_text("#alert-code")
            assert page.is_visible("#retry")
        finally:
            context.close()


def test_expired_session_shows_a_clear_message_and_retry(
    launch_browser, empty_camera: Path, start_server, artifacts: Path
) -> None:
    """Nobody in front of the camera until the (shortened) session time runs out."""
    with (
        start_server("expiry", FACEAUTH_SESSION_TIMEOUT_SECONDS="10") as server,
        launch_browser(camera=empty_camera) as browser,
    ):
        context, page = _new_page(browser)
        page.goto(server.base_url + "/demo/")
        _fill_credentials(page, server)
        page.fill("#user-id", "nobody-there")
        page.click("#start")
        page.wait_for_function(
            "parseInt(document.getElementById('frames-value').textContent, 10) >= 2",
            timeout=FLOW_TIMEOUT_MS,
        )
        assert "no face" in page.inner_text("#hint")
        page.wait_for_selector("#result:not([hidden]), #alert:not([hidden])", timeout=40_000)
        page.screenshot(path=str(artifacts / "fail-expired.png"), full_page=True)
        assert page.is_visible("#result"), page.inner_text("#alert")
        assert page.inner_text("#result-title") == "Session expired"
        assert "reason: session_expired" in page.inner_text("#result-sub")
        assert page.inner_text("#again") == "Try again"
        context.close()


def test_active_liveness_shows_each_instruction_with_an_arrow(
    browser, faceauth_server, artifacts: Path
) -> None:
    """Picking Active: the page shows the pending challenge (instruction, arrow or eye, count
    and seconds left) and, at the end, how many challenges passed. The fake camera is a
    recording that cannot follow the prompts, so only the display is checked here."""
    context, page = _new_page(browser)
    try:
        page.goto(faceauth_server.base_url + "/demo/")
        _fill_credentials(page, faceauth_server)
        page.fill("#user-id", "active-demo-user")
        page.click("label[for=liveness-active]")
        # The recording may answer a challenge wrongly within a frame of its display, so every
        # display of the challenge box is recorded as it happens rather than polled for.
        page.evaluate("""() => {
          const box = document.getElementById('challenge');
          window.challengeShown = [];
          new MutationObserver(() => {
            if (!box.hidden) window.challengeShown.push({
              code: box.dataset.code,
              arrow: document.getElementById('challenge-arrow').textContent,
              text: document.getElementById('challenge-text').textContent,
              count: document.getElementById('challenge-count').textContent});
          }).observe(box, {attributes: true, childList: true, subtree: true, characterData: true});
        }""")
        page.click("#start")
        page.wait_for_selector("#challenge:not([hidden]), #result:not([hidden]), #alert:not([hidden])",
                               timeout=FLOW_TIMEOUT_MS)
        if page.is_visible("#challenge"):
            page.screenshot(path=str(artifacts / "active-challenge.png"))
        page.wait_for_selector("#result:not([hidden]), #alert:not([hidden])", timeout=FLOW_TIMEOUT_MS)
        shown = page.evaluate("window.challengeShown")
        assert shown, page.text_content("#log")
        arrows = {"turn_left": "\u2190", "turn_right": "\u2192", "look_up": "\u2191", "look_down": "\u2193",
                  "blink": "\U0001F441"}
        instructions = {"turn your head to the left", "turn your head to the right", "look up", "look down",
                        "blink your eyes"}
        first = shown[0]
        assert first["count"].startswith("1 / "), shown
        for display in shown:
            assert display["arrow"] == arrows[display["code"]], display
            assert display["text"].lower() in instructions, display
        assert page.is_visible("#result"), page.inner_text("#alert")
        assert page.is_hidden("#challenge")
        assert "passed" in page.inner_text("#result-facts")
        payload = json.loads(page.inner_text("#result-json"))
        assert payload["liveness"]["mode"] == "active"
    finally:
        context.close()
