"""The liveness command's explanation picture, and the command judging a clip as the service
does (same path, same verdict on the same frames)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from face_engine.evaluation import explain
from face_engine.evaluation.attacks import FRAME_SIZE, JPEG_QUALITY
from face_engine.types import DEFAULT_LIVENESS
from face_engine.video import fit_frame, video_frames

FPS = 10.0
# Two passive sessions that go live: d0 on the detector's landmarks throughout (parallax is
# measured up to its last frame), katiehill with the face followed between detections.
CLIPS = ("liveportrait_d0.mp4", "sadtalker_katiehill.mp4")
OUTPUT_KEYS = {"live", "blinks", "head_motion", "frames", "same_person", "failure", "presentation"}


def _frame(number: int, *, face: bool = True, **values: object) -> dict:
    """One trace entry as LivenessTracker(explain=True) and the CLI write it."""
    entry: dict = {
        "frame": number, "time": (number - 1) / FPS, "face": face, "blink_ratios": None, "eye_changes": None,
        "head_shift": None, "blink_event": None, "parallax_residual": None, "blinks": 0, "parallax_frames": 0,
        "presentation": "undecided", "presentation_score": None, "failure": None, "too_small": False,
        "detected": True,
    }
    if face:
        entry.update(eye_distance=80.0, image_motion=0.02, identity=None, openings=(0.3, 0.3),
                     blink_ratios=(1.0, 1.0), parallax_residual=0.01)
    entry.update(values)
    return entry


def synthetic_trace() -> list[dict]:
    """Frames without a face, a too small one, three rejected closures, a blink, two 3D
    frames, identity checks and a face change at the end."""
    trace = [_frame(1, face=False), _frame(2, face=False), _frame(3, too_small=True, blink_ratios=None),
             _frame(4, detected=False, identity=0.9)]
    closures = [("rejected:no_eye_change", (0.05, 0.08), 0.01), ("rejected:head_jump", (0.4, 0.5), 0.4),
                ("closing", (0.5, 0.45), 0.02)]
    for number, (event, changes, shift) in enumerate(closures, start=5):
        trace.append(_frame(number, blink_ratios=(0.4, 0.5), eye_changes=changes, head_shift=shift,
                            blink_event=event))
    trace.append(_frame(8, blink_ratios=(0.5, 0.5), blink_event="rejected:too_long"))
    trace.append(_frame(9, blink_ratios=(0.9, 0.95), blink_event="blink", blinks=1, parallax_residual=0.08,
                        parallax_frames=1, presentation="live", presentation_score=0.9))
    counts = {"blinks": 1, "presentation": "live", "presentation_score": 0.9}
    trace.append(_frame(10, parallax_residual=0.3, parallax_frames=2, **counts))
    trace.append(_frame(11, identity=0.1, detected=False, parallax_frames=2, **counts))
    trace.append(_frame(12, identity=0.05, parallax_frames=2, failure="face_changed", **counts))
    return trace


def test_markers_label_counted_and_rejected_evidence_and_the_failure():
    trace = synthetic_trace()
    labels = [(round(marker.time, 1), marker.label) for marker in explain.markers(trace, DEFAULT_LIVENESS)]
    assert labels == [
        (0.4, "no eye change"), (0.5, "head jump"), (0.7, "too long"), (0.8, "blink"), (0.8, "3D"),
        (0.9, "3D"), (0.9, "LIVE"), (1.1, "failed: face_changed"),
    ]
    assert [explain.face_state(entry) for entry in trace[:5]] == [
        "no face", "no face", "too small", "followed", "detected"
    ]


def test_draw_a_synthetic_trace_without_the_models(tmp_path):
    trace = synthetic_trace()
    image = explain.draw(trace, DEFAULT_LIVENESS, title="synthetic: not live (face_changed)")
    assert image.dtype == np.uint8 and image.shape[1] == explain.WIDTH and 800 < image.shape[0] < 1400
    # Every kind of frame of the strip is painted in its colour.
    colours = {tuple(int(v) for v in pixel) for pixel in image.reshape(-1, 3)[::7]}
    for state in ("no face", "too small", "detected", "followed"):
        assert explain.FACE_STATES[state] in colours, state
    written = explain.write(tmp_path / "trace.png", trace, DEFAULT_LIVENESS, title="synthetic")
    assert cv2.imread(str(written)).shape == image.shape
    # A session cut short before any frame still gives a picture.
    assert explain.draw([], DEFAULT_LIVENESS, title="empty").shape[1] == explain.WIDTH


def run_cli(*args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "face_engine", "liveness", *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def cli_results(faces_dir: Path, tmp_path_factory) -> dict[str, dict]:
    """``python -m face_engine liveness CLIP --fps 10 --explain OUT.png`` on each clip, once."""
    folder = tmp_path_factory.mktemp("explain")
    return {clip: run_cli(str(faces_dir / "video" / clip), "--fps", str(FPS),
                          "--explain", str(folder / f"{clip}.png")) for clip in CLIPS}


def test_the_command_draws_the_explanation_and_prints_its_reasons(cli_results):
    result = cli_results["sadtalker_katiehill.mp4"]
    assert set(result) >= OUTPUT_KEYS and result["live"] is True and result["presentation"] == "live"
    explanation = result["explanation"]
    assert explanation["live"] is True and explanation["frames"] == result["frames"]
    assert explanation["blink"]["seen"] is True and explanation["head_movement"]["seen"] is True
    picture = cv2.imread(result["picture"])
    assert picture is not None and picture.shape[1] == explain.WIDTH and 800 < picture.shape[0] < 1400


def browser_jpegs(clip: Path) -> list[bytes]:
    """The clip as the browser sends it: 640x480 JPEGs at quality 80, 10 a second (decoded,
    the very frames the command feeds itself: attacks.browser_frame)."""
    frames = []
    for _, frame in video_frames(clip, fps=FPS):
        quality = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        ok, data = cv2.imencode(".jpg", fit_frame(frame, *FRAME_SIZE), quality)
        assert ok
        frames.append(data.tobytes())
    return frames


@pytest.mark.parametrize("clip", CLIPS)
def test_the_command_and_the_service_give_the_same_verdict(faces_dir, cli_results, settings, clip):
    """The service's per-frame path (FrameProcessor.process: decode, follow or detect, the
    passive tracker) on the same frames at the same times: live at the frame where the command
    stopped, with the same evidence."""
    from auth_service.services.frames import FrameProcessor, ProcessingConfig

    settings.FACEAUTH_LIVENESS_MODE = "passive"
    settings.FACEAUTH_FACE_TRACKING = True
    processor = FrameProcessor(ProcessingConfig.from_settings(samples_needed=3))
    state = None
    for index, data in enumerate(browser_jpegs(faces_dir / "video" / clip)):
        now = index / FPS  # the command's clock: frames arrive at the browser's rate
        processor.admit(now)
        report = processor.process(data, now)
        assert report.error is None
        state = report.liveness
        if state.live or state.failure:
            break
    cli = cli_results[clip]
    assert cli["live"] is True  # both clips are live sessions
    service = {"live": state.live, "blinks": state.blinks, "head_motion": state.head_motion,
               "frames": state.frames, "same_person": state.same_person, "failure": state.failure,
               "presentation": state.presentation}
    assert service == {key: cli[key] for key in OUTPUT_KEYS}
