"""The anti-spoofing verdict through the service: the session's reason, its detail, the
encrypted result, the status document's explanation, the metrics and the settings."""

from __future__ import annotations

import dataclasses

import pytest
from asgiref.sync import sync_to_async

from auth_service.services import frames
from face_engine.liveness.presentation import PresentationConfig

from .conftest import video_jpegs
from .test_consumers import connect, create_enrollment, creds, fast, run  # noqa: F401 (fixtures)
from .test_crypto import decrypt_response
from .test_metrics import scrape
from .test_settings import settings_with

CLIP = "video/liveportrait_d10.mp4"


@pytest.fixture(scope="module")
def clip(faces_dir):
    return video_jpegs(faces_dir / CLIP, duration=8)


def _processor(threshold: float | None) -> frames.FrameProcessor:
    config = frames.ProcessingConfig.from_settings(samples_needed=3)
    presentation = None if threshold is None else PresentationConfig(threshold=threshold)
    return frames.FrameProcessor(dataclasses.replace(config, presentation=presentation))


@pytest.mark.django_db
def test_an_attack_verdict_ends_the_session_as_a_presentation_attack(clip):
    # A threshold no mean real-probability reaches: every session is judged an attack.
    processor = _processor(1.01)
    reports = []
    for number, jpeg in enumerate(clip):
        reports.append(processor.process(jpeg, 1000.0 + number / 10))
        if reports[-1].verdict is not None:
            break
    verdict = reports[-1].verdict
    assert verdict is not None and verdict.reason == "presentation_attack", verdict
    assert "photo or a screen" in str(verdict.detail)
    assert verdict.liveness["failure"] == "presentation_attack"
    assert verdict.liveness["presentation"] == "attack"
    assert verdict.liveness["explanation"]["presentation"] == "attack"
    # Decided on the fifth scored frame, one usable frame in three: well within the budget.
    assert len(reports) < 30
    assert reports[-1].liveness.hint == "a photo or a screen was detected: show your own face to the camera"


@pytest.mark.django_db
def test_without_the_check_the_verdict_stays_live(clip):
    processor = _processor(None)
    states = [processor.process(jpeg, 1000.0 + number / 10).liveness for number, jpeg in enumerate(clip)]
    assert all(state.presentation == "live" for state in states)
    assert any(state.live for state in states)


@pytest.mark.django_db(transaction=True)
async def test_the_client_reads_the_reason_in_every_channel(creds, clip, fast, settings, client):  # noqa: F811
    settings.FACEAUTH_PRESENTATION_THRESHOLD = 1.0
    settings.FACEAUTH_METRICS_ENABLED = True
    created = await create_enrollment(creds)
    communicator = await connect(created.token)
    await communicator.receive_json_from()
    answers, done = await run(communicator, clip)
    await communicator.disconnect()
    assert done is not None and done["success"] is False and done["reason"] == "presentation_attack", done
    assert answers[-1]["liveness"]["presentation"] in ("undecided", "attack")
    payload = decrypt_response(done["encrypted_data"]["encrypted_payload"], creds.secret_key)
    assert payload["reason"] == "presentation_attack"
    assert payload["liveness"]["presentation"] == "attack"
    assert payload["liveness"]["failure"] == "presentation_attack"
    status = await sync_to_async(_status)(client, creds, created.session.id)
    assert status["status"] == "failed" and status["reason"] == "presentation_attack"
    assert status["liveness_explanation"]["presentation"] == "attack"
    assert set(status["liveness_explanation"]) >= {"blink", "head_movement", "frames_unusable", "failure"}
    counted = await sync_to_async(scrape)()
    assert counted[("faceauth_liveness_failures_total", (("reason", "presentation_attack"),))] >= 1


def _status(client, credentials, session_id) -> dict:
    return client.get(f"/api/auth/sessions/{session_id}/status/",
                      HTTP_AUTHORIZATION=f"Bearer {credentials.api_key}").json()


@pytest.mark.parametrize("value", ["1.5", "-0.1", "high"])
def test_a_bad_threshold_refuses_to_start(value, tmp_path):
    result = settings_with(tmp_path, FACEAUTH_PRESENTATION_THRESHOLD=value)
    assert result.returncode != 0 and "FACEAUTH_PRESENTATION_THRESHOLD" in result.stderr
