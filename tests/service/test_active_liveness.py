"""The active liveness mode in the service: metadata.liveness and FACEAUTH_LIVENESS_MODE, the
challenge in frame_processed, the result recording the mode and the challenges passed; a
person obeying the prompts passes through the frame processor, a straight replay fails."""

from __future__ import annotations

import random
import secrets

import pytest
from asgiref.sync import sync_to_async

import face_engine as fe
from auth_service.services import crypto, frames, sessions
from face_engine.challenge import CHALLENGE_CODES, INSTRUCTIONS
from face_engine.evaluation import challenge_player as player

from .conftest import jpeg, video_jpegs
from .test_consumers import closed_with, connect, creds, run  # noqa: F401 (creds is a fixture)
from .test_crypto import decrypt_response

CLIP = "video/liveportrait_d9.mp4"  # turns both ways (left mirrored), looks down, blinks


@pytest.fixture
def drawn(monkeypatch):
    """Fixes the sequence the service draws, and records that it drew with a CSPRNG."""
    sequence: list[str] = []
    generators: list[random.Random] = []

    def draw(rng: random.Random, *, count: int | None = None) -> list[str]:
        generators.append(rng)
        return list(sequence)

    monkeypatch.setattr(fe, "draw_challenges", draw)
    return sequence, generators


# --- REST ---
@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/auth/enrollment/", "/api/auth/authentication/"])
def test_the_liveness_mode_is_validated(api, path):
    response = api.post(path, {"user_id": "u1", "metadata": {"liveness": "sometimes"}}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and "liveness must be one of passive, active" in str(error)


@pytest.mark.django_db
def test_an_active_session_reveals_no_challenge_before_it_starts(api):
    response = api.post("/api/auth/enrollment/", {"user_id": "u1", "metadata": {"liveness": "active"}},
                        format="json")
    assert response.status_code == 201
    text = response.content.decode()
    assert not any(code in text for code in CHALLENGE_CODES) and "challenge" not in text


# --- the socket ---
@pytest.mark.django_db(transaction=True)
async def test_connection_established_says_the_mode(creds, settings, drawn):  # noqa: F811
    drawn[0][:] = ["turn_left", "blink", "look_up"]
    created = await sync_to_async(sessions.enrollment_session_create)(
        client=creds.client, user_id="u1", target_samples=3, metadata={"liveness": "active"}
    )
    communicator = await connect(created.token)
    hello = await communicator.receive_json_from()
    assert hello["liveness"] == {"mode": "active", "challenges": 3}
    assert "follow the 3 instructions" in hello["message"]
    assert isinstance(drawn[1][0], secrets.SystemRandom)
    await communicator.disconnect()

    # Sessions that name no mode take the setting; passive draws nothing.
    for default, expected in (("passive", {"mode": "passive", "challenges": 0}),
                              ("active", {"mode": "active", "challenges": 3})):
        settings.FACEAUTH_LIVENESS_MODE = default
        created = await sync_to_async(sessions.enrollment_session_create)(
            client=creds.client, user_id="u1", target_samples=3
        )
        communicator = await connect(created.token)
        assert (await communicator.receive_json_from())["liveness"] == expected
        await communicator.disconnect()


@pytest.fixture
def camera_clock(monkeypatch):
    """Times the frames as a 10 frames/s camera would, whatever this machine's speed: with the
    server's clock, a fast machine runs out of frames before a challenge's window can end."""
    process = frames.FrameProcessor.process
    sent = [0]

    def process_at_camera_time(self, data, now):
        sent[0] += 1
        return process(self, data, 1000.0 + sent[0] / 10)

    monkeypatch.setattr(frames.FrameProcessor, "process", process_at_camera_time)


@pytest.mark.django_db(transaction=True)
async def test_a_straight_replay_fails_and_the_result_records_the_challenges(
    creds, faces_dir, settings, drawn, camera_clock  # noqa: F811
):
    settings.FACEAUTH_MAX_FPS = 1000
    drawn[0][:] = ["look_up", "turn_left"]
    created = await sync_to_async(sessions.enrollment_session_create)(
        client=creds.client, user_id="u1", target_samples=3, metadata={"liveness": "active"}
    )
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    answers, done = await run(communicator, video_jpegs(faces_dir / CLIP))
    pending = [a for a in answers if a["liveness"]["challenge"] is not None]
    assert pending, "the first challenge was never shown"
    challenge = pending[0]["liveness"]["challenge"]
    assert challenge["code"] == "look_up" and challenge["instruction"] == INSTRUCTIONS["look_up"]
    assert challenge["index"] == 0 and challenge["total"] == 2 and 0 < challenge["seconds_left"] <= 4
    assert pending[0]["hint"] == INSTRUCTIONS["look_up"]
    assert all(a["liveness"]["mode"] == "active" and a["liveness"]["challenges_total"] == 2 for a in answers)

    assert done is not None and done["success"] is False and done["reason"] == "liveness_failed"
    payload = decrypt_response(done["encrypted_data"]["encrypted_payload"], creds.secret_key)
    liveness = payload["liveness"]
    assert liveness["mode"] == "active" and liveness["challenges_total"] == 2 and not liveness["is_live"]
    assert liveness["challenges_passed"] == [] and liveness["failure"] in (
        "challenge_wrong_action", "challenge_timeout")
    assert crypto.verify_result_hmac(done["encrypted_data"], creds.secret_key)
    assert await closed_with(communicator) == 1000


# --- the frame processor, driven by a person obeying the prompts ---
@pytest.fixture(scope="module")
def obeying_index(faces_dir):
    return player.index_clip(faces_dir / CLIP)


@pytest.mark.django_db
def test_a_person_obeying_the_prompts_passes_the_frame_processor(obeying_index, drawn):
    sequence = ["turn_left", "look_down"]
    assert obeying_index.covers(sequence)
    drawn[0][:] = sequence
    processor = frames.FrameProcessor(
        frames.ProcessingConfig.from_settings(samples_needed=3, liveness_mode="active")
    )
    reports: list[frames.FrameReport] = []

    def send(frame: player.Frame, seconds: float):
        reports.append(processor.process(jpeg(frame.image), 1000.0 + seconds))
        return reports[-1].liveness

    # Rest where the clip shows both actions (the first rest is the one showing the most kinds).
    rest = obeying_index.covering(sequence)[0]
    player.obey(obeying_index, send, seed=1, rest=rest,
                finished=lambda state: reports[-1].verdict is not None)
    verdict = reports[-1].verdict
    assert verdict is not None and verdict.reason is None, verdict
    assert verdict.liveness["challenges_passed"] == sequence and verdict.liveness["is_live"]
    assert len(verdict.embeddings) == 3
