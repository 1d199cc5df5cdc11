"""Hostile input through a started server (scripts/serve.sh's runserver, Daphne): every
case gets a clear answer (an error message, a 4xxx close, a 401/404) and never a crash,
a silent drop or a session left active. The REST side covers forged, expired and
alg:none JWTs and other clients' sessions; the WebSocket side malformed messages,
non-images, a PNG bomb, a truncated JPEG, floods and single-use tokens."""

from __future__ import annotations

import base64
import functools
import json
import secrets
import struct
import time
import zlib
from collections.abc import Iterator

import cv2
import jwt
import numpy as np
import pytest
import requests
from django.test import override_settings
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.live_server import LiveServer, clean_environment, live_server

MAX_FRAMES = 6
SERVER_SECRET = secrets.token_urlsafe(50)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("hostile")
    env = clean_environment(
        FACEAUTH_DATA_DIR=str(workdir / "data"),
        DJANGO_SECRET_KEY=SERVER_SECRET,
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        FACEAUTH_ALLOWED_ORIGINS="*",
        FACEAUTH_MAX_FRAMES=str(MAX_FRAMES),  # sessions end by budget after a few frames
        FACEAUTH_ENGINE_THREADS="1",
        # These tests open many sessions at once on a shared machine: no admission control.
        FACEAUTH_ADMISSION_LATENCY_MS="0",
    )
    with live_server("hostile", workdir, env) as started:
        yield started


@functools.cache
def _issue(base_url: str, api_key: str, secret_key: str) -> str:
    response = requests.post(
        f"{base_url}/api/auth/client/", json={"api_key": api_key, "secret_key": secret_key}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


def jwt_for(server: LiveServer, api_key: str | None = None, secret_key: str | None = None) -> str:
    """A JWT for the server's client (or another one), issued once per client: the
    credential endpoint is throttled per IP."""
    return _issue(server.base_url, api_key or server.api_key, secret_key or server.secret_key)


def new_session(server: LiveServer, token: str | None = None, user_id: str = "u1") -> dict:
    response = requests.post(
        f"{server.base_url}/api/auth/enrollment/", json={"user_id": user_id},
        headers={"Authorization": f"Bearer {token or jwt_for(server)}"}, timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def status_of(server: LiveServer, session: dict) -> dict:
    return requests.get(
        f"{server.base_url}/api/auth/sessions/{session['session_id']}/status/",
        headers={"Authorization": f"Bearer {jwt_for(server)}"}, timeout=30,
    ).json()


def wait_for_end(server: LiveServer, session: dict, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = status_of(server, session)
        if not status["is_active"] or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def receive(ws) -> dict:
    return json.loads(ws.recv(timeout=30))


def close_code(ws) -> int:
    """Reads until the server closes; returns its close code (fails on a silent drop)."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None, "the server dropped the connection without a close frame"
    return closed.value.rcvd.code


def jpeg(width: int = 320, height: int = 240) -> bytes:
    gradient = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
    ok, data = cv2.imencode(".jpg", cv2.merge([gradient, gradient[::-1], gradient]))
    assert ok
    return data.tobytes()


def png_bomb(side: int = 30_000) -> bytes:
    """A small PNG that declares a side x side image (900 Mpx): refused from its header."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + checksum

    rows = zlib.compress(b"\x00" * (side + 1) * 64, 9)  # the first rows of zeros only
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def data_url(raw: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    "message, code",
    [
        ("{not json", "invalid_message"),
        (json.dumps([1, 2, 3]), "invalid_message"),
        (json.dumps({"type": "launch"}), "invalid_message"),
        (json.dumps({"type": "frame", "image": 42}), "invalid_message"),
        (json.dumps({"type": "frame", "image": data_url(b"hello, not an image")}), "invalid_image"),
        (json.dumps({"type": "frame", "image": "%%% not base64 %%%"}), "invalid_image"),
        (json.dumps({"type": "frame", "image": data_url(png_bomb(), "image/png")}), "image_too_large"),
        (json.dumps({"type": "frame", "image": data_url(jpeg()[: len(jpeg()) // 2])}), "invalid_image"),
        (json.dumps({"type": "frame", "image": data_url(b"GIF89a" + b"\x00" * 64, "image/gif")}),
         "unsupported_format"),
    ],
    ids=["malformed-json", "json-array", "unknown-type", "image-not-string", "not-an-image",
         "not-base64", "png-bomb", "truncated-jpeg", "gif"],
)
def test_bad_messages_get_a_non_fatal_error_and_the_session_goes_on(server, message, code):
    session = new_session(server)
    with connect(session["websocket_url"], max_size=None) as ws:
        assert receive(ws)["type"] == "connection_established"
        ws.send(message)
        answer = receive(ws)
        assert answer["type"] == "error" and answer["code"] == code and answer["fatal"] is False, answer
        ws.send(json.dumps({"type": "ping"}))
        assert receive(ws)["type"] == "pong"
    assert wait_for_end(server, session)["reason"] == "disconnected"


def test_binary_garbage_is_refused_too(server):
    session = new_session(server)
    with connect(session["websocket_url"], max_size=None) as ws:
        receive(ws)
        ws.send(secrets.token_bytes(5000))
        answer = receive(ws)
        assert answer["type"] == "error" and answer["code"] == "invalid_image"


def test_a_stream_of_garbage_is_cut_off_with_4014(server):
    session = new_session(server)
    with connect(session["websocket_url"], max_size=None) as ws:
        receive(ws)
        for _ in range(10):  # FACEAUTH_MAX_INVALID_FRAMES
            ws.send("garbage")
        answers = [receive(ws) for _ in range(10)]
        assert all(a["type"] == "error" for a in answers)
        assert answers[-1]["code"] == "too_many_invalid_frames" and answers[-1]["fatal"] is True
        assert close_code(ws) == 4014
    assert wait_for_end(server, session)["reason"] == "too_many_invalid_frames"


def test_a_frame_flood_is_answered_then_cut_off(server):
    session = new_session(server)
    frame = json.dumps({"type": "frame", "image": data_url(jpeg())})
    answers = []
    with connect(session["websocket_url"], max_size=None) as ws:
        receive(ws)
        for _ in range(40):  # as fast as the socket takes them
            ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                answers.append(json.loads(ws.recv(timeout=30)))
    codes = [a.get("code", a["type"]) for a in answers]
    # Nothing dropped silently: each frame is processed or refused by name, until the
    # refusals pass the frame budget and the socket is closed with a reason.
    assert set(codes) <= {"frame_processed", "frame_rate_exceeded", "too_many_invalid_frames"}, codes
    assert "frame_rate_exceeded" in codes and codes[-1] == "too_many_invalid_frames", codes
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4014
    assert wait_for_end(server, session)["reason"] == "too_many_invalid_frames"


def test_a_completed_sessions_token_is_single_use(server):
    session = new_session(server)
    frame = json.dumps({"type": "frame", "image": data_url(jpeg())})
    with connect(session["websocket_url"], max_size=None) as ws:
        receive(ws)
        message = {}
        for _ in range(MAX_FRAMES):
            time.sleep(0.12)
            ws.send(frame)
            message = receive(ws)
        while message["type"] != "enrollment_complete":
            message = receive(ws)
        assert message["success"] is False and message["reason"] == "liveness_failed"
        assert close_code(ws) == 1000
    with connect(session["websocket_url"], max_size=None) as again:
        refusal = receive(again)
        assert refusal["type"] == "error" and refusal["code"] == "session_closed"
        assert close_code(again) == 4009


def test_unknown_and_forged_session_tokens_are_refused(server):
    base = server.base_url.replace("http://", "ws://")
    # A client's JWT is not a session token, whatever its length.
    for token in ["nope", jwt_for(server), "A" * 43, "B" * 3000]:
        with connect(f"{base}/ws/auth/process-image/{token}/", max_size=None) as ws:
            refusal = receive(ws)
            assert refusal["code"] == "session_not_found"
            assert close_code(ws) == 4004
    with connect(f"{base}/ws/somewhere/else/", max_size=None) as ws:
        assert receive(ws)["code"] == "not_found"
        assert close_code(ws) == 4004


def test_a_second_socket_on_a_streaming_session_is_refused(server):
    session = new_session(server)
    with connect(session["websocket_url"], max_size=None) as first:
        receive(first)
        with connect(session["websocket_url"], max_size=None) as second:
            assert receive(second)["code"] == "session_in_use"
            assert close_code(second) == 4010
        first.send(json.dumps({"type": "ping"}))
        assert receive(first)["type"] == "pong"


# --- JWTs on the REST API ---
def _claims(server: LiveServer, **changes) -> dict:
    now = int(time.time())
    claims = {"iss": "faceauth", "aud": "faceauth-api", "sub": server.credentials["client_id"],
              "iat": now, "exp": now + 600}
    claims.update(changes)
    return claims


def _server_signed(server: LiveServer, claims: dict) -> str:
    """A token signed with the server's real key (derived from its DJANGO_SECRET_KEY)."""
    from auth_service.services.crypto import derive_key

    with override_settings(SECRET_KEY=SERVER_SECRET):
        return jwt.encode(claims, derive_key("jwt"), algorithm="HS256")


def _alg_none(claims: dict) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    return f"{header.decode()}.{body.decode()}."


@pytest.mark.parametrize(
    "make, code",
    [
        (lambda s: jwt.encode(_claims(s), "guessed-key-" * 4, algorithm="HS256"), "invalid_token"),
        (lambda s: _alg_none(_claims(s)), "invalid_token"),
        (lambda s: _server_signed(s, _claims(s, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
         "token_expired"),
        (lambda s: _server_signed(s, _claims(s, aud="someone-else")), "invalid_token"),
        (lambda s: _server_signed(s, _claims(s, sub="00000000-0000-0000-0000-000000000000")),
         "invalid_credentials"),
        (lambda s: jwt_for(s)[:-6] + ("AAAAAA" if not jwt_for(s).endswith("AAAAAA") else "BBBBBB"),
         "invalid_token"),
    ],
    ids=["forged-key", "alg-none", "expired", "wrong-audience", "unknown-client", "tampered"],
)
def test_bad_jwts_are_refused_with_401(server, make, code):
    token = make(server)
    response = requests.post(
        f"{server.base_url}/api/auth/enrollment/", json={"user_id": "u1"},
        headers={"Authorization": f"Bearer {token}"}, timeout=30,
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_server_signed_control_token_is_accepted(server):
    # The same construction as the refused tokens, with nothing wrong: proves the refusals
    # above are for the defect each one carries.
    token = _server_signed(server, _claims(server))
    assert new_session(server, token=token)["status"] == "pending"


def test_another_clients_session_is_not_found(server):
    session = new_session(server)
    intruder = json.loads(server.manage("create_client", f"other-{secrets.token_hex(3)}", "--json").stdout)
    token = jwt_for(server, intruder["api_key"], intruder["secret_key"])
    for method, path in [("get", "status"), ("post", "cancel"), ("get", "webhooks")]:
        response = requests.request(
            method, f"{server.base_url}/api/auth/sessions/{session['session_id']}/{path}/",
            headers={"Authorization": f"Bearer {token}"}, timeout=30,
        )
        assert response.status_code == 404 and response.json()["error"]["code"] == "session_not_found"
    by_api_key = requests.get(
        f"{server.base_url}/api/auth/sessions/{session['session_id']}/status/",
        headers={"Authorization": f"Bearer {intruder['api_key']}"}, timeout=30,
    )
    assert by_api_key.status_code == 404
    assert status_of(server, session)["status"] == "pending"  # untouched


def test_nothing_crashed(server):
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log and "Internal Server Error" not in log, server.log_tail(8000)

