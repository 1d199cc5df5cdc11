#!/usr/bin/env python
"""FaceAuth client: enroll or authenticate a face over the REST API and the WebSocket.

    python test_websocket_auth.py API_KEY SECRET_KEY BASE_URL enrollment USER_ID
    python test_websocket_auth.py API_KEY SECRET_KEY BASE_URL authentication USER_ID  # 1:1
    python test_websocket_auth.py API_KEY SECRET_KEY BASE_URL authentication          # 1:N

Frames come from the webcam (default), a video file (--video FILE, with --start/--duration
to pick a part) or a folder of JPEG/PNG images (--images DIR), sent at most 10 per second.
Every server message is printed (with --liveness active, each new challenge too, as
">>> challenge 1/3: TURN YOUR HEAD TO THE LEFT"); the final result is decrypted with the secret key (the
quick start's algorithm) after checking its HMAC tag.

Exit status: 0 success, 1 the server completed the session without success (no match,
liveness failed, ...), 2 any error (bad credentials, connection, fatal server error,
frames ran out before the server decided).

Needs: requests, websockets, cryptography; opencv-python(-headless) for --video, the
webcam and resizing. It does not need the FaceAuth server code.

--binary sends each frame as a binary WebSocket message of raw JPEG bytes instead of the quick
start's base64 data URL: a third fewer bytes and less server CPU per frame (the browser
client's default). --language id asks for the server's hints and messages in Indonesian."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from cryptography.hazmat.backends import default_backend
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

EXIT_SUCCESS, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
MAX_FPS = 10.0
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


class ClientError(Exception):
    """Anything that stops the run with exit status 2."""


# --- the quick start's decryption, unchanged ---
def decrypt_response(encrypted_payload: str, secret_key: str) -> dict:
    # Decode base64
    encrypted_data = base64.b64decode(encrypted_payload)

    # Extract IV and ciphertext
    iv = encrypted_data[:16]
    ciphertext = encrypted_data[16:]

    # Derive key
    key = hashlib.sha256(secret_key.encode()).digest()

    # Decrypt
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv), backend=default_backend())
    decryptor = cipher.decryptor()
    padded_data = decryptor.update(ciphertext) + decryptor.finalize()

    # Unpad
    unpadder = padding.PKCS7(128).unpadder()
    data = unpadder.update(padded_data) + unpadder.finalize()

    # Parse JSON
    return json.loads(data.decode("utf-8"))


def verify_hmac(encrypted_data: dict, secret_key: str) -> bool:
    """The integrity tag: hex HMAC-SHA256 of the payload text, key SHA-256("faceauth-hmac:" + secret)."""
    key = hashlib.sha256(b"faceauth-hmac:" + secret_key.encode()).digest()
    expected = hmac.new(key, encrypted_data["encrypted_payload"].encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, str(encrypted_data.get("hmac", "")))


# --- frames ---
def _cv2():
    try:
        import cv2
    except ImportError:
        raise ClientError(
            "OpenCV is needed for --video, the webcam and resizing: pip install opencv-python-headless"
        ) from None
    return cv2


def encode_frame(frame, *, max_width: int, quality: int) -> bytes:
    """A BGR frame as JPEG bytes, scaled down to ``max_width`` (webcam-page sized frames)."""
    cv2 = _cv2()
    if frame.shape[1] > max_width:
        scale = max_width / frame.shape[1]
        frame = cv2.resize(frame, (max_width, round(frame.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ClientError("could not encode a frame as JPEG")
    return jpeg.tobytes()


def video_frames(path: Path, *, fps: float, start: float, duration: float | None) -> Iterator:
    """BGR frames of a video file at ``fps`` from ``start`` for ``duration`` seconds."""
    cv2 = _cv2()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ClientError(f"cannot open video {path}")
    try:
        source_fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        next_time, index = start, 0
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            position = index / source_fps
            index += 1
            if duration is not None and position >= start + duration:
                return
            if position + 0.5 / source_fps >= next_time:
                yield frame
                next_time += 1.0 / fps
    finally:
        capture.release()


def camera_frames(index: int) -> Iterator:
    cv2 = _cv2()
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise ClientError(f"cannot open camera {index} (use --video FILE or --images DIR)")
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                raise ClientError(f"camera {index} stopped delivering frames")
            yield frame
    finally:
        capture.release()


def image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ClientError(f"no .jpg/.jpeg/.png files in {folder}")
    return files


def frame_source(args: argparse.Namespace) -> Iterator[bytes]:
    """Encoded frames (JPEG/PNG bytes) from the chosen source, looping with --loop."""
    while True:
        if args.images:
            for path in image_files(Path(args.images)):
                data = path.read_bytes()
                if args.max_width and len(data) > 200_000:
                    data = encode_frame(_cv2().imread(str(path)), max_width=args.max_width,
                                        quality=args.jpeg_quality)
                yield data
        elif args.video:
            frames = video_frames(Path(args.video), fps=args.fps, start=args.start, duration=args.duration)
            for frame in frames:
                yield encode_frame(frame, max_width=args.max_width, quality=args.jpeg_quality)
        else:
            for frame in camera_frames(args.camera):
                yield encode_frame(frame, max_width=args.max_width, quality=args.jpeg_quality)
        if not args.loop:
            return


# --- printing ---
def describe(message: dict) -> str:
    """One compact line per server message."""
    kind = message.get("type")
    if kind == "connection_established":
        limits = message.get("limits", {})
        return (
            f"connection_established: session {message.get('session_id')} mode={message.get('mode')}"
            f" user_id={message.get('user_id')} target_samples={message.get('target_samples')}"
            f" limits: {limits.get('max_fps')} fps, {limits.get('max_frames')} frames,"
            f" {limits.get('session_timeout_seconds')} s"
            f" liveness={(message.get('liveness') or {}).get('mode')}"
            f" challenges={(message.get('liveness') or {}).get('challenges')}"
        )
    if kind == "frame_processed":
        box = message.get("face_box")
        face = f"face {box['x']},{box['y']} {box['width']}x{box['height']}" if box else "no face"
        quality = message.get("quality", {})
        issues = ",".join(i["code"] for i in quality.get("issues", [])) or "ok"
        live = message.get("liveness", {})
        return (
            f"frame {message.get('frame_number')}: {face} | quality {issues} | live"
            f" {'yes' if live.get('is_live') else 'no'} (blinks {live.get('blinks')},"
            f" head {'yes' if live.get('head_movement') else 'no'}) | samples"
            f" {message.get('samples_collected')}/{message.get('samples_needed')}"
            f"{' +' if message.get('sample_accepted') else ''}"
            + (f" | hint: {message['hint']}" if message.get("hint") else "")
        )
    if kind == "error":
        return (
            f"error {message.get('code')}: {message.get('message')}"
            + (" (fatal)" if message.get("fatal") else "")
        )
    if kind in ("enrollment_complete", "authentication_complete"):
        shown = dict(message)
        encrypted = dict(shown.get("encrypted_data") or {})
        if "encrypted_payload" in encrypted:
            encrypted["encrypted_payload"] = encrypted["encrypted_payload"][:32] + "..."
        shown["encrypted_data"] = encrypted
        return f"{kind}: {json.dumps(shown)}"
    return json.dumps(message)


def say(text: str) -> None:
    print(text, flush=True)


def announce_challenge(message: dict, args: argparse.Namespace) -> None:
    """Active liveness: prints each challenge once, when the server first shows it."""
    if message.get("type") != "frame_processed":
        return
    challenge = (message.get("liveness") or {}).get("challenge")
    if challenge and (challenge["index"], challenge["code"]) != args.shown_challenge:
        args.shown_challenge = (challenge["index"], challenge["code"])
        say(f">>> challenge {challenge['index'] + 1}/{challenge['total']}: {challenge['instruction'].upper()}"
            f" (within {challenge['seconds_left']:.0f} s)")


# --- the run ---
def _post(url: str, body: dict, *, token: str | None, timeout: float) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = requests.post(url, json=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise ClientError(f"POST {url} failed: {exc}") from None
    try:
        data = response.json()
    except ValueError:
        data = {"error": {"code": "invalid_response", "message": response.text[:200]}}
    if response.status_code >= 400:
        error = data.get("error", {})
        raise ClientError(
            f"POST {url} -> HTTP {response.status_code} {error.get('code')}: {error.get('message')}"
        )
    return data


def create_session(args: argparse.Namespace) -> dict:
    base = args.base_url.rstrip("/")
    say(f"-> POST {base}/api/auth/client/")
    auth = _post(f"{base}/api/auth/client/", {"api_key": args.api_key, "secret_key": args.secret_key},
                 token=None, timeout=args.timeout)
    say(f"<- client_id {auth['client_id']}, token expires {auth['expires_at']}")
    if args.mode == "enrollment":
        metadata = {"target_samples": args.target_samples} if args.target_samples else {}
        if args.enrollment_mode:
            metadata["enrollment_mode"] = args.enrollment_mode
        if args.liveness:
            metadata["liveness"] = args.liveness
        if args.language:
            metadata["language"] = args.language
        body = {"user_id": args.user_id, "metadata": metadata}
        url = f"{base}/api/auth/enrollment/"
    else:
        body = {"user_id": args.user_id} if args.user_id else {}
        metadata = {"liveness": args.liveness} if args.liveness else {}
        if args.language:
            metadata["language"] = args.language
        if metadata:
            body["metadata"] = metadata
        url = f"{base}/api/auth/authentication/"
    say(f"-> POST {url} {json.dumps(body)}")
    session = _post(url, body, token=auth["token"], timeout=args.timeout)
    say(f"<- {json.dumps({k: v for k, v in session.items() if k != 'session_token'})}")
    return session


def finish(message: dict, secret_key: str) -> int:
    encrypted = message.get("encrypted_data") or {}
    if not encrypted.get("encrypted_payload"):
        raise ClientError("the completion message has no encrypted_data")
    if "hmac" in encrypted and not verify_hmac(encrypted, secret_key):
        raise ClientError("HMAC check failed: the result was altered or the secret key is wrong")
    try:
        result = decrypt_response(encrypted["encrypted_payload"], secret_key)
    except ValueError as exc:
        raise ClientError(f"cannot decrypt the result (wrong secret key?): {exc}") from None
    say("Decrypted result" + (" (HMAC verified)" if "hmac" in encrypted else "") + ":")
    say(json.dumps(result, indent=2))
    if result.get("success"):
        say("SUCCESS")
        return EXIT_SUCCESS
    say(f"FAILED: {result.get('reason')} ({result.get('detail')})")
    return EXIT_FAILED


COMPLETIONS = ("enrollment_complete", "authentication_complete")


class Completed(Exception):
    """The server sent the session's result."""

    def __init__(self, message: dict) -> None:
        super().__init__(message.get("type"))
        self.message = message


def receive(
    socket, args: argparse.Namespace, *, until_answer: bool, timeout: float | None = None
) -> None:
    """Prints server messages until the answer to the last frame (frame_processed or a
    non-fatal error). Raises Completed with the result, ClientError on a fatal error."""
    while True:
        message = json.loads(socket.recv(timeout=timeout or args.timeout))
        say("<- " + (json.dumps(message) if args.verbose else describe(message)))
        announce_challenge(message, args)
        kind = message.get("type")
        if kind in COMPLETIONS:
            raise Completed(message)
        if kind == "error" and message.get("fatal"):
            raise ClientError(f"the server ended the session: {message.get('code')}")
        if until_answer and kind in ("frame_processed", "error"):
            return


def drain(socket, args: argparse.Namespace) -> None:
    """After the server closed: the messages it sent before closing are still readable."""
    try:
        while True:
            receive(socket, args, until_answer=False, timeout=2.0)
    except (ConnectionClosed, TimeoutError):
        pass


def stream(args: argparse.Namespace, websocket_url: str) -> int:
    say(f"-> connect {websocket_url}")
    try:
        socket = connect(websocket_url, open_timeout=args.timeout, max_size=2**22)
    except Exception as exc:  # OSError, InvalidStatus, InvalidURI, InvalidHandshake, ...
        raise ClientError(f"WebSocket connection failed: {exc}") from None
    with socket:
        try:
            hello = json.loads(socket.recv(timeout=args.timeout))
        except ConnectionClosed as exc:
            raise ClientError(f"the server closed the connection ({exc})") from None
        say("<- " + (json.dumps(hello) if args.verbose else describe(hello)))
        if hello.get("type") != "connection_established":
            drain(socket, args)
            raise ClientError(f"the server refused the session: {hello.get('code')}")
        limits = hello.get("limits", {})
        # A little above the server's minimum, so timer jitter never trips its rate limit.
        interval = max(1.0 / args.fps, limits.get("min_frame_interval_ms", 100) / 1000.0) + 0.005
        max_frames = limits.get("max_frames", 120)
        sent, next_send = 0, time.monotonic()
        try:
            try:
                for data in frame_source(args):
                    if sent >= max_frames:
                        break
                    time.sleep(max(0.0, next_send - time.monotonic()))
                    next_send = time.monotonic() + interval
                    if args.binary:
                        socket.send(data)
                    else:
                        mime = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
                        image = f"data:{mime};base64,{base64.b64encode(data).decode()}"
                        socket.send(json.dumps({"type": "frame", "image": image}))
                    sent += 1
                    receive(socket, args, until_answer=True)
                # Out of frames (or budget): a result would follow the last answer at once.
                drain(socket, args)
            except ConnectionClosed as exc:
                drain(socket, args)
                code = exc.rcvd.code if exc.rcvd else None
                raise ClientError(f"the server closed the connection (code {code})") from None
            except TimeoutError:
                raise ClientError(f"no answer from the server within {args.timeout} s") from None
        except Completed as done:
            return finish(done.message, args.secret_key)
        raise ClientError(f"frames ran out after {sent} before the server completed the session")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Enroll or authenticate a face against a FaceAuth server.",
        epilog="Exit status: 0 success, 1 the session completed without success, 2 errors.",
    )
    parser.add_argument("api_key", metavar="API_KEY")
    parser.add_argument("secret_key", metavar="SECRET_KEY")
    parser.add_argument("base_url", metavar="BASE_URL", help="e.g. http://localhost:8000")
    parser.add_argument("mode", metavar="MODE", choices=["enrollment", "authentication"],
                        help="enrollment or authentication")
    parser.add_argument("user_id", metavar="USER_ID", nargs="?",
                        help="required for enrollment; for authentication: verify this user "
                        "(omit to identify among all enrolled users)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--video", metavar="FILE", help="read frames from a video file")
    source.add_argument("--images", metavar="DIR", help="send the JPEG/PNG files of a folder, sorted by name")
    source.add_argument("--camera", type=int, default=0, metavar="N", help="webcam index (default 0)")
    parser.add_argument("--fps", type=float, default=MAX_FPS, help="frames per second (at most 10)")
    parser.add_argument("--start", type=float, default=0.0, metavar="SECONDS", help="video: start here")
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                        help="video: use this many seconds")
    parser.add_argument("--loop", action="store_true", help="start the source again when it ends")
    parser.add_argument("--target-samples", type=int, default=None, help="enrollment: samples to collect")
    parser.add_argument("--enrollment-mode", choices=["replace", "append"], default=None,
                        help="enrollment of an existing user: replace (default) or append templates")
    parser.add_argument("--liveness", choices=["passive", "active"], default=None,
                        help="liveness mode (default: the server's); active prints each instruction")
    parser.set_defaults(shown_challenge=None)
    parser.add_argument("--language", choices=["en", "id"], default=None,
                        help="language of the server's hints and messages (default: the client's, "
                        "else the server's)")
    parser.add_argument("--binary", action="store_true",
                        help="send raw JPEG bytes as binary messages, not data URLs: the faster path "
                        "(a third fewer bytes, no base64 on the server; bench/frame_transport.py)")
    parser.add_argument("--max-width", type=int, default=640, help="scale frames down to this width")
    parser.add_argument("--jpeg-quality", type=int, default=80)
    parser.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds")
    parser.add_argument("--verbose", action="store_true", help="print every message in full")
    args = parser.parse_args(argv)
    if args.mode == "enrollment" and not args.user_id:
        parser.error("enrollment needs a USER_ID")
    if not 0 < args.fps <= MAX_FPS:
        parser.error(f"--fps must be above 0 and at most {MAX_FPS:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        session = create_session(args)
        return stream(args, session["websocket_url"])
    except ClientError as exc:
        say(f"ERROR: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
