"""The frame rate gate: a token bucket of FACEAUTH_FRAME_BURST frames refilled at
FACEAUTH_MAX_FPS a second (FrameProcessor.admit), with timestamps, not wall time."""

from __future__ import annotations

import numpy as np
import pytest

from auth_service.errors import FrameRateExceeded, TooManyInvalidFrames
from auth_service.services.frames import FrameProcessor, ProcessingConfig, SessionLimits


def processor() -> FrameProcessor:
    return FrameProcessor(ProcessingConfig.from_settings(samples_needed=3))


def refused(proc: FrameProcessor, arrivals) -> int:
    count = 0
    for now in arrivals:
        try:
            proc.admit(float(now))
        except FrameRateExceeded:
            count += 1
    return count


@pytest.mark.parametrize("seed", range(5))
def test_a_client_averaging_ten_fps_with_jitter_is_never_refused(seed):
    # Sent every 100 ms (a clock-driven client) or every 100-105 ms, each arrival delayed
    # by 0-60 ms of network and scheduling jitter, so two can arrive 40 ms apart.
    rng = np.random.default_rng(seed)
    for sent in (np.arange(600) * 0.1, np.cumsum(rng.uniform(0.100, 0.105, 600))):
        arrivals = np.sort(sent + rng.uniform(0.0, 0.06, sent.size))
        proc = processor()
        assert refused(proc, 1000 + arrivals) == 0
        assert proc.frames_received == 600 and proc.rate_rejections == 0


def test_a_pause_does_not_bank_more_than_the_burst():
    proc = processor()
    proc.admit(0.0)
    # After ten idle seconds the bucket holds 3 frames, not 100.
    assert refused(proc, [10.0, 10.0, 10.0, 10.0]) == 1
    assert proc.frames_received == 4


def test_a_flood_is_refused_and_counted_and_the_average_is_kept():
    proc = processor()
    # 30 frames a second for 5 s: 10 a second (plus the burst) get through.
    assert refused(proc, np.arange(150) / 30) > 0
    assert 50 <= proc.frames_received <= 10 * 5 + 3
    assert proc.rate_rejections == 150 - proc.frames_received


def test_the_refusal_says_the_average_and_when_to_send_again():
    proc = processor()
    for _ in range(3):
        proc.admit(5.0)  # the burst
    with pytest.raises(FrameRateExceeded, match=r"average at most 10 per second.*in 100 ms") as caught:
        proc.admit(5.0)
    assert not caught.value.fatal and caught.value.code == "frame_rate_exceeded"


def test_a_client_that_keeps_flooding_is_cut_off(settings):
    settings.FACEAUTH_MAX_FRAMES = 3
    proc = processor()
    for _ in range(3):
        proc.admit(0.0)
    for _ in range(3):
        with pytest.raises(FrameRateExceeded):
            proc.admit(0.01)
    with pytest.raises(TooManyInvalidFrames):
        proc.admit(0.01)


def test_burst_and_rate_come_from_settings_and_are_announced(settings):
    settings.FACEAUTH_MAX_FPS = 5
    settings.FACEAUTH_FRAME_BURST = 1
    proc = processor()
    proc.admit(0.0)
    with pytest.raises(FrameRateExceeded):
        proc.admit(0.15)  # a burst of 1 is the old fixed minimum interval: 200 ms here
    proc.admit(0.2)
    limits = SessionLimits.from_settings().as_dict()
    assert limits["max_fps"] == 5 and limits["frame_burst"] == 1 and limits["min_frame_interval_ms"] == 200
