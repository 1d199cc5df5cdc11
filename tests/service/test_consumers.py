"""The capture WebSocket, in process with WebsocketCommunicator, on real footage."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from auth_service.consumers import INBOX_SIZE
from auth_service.models import AuthSession, FaceTemplate
from auth_service.services import clients, crypto, sessions
from auth_service.services.frames import FrameProcessor
from config.asgi import application

from .conftest import video_jpegs
from .test_crypto import decrypt_response

pytestmark = [pytest.mark.django_db(transaction=True)]
CLIP = "video/liveportrait_d9.mp4"  # a man with glasses: blinks, small head turns
OTHER = "video/liveportrait_d10.mp4"  # a woman


@pytest.fixture(scope="module")
def clip(faces_dir):
    return {
        "enroll": video_jpegs(faces_dir / CLIP, duration=10),
        "verify": video_jpegs(faces_dir / CLIP, start=10),
        "other": video_jpegs(faces_dir / OTHER),
        "photo": (faces_dir / "obama" / "obama.jpg").read_bytes(),
    }


@pytest.fixture
def fast(settings):
    """Frames as fast as the CPU allows; the 10 fps limit has its own tests. The session's
    clock is the arrival time, so a clip sent this way lasts well under its length: samples
    are taken on every frame instead of every 250 ms once liveness has passed."""
    settings.FACEAUTH_MAX_FPS = 1000
    settings.FACEAUTH_SAMPLE_INTERVAL_MS = 0


@pytest.fixture
def creds(db):
    return clients.client_create(name="acme")


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()


async def connect(token: str, headers=None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application, f"/ws/auth/process-image/{token}/", headers=headers or []
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def closed_with(communicator: WebsocketCommunicator) -> int:
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return output["code"]


async def run(communicator, frames, *, binary=False) -> tuple[list[dict], dict | None]:
    """Sends frames in order, one answer per frame, until a completion message."""
    answers = []
    for frame in frames:
        if binary:
            await communicator.send_to(bytes_data=frame)
        else:
            await communicator.send_json_to({"type": "frame", "image": data_url(frame)})
        message = await communicator.receive_json_from(timeout=10)
        if message["type"].endswith("_complete"):
            return answers, message
        answers.append(message)
        assert message["type"] == "frame_processed", message
    return answers, None


async def create_enrollment(creds, user_id="user123", target=3):
    return await sync_to_async(sessions.enrollment_session_create)(
        client=creds.client, user_id=user_id, target_samples=target
    )


async def create_authentication(creds, user_id=None):
    return await sync_to_async(sessions.authentication_session_create)(
        client=creds.client, user_id=user_id
    )


async def enroll(creds, frames, user_id="user123") -> dict:
    created = await create_enrollment(creds, user_id)
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    _, done = await run(communicator, frames)
    assert done is not None and done["success"], done
    await communicator.disconnect()
    return done


async def status_of(session_id) -> str:
    return (await AuthSession.objects.aget(pk=session_id)).status


async def test_enrollment_end_to_end(creds, clip, fast):
    created = await create_enrollment(creds, target=3)
    communicator = await connect(created.token)
    hello = await communicator.receive_json_from()
    assert hello["type"] == "connection_established"
    assert hello["session_id"] == str(created.session.id)
    assert hello["session_type"] == hello["mode"] == "enrollment"
    assert hello["user_id"] == "user123" and hello["target_samples"] == 3
    assert set(hello["limits"]) >= {"max_fps", "min_frame_interval_ms", "max_frames", "min_frames",
                                    "session_timeout_seconds", "max_message_bytes"}
    assert hello["expires_at"].endswith("Z")

    answers, done = await run(communicator, clip["enroll"])
    first = answers[0]
    assert first["frame_number"] == 1 and first["face_detected"] and first["face_count"] == 1
    assert set(first["face_box"]) == {"x", "y", "width", "height"}
    assert first["frame_size"] == {"width": 512, "height": 480}
    assert first["quality"]["ok"] is True and first["liveness"]["is_live"] is False
    assert set(first["liveness"]) >= {"is_live", "blink_detected", "blinks", "head_movement",
                                      "same_person", "score", "missing"}
    assert first["samples_needed"] == 3 and first["hint"]
    # Samples only grow; the frame that brings the last one (or liveness) ends the session.
    collected = [answer["samples_collected"] for answer in answers]
    assert collected == sorted(collected) and collected[-1] >= 2

    assert done["type"] == "enrollment_complete" and done["success"] is True
    assert done["status"] == "completed" and done["samples"] == 3
    assert done["enrollment_id"] == str(created.session.id) and done["user_id"] == "user123"
    encrypted = done["encrypted_data"]
    assert crypto.verify_result_hmac(encrypted, creds.secret_key)
    payload = decrypt_response(encrypted["encrypted_payload"], creds.secret_key)
    assert payload["id"] == done["enrollment_id"] and payload["timestamp"].endswith("Z")
    assert payload["success"] and payload["samples"] == 3 and payload["liveness"]["is_live"]
    assert await closed_with(communicator) == 1000
    assert await FaceTemplate.objects.filter(user__user_id="user123").acount() == 3
    assert await status_of(created.session.id) == "completed"

    # Single use: the token is dead now.
    again = await connect(created.token)
    error = await again.receive_json_from()
    assert error == {"type": "error", "code": "session_closed", "message": error["message"],
                     "fatal": True}
    assert await closed_with(again) == 4009


async def test_verification_identification_and_a_stranger(creds, clip, fast):
    await enroll(creds, clip["enroll"])

    created = await create_authentication(creds, "user123")
    communicator = await connect(created.token)
    hello = await communicator.receive_json_from()
    assert hello["mode"] == "verification"
    _, done = await run(communicator, clip["verify"], binary=True)  # raw JPEG messages
    assert done["type"] == "authentication_complete" and done["success"] is True
    assert done["user_id"] == "user123" and done["similarity"] >= done["threshold"]
    payload = decrypt_response(done["encrypted_data"]["encrypted_payload"], creds.secret_key)
    assert payload["user_id"] == "user123" and payload["session_id"] == str(created.session.id)
    assert payload["liveness"]["is_live"] is True
    await communicator.disconnect()

    created = await create_authentication(creds)
    communicator = await connect(created.token)
    assert (await communicator.receive_json_from())["mode"] == "identification"
    _, done = await run(communicator, clip["verify"])
    assert done["success"] is True and done["user_id"] == "user123"
    await communicator.disconnect()

    created = await create_authentication(creds, "user123")
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    _, done = await run(communicator, clip["other"])
    assert done is not None, "the stranger's clip did not complete"
    assert done["success"] is False and done["reason"] == "no_match"
    assert done["user_id"] is None and done["similarity"] is None  # kept in the payload
    payload = decrypt_response(done["encrypted_data"]["encrypted_payload"], creds.secret_key)
    assert payload["similarity"] < payload["threshold"]
    assert await closed_with(communicator) == 1000
    assert await status_of(created.session.id) == "failed"


async def test_a_repeated_photo_fails_liveness(creds, clip, fast):
    await enroll(creds, clip["enroll"])
    created = await create_authentication(creds, "user123")
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    answers, done = await run(communicator, [clip["photo"]] * 60)
    assert done["success"] is False and done["reason"] == "liveness_failed"
    assert "still image" in done["detail"] and len(answers) < 60
    await communicator.disconnect()


async def test_refused_connections_carry_a_code(creds):
    communicator = await connect("no-such-token")
    assert (await communicator.receive_json_from())["code"] == "session_not_found"
    assert await closed_with(communicator) == 4004

    created = await create_enrollment(creds)
    first = await connect(created.token)
    await first.receive_json_from()
    second = await connect(created.token)
    assert (await second.receive_json_from())["code"] == "session_in_use"
    assert await closed_with(second) == 4010
    await first.disconnect()

    expired = await create_enrollment(creds)
    from django.utils import timezone

    await AuthSession.objects.filter(pk=expired.session.pk).aupdate(expires_at=timezone.now())
    communicator = await connect(expired.token)
    assert (await communicator.receive_json_from())["code"] == "session_expired"
    assert await closed_with(communicator) == 4008


async def test_bad_messages_are_answered_and_then_cut_off(creds, settings):
    settings.FACEAUTH_MAX_INVALID_FRAMES = 3
    created = await create_enrollment(creds)
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    await communicator.send_to(text_data="not json")
    first = await communicator.receive_json_from()
    assert first["type"] == "error" and first["code"] == "invalid_message" and not first["fatal"]
    await communicator.send_json_to({"type": "ping"})
    pong = await communicator.receive_json_from()
    assert pong["type"] == "pong" and pong["timestamp"].endswith("Z")
    await communicator.send_json_to({"type": "frame", "image": "data:image/jpeg;base64,AAAA"})
    second = await communicator.receive_json_from()
    assert second["code"] == "invalid_image" and not second["fatal"]
    await communicator.send_json_to({"type": "selfie"})
    fatal = await communicator.receive_json_from()
    assert fatal["code"] == "too_many_invalid_frames" and fatal["fatal"]
    assert await closed_with(communicator) == 4014
    assert await status_of(created.session.id) == "cancelled"


async def test_frames_above_the_rate_limit_are_refused_with_a_message(creds, clip, settings):
    # Frames are timed when they arrive; at 2 per second the burst is used up before the
    # bucket refills even on a slow machine.
    settings.FACEAUTH_MAX_FPS = 2
    created = await create_enrollment(creds)
    communicator = await connect(created.token)
    hello = await communicator.receive_json_from()
    burst = hello["limits"]["frame_burst"]
    # A burst of frames at once passes (jitter), one more is refused until the bucket refills.
    for index in range(burst + 1):
        await communicator.send_json_to({"type": "frame", "image": data_url(clip["enroll"][index])})
    answers = [await communicator.receive_json_from(timeout=10) for _ in range(burst + 1)]
    assert [a["type"] for a in answers[:burst]] == ["frame_processed"] * burst
    assert answers[burst]["type"] == "error" and answers[burst]["code"] == "frame_rate_exceeded"
    assert not answers[burst]["fatal"] and "at most 2 per second" in answers[burst]["message"]
    await asyncio.sleep(0.5)
    await communicator.send_to(bytes_data=clip["enroll"][burst + 1])
    assert (await communicator.receive_json_from(timeout=10))["frame_number"] == burst + 1
    await communicator.disconnect()


async def test_frames_are_timed_when_they_arrive_not_when_their_turn_comes(creds, clip, monkeypatch):
    """A frame that takes a second in the engine holds up the ten sent after it at 10 a
    second; they are answered late, as a burst, but none is refused for the rate: the
    client never sent faster than allowed."""
    original = FrameProcessor.process

    def first_frame_slow(self, data, now):
        if self.frames_processed == 0:
            time.sleep(1.0)
        return original(self, data, now)

    monkeypatch.setattr(FrameProcessor, "process", first_frame_slow)
    created = await create_enrollment(creds, target=10)
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    for frame in clip["enroll"][:11]:
        await communicator.send_json_to({"type": "frame", "image": data_url(frame)})
        await asyncio.sleep(0.1)
    answers = [await communicator.receive_json_from(timeout=10) for _ in range(11)]
    assert [a["type"] for a in answers] == ["frame_processed"] * 11, answers
    assert [a["frame_number"] for a in answers] == list(range(1, 12))
    await communicator.disconnect()


async def test_frames_are_taken_in_and_answered_while_the_database_thread_is_busy(creds, clip):
    """The worker's one database thread may be busy for a while (a session's matching and
    result, an admission decision): frames arriving meanwhile are still taken off the socket
    and timed as they come (released together once that thread is free, the rate gate would
    read them as a burst), and answered: the session's progress is written in the background
    and lands once the thread is free."""
    created = await create_enrollment(creds, target=10)
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    await communicator.send_to(bytes_data=clip["enroll"][0])  # the engine warmed up
    assert (await communicator.receive_json_from(timeout=30))["type"] == "frame_processed"
    busy = asyncio.ensure_future(sync_to_async(time.sleep)(3.0))  # the thread that serves the ORM
    await asyncio.sleep(0.05)
    for frame in clip["enroll"][1:12]:
        await communicator.send_to(bytes_data=frame)
        await asyncio.sleep(0.1)
    answers = [await communicator.receive_json_from(timeout=10) for _ in range(11)]
    assert [a["type"] for a in answers] == ["frame_processed"] * 11, answers
    assert not busy.done(), "the frames were answered only once the database thread was free"
    await busy
    for _ in range(50):
        session = await AuthSession.objects.aget(pk=created.session.id)
        if session.frames_received >= 2:
            break
        await asyncio.sleep(0.1)
    assert session.frames_received >= 2 and session.liveness, "the progress never landed"
    await communicator.disconnect()


async def test_a_session_that_ends_with_frames_queued_still_hears_the_disconnect(creds, clip, fast, settings):
    """The session ends at its second frame while a full queue of frames waits behind it:
    the rest are dropped unhandled, so the disconnect after them is taken at once."""
    settings.FACEAUTH_MAX_FRAMES = 2
    created = await create_enrollment(creds)
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    for frame in clip["enroll"][:INBOX_SIZE + 5]:
        await communicator.send_json_to({"type": "frame", "image": data_url(frame)})
    messages = [await communicator.receive_json_from(timeout=10) for _ in range(3)]
    assert messages[-1]["type"] == "enrollment_complete" and not messages[-1]["success"], messages
    assert await closed_with(communicator) == 1000
    await communicator.disconnect(timeout=5)
    assert not communicator.future.cancelled()  # it stopped on its own, not cut off at the timeout


async def test_oversized_messages_are_refused(creds, settings):
    settings.FACEAUTH_MAX_MESSAGE_BYTES = 2048
    created = await create_enrollment(creds)
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    await communicator.send_to(bytes_data=b"\xff" * 4096)
    error = await communicator.receive_json_from()
    assert error["code"] == "message_too_large" and not error["fatal"]
    await communicator.disconnect()


async def test_idle_sockets_are_closed(creds, settings):
    settings.FACEAUTH_IDLE_TIMEOUT_SECONDS = 1
    created = await create_enrollment(creds)
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    error = await communicator.receive_json_from(timeout=5)
    assert error["code"] == "idle_timeout" and error["fatal"]
    assert await closed_with(communicator) == 4011
    assert await status_of(created.session.id) == "cancelled"


async def test_expiry_during_the_session_completes_it_without_success(creds, settings):
    settings.FACEAUTH_SESSION_TIMEOUT_SECONDS = 1
    created = await create_enrollment(creds)
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    done = await communicator.receive_json_from(timeout=5)
    assert done["type"] == "enrollment_complete" and done["success"] is False
    assert done["status"] == "expired" and done["reason"] == "session_expired"
    payload = decrypt_response(done["encrypted_data"]["encrypted_payload"], creds.secret_key)
    assert payload["reason"] == "session_expired"
    assert await closed_with(communicator) == 1000


async def test_disconnecting_cancels_the_session(creds):
    created = await create_enrollment(creds)
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    await communicator.disconnect()
    assert await status_of(created.session.id) == "cancelled"


async def test_cancel_through_the_api_reaches_the_socket(creds):
    created = await create_enrollment(creds)
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    await sync_to_async(sessions.session_cancel)(client=creds.client, session_id=created.session.id)
    error = await communicator.receive_json_from(timeout=5)
    assert error["code"] == "session_cancelled" and error["fatal"]
    assert await closed_with(communicator) == 4012


@pytest.mark.parametrize(
    "allowed, origin, accepted",
    [
        (["*"], b"https://anything.example", True),
        (["null"], b"null", True),
        (["http://localhost:8080"], b"http://localhost:8080", True),
        (["http://localhost:8080"], b"https://evil.example", False),
        (["http://localhost:8080"], b"null", False),
        ([], None, True),  # non-browser clients send no Origin
        ([], b"http://testserver", True),  # our own /demo/ page
    ],
)
async def test_websocket_origins(creds, settings, allowed, origin, accepted):
    settings.FACEAUTH_ALLOWED_ORIGINS = allowed
    created = await create_enrollment(creds)
    headers = [(b"host", b"testserver")] + ([(b"origin", origin)] if origin else [])
    communicator = WebsocketCommunicator(
        application, f"/ws/auth/process-image/{created.token}/", headers=headers
    )
    connected, _ = await communicator.connect()
    assert connected is accepted
    if connected:
        assert (await communicator.receive_json_from())["type"] == "connection_established"
    await communicator.disconnect()


async def test_messages_are_json_objects_with_a_type(creds):
    created = await create_enrollment(creds)
    communicator = await connect(created.token)
    raw = await communicator.receive_from()
    assert json.loads(raw)["type"] == "connection_established"
    await communicator.disconnect()
