"""Per-frame processing with the real engine on real footage."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from auth_service.errors import TooManyInvalidFrames
from auth_service.services.frames import FrameProcessor, ProcessingConfig, agreeing_group

from .conftest import jpeg, unit, video_jpegs


def processor(samples_needed: int = 3) -> FrameProcessor:
    return FrameProcessor(ProcessingConfig.from_settings(samples_needed=samples_needed))


def feed(proc: FrameProcessor, frames: list[bytes], fps: float = 10.0, *, start: int = 0):
    """Feeds frames at ``fps`` (timestamps, not wall time; the first is frame ``start`` of
    the stream) until a verdict; returns the reports."""
    reports = []
    for index, data in enumerate(frames, start):
        now = 1000.0 + index / fps
        proc.admit(now)
        report = proc.process(data, now)
        reports.append(report)
        if report.verdict is not None:
            break
    return reports


def test_agreeing_group_leaves_outliers_out():
    rng = np.random.default_rng(0)
    base = rng.normal(size=128)
    same = [unit(base + 0.05 * rng.normal(size=128)) for _ in range(4)]
    odd = unit(rng.normal(size=128))
    group = agreeing_group([same[0], odd, *same[1:]], threshold=0.5)
    assert group == [0, 2, 3, 4]
    assert agreeing_group([], 0.5) == []


def test_unusable_images_get_the_engine_code_and_too_many_end_the_session(settings):
    settings.FACEAUTH_MAX_INVALID_FRAMES = 3
    proc = processor()
    for index, data in enumerate([b"not an image", "data:image/jpeg;base64,%%%"]):
        proc.admit(index)
        report = proc.process(data, index)
        assert report.error is not None and report.error.code == "invalid_image"
        assert not report.error.fatal and report.verdict is None
    proc.admit(5)
    with pytest.raises(TooManyInvalidFrames):
        proc.process(b"GIF89a", 5)


def test_images_over_the_configured_size_are_refused(settings, faces_dir):
    settings.FACEAUTH_MAX_IMAGE_SIDE = 100
    proc = processor()
    proc.admit(0)
    report = proc.process((faces_dir / "obama" / "obama.jpg").read_bytes(), 0)
    assert report.error.code == "image_too_large"


def test_accepted_image_formats_are_a_setting(settings, faces_dir):
    ok, webp = cv2.imencode(".webp", cv2.imread(str(faces_dir / "obama" / "obama.jpg")))
    proc = processor()
    proc.admit(0)
    assert proc.process(webp.tobytes(), 0).error.code == "unsupported_format"  # default: JPEG, PNG
    settings.FACEAUTH_ACCEPTED_IMAGE_FORMATS = ("jpeg", "png", "webp")
    proc = processor()
    proc.admit(0)
    report = proc.process(webp.tobytes(), 0)
    assert report.error is None and report.analysis.face is not None


def test_live_footage_completes_with_agreeing_samples(faces_dir):
    frames = video_jpegs(faces_dir / "video" / "liveportrait_d9.mp4", duration=10)
    proc = processor(samples_needed=3)
    reports = feed(proc, frames)
    verdict = reports[-1].verdict
    assert verdict is not None and verdict.reason is None, [r.liveness.as_dict() for r in reports[-3:]]
    assert len(verdict.embeddings) == 3
    assert verdict.liveness["is_live"] and verdict.frames_processed == len(reports)
    # the samples that count all agree with each other
    matrix = np.stack(verdict.embeddings)
    assert (matrix @ matrix.T).min() >= proc.config.agreement_threshold
    first = reports[0]
    assert first.analysis.face is not None and first.sample_accepted
    assert first.samples_collected == 1


def test_another_face_between_identity_checks_gives_no_samples(faces_dir):
    """A cut to another person: the frames after it are embedded (identity checks, own
    samples) but none joins the candidates before the second failed check ends the session."""
    first = video_jpegs(faces_dir / "video" / "liveportrait_d9.mp4", duration=3)
    second = video_jpegs(faces_dir / "video" / "liveportrait_d10.mp4", duration=3)
    proc = processor(samples_needed=10)
    before = feed(proc, first)
    candidates = len(proc.candidates)
    after_cut = feed(proc, second, start=len(first))
    assert before[-1].verdict is None and candidates >= 3
    assert len(proc.candidates) == candidates
    assert not any(report.sample_accepted for report in after_cut)
    assert sum(report.liveness.embedding is not None for report in after_cut) >= 2  # checked, refused
    assert after_cut[-1].verdict is not None and after_cut[-1].verdict.reason == "liveness_failed"
    assert after_cut[-1].liveness.failure == "face_changed"


def test_a_photo_sent_again_and_again_fails_liveness(faces_dir):
    photo = (faces_dir / "obama" / "obama.jpg").read_bytes()
    reports = feed(processor(), [photo] * 60)
    verdict = reports[-1].verdict
    assert verdict is not None and verdict.reason == "liveness_failed"
    assert "still image" in verdict.detail
    assert len(reports) < 60


def test_the_frame_budget_ends_the_session_with_what_is_missing(settings, faces_dir):
    settings.FACEAUTH_MAX_FRAMES = 5
    frames = video_jpegs(faces_dir / "video" / "liveportrait_d9.mp4", duration=1)
    reports = feed(processor(), frames)
    assert len(reports) == 5
    verdict = reports[-1].verdict
    assert verdict.reason == "liveness_failed" and "within 5 frames" in verdict.detail


def test_expiry_verdict_says_what_was_missing():
    verdict = processor().expired_verdict()
    assert verdict.reason == "session_expired"
    assert "before the session expired" in verdict.detail


def test_frames_without_a_face_give_feedback_but_no_samples():
    blank = jpeg(np.full((480, 640, 3), 127, np.uint8))
    reports = feed(processor(), [blank] * 3)
    assert all(r.analysis.face is None and not r.sample_accepted for r in reports)
    assert reports[-1].analysis.quality.issues[0].code == "no_face"
