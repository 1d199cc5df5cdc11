"""The eye model: MediaPipe's iris landmark network on crops placed by the 68 landmarks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import face_engine as fe
from face_engine import models
from face_engine.errors import ModelError
from face_engine.evaluation.attacks import browser_frame
from face_engine.eyes import eye_state
from face_engine.video import video_frames


def _frame_at(path, seconds: float) -> np.ndarray:
    for _, frame in video_frames(path, fps=25, start=seconds):
        return browser_frame(frame)
    raise AssertionError(f"{path} has no frame at {seconds} s")


def test_the_model_file_is_checked_by_its_digest():
    wrong = dataclasses.replace(models.IRIS, sha256="0" * 64)
    models.model_bytes.cache_clear()
    with pytest.raises(ModelError, match="checksum"):
        models.model_bytes(wrong)


def test_a_missing_wheel_is_a_model_error():
    absent = dataclasses.replace(models.IRIS, package="no-such-distribution-xyz")
    with pytest.raises(ModelError, match="not installed"):
        _ = absent.path


def test_open_and_shut_eyes(faces_dir):
    # liveportrait_d0 blinks at source frames 65-67 (2.6-2.7 s at 25 fps); at 1 s both eyes are open.
    clip = faces_dir / "video" / "liveportrait_d0.mp4"
    states = {}
    for seconds in (1.0, 2.6):
        image = _frame_at(clip, seconds)
        analysis = fe.analyze(image)
        states[seconds] = eye_state(image, analysis.landmarks.points)
        # The lids it traces lie around the landmarks' eyes, in image pixels.
        for contour, eye in zip(states[seconds].contours, (slice(36, 42), slice(42, 48)), strict=True):
            distance = np.linalg.norm(contour.mean(axis=0) - analysis.landmarks.points[eye].mean(axis=0))
            assert distance < 0.3 * np.ptp(analysis.landmarks.points[eye][:, 0])
    assert min(states[1.0].opening) > 0.2
    assert max(states[2.6].opening) < 0.12
    assert max(states[2.6].opening) < 0.5 * min(states[1.0].opening)
