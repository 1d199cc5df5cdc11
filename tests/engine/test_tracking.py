"""FaceTracker: following the face between detections gives what detecting every frame
gives (faces, landmarks, quality, liveness verdicts) on real footage, at a fraction of the
detections; losses, second faces and large faces are handled."""

import dataclasses

import cv2
import numpy as np
import pytest

import face_engine as fe
from face_engine.cli import load_image
from face_engine.evaluation import liveness_eval
from face_engine.evaluation.attacks import PHOTO_KINDS, Presentation, browser_frame, photo_sources
from face_engine.pipeline import REDETECT_EVERY, REDUCED_DECODE_MIN_FACE
from face_engine.video import fit_frame, video_frames

FPS = 10.0


def jpeg_stream(path, *, seconds: float | None = None, size=(640, 480)) -> list[bytes]:
    """The clip as a browser sends it: JPEG (quality 80) frames of ``size`` at 10 frames/s."""
    frames = []
    for _, frame in video_frames(path, fps=FPS, duration=seconds):
        ok, data = cv2.imencode(".jpg", fit_frame(frame, *size), [cv2.IMWRITE_JPEG_QUALITY, 80])
        assert ok
        frames.append(data.tobytes())
    return frames


def centre(box: fe.Box) -> np.ndarray:
    return np.array([box.x + box.width / 2, box.y + box.height / 2])


@pytest.mark.parametrize(
    "clip", ["liveportrait_d9.mp4", "liveportrait_d10.mp4", "liveportrait_d12.mp4", "sadtalker_katiehill.mp4"]
)
def test_following_finds_the_same_face_landmarks_and_quality_as_detecting_every_frame(faces_dir, clip):
    tracker = fe.FaceTracker()
    same_codes = followed = 0
    ear_differences, yaw_differences = [], []
    stream = jpeg_stream(faces_dir / "video" / clip, seconds=8)
    for data in stream:
        frame = tracker.decode(data)
        tracked = frame.frame_analysis
        full = fe.analyze(fe.decode(data))
        assert (tracked.face is None) == (full.face is None)
        same_codes += tracked.quality.codes == full.quality.codes
        if full.face is None:
            continue
        followed += not frame.detected
        width = full.face.box.width
        assert np.linalg.norm(centre(tracked.face.box) - centre(full.face.box)) < 0.1 * width
        assert abs(tracked.face.box.width / width - 1) < 0.15
        assert np.abs(tracked.landmarks.points - full.landmarks.points).mean() < 0.03 * width
        ear_differences.append(abs(tracked.landmarks.ear - full.landmarks.ear))
        yaw_differences.append(abs(tracked.landmarks.pose.yaw - full.landmarks.pose.yaw))
    # dlib's points move a little with the box it starts from (the detector's jitters from
    # frame to frame, the followed one does not), and eye ratios and pose amplify that: the
    # two agree to within that jitter.
    assert np.mean(ear_differences) < 0.02 and np.percentile(ear_differences, 95) < 0.05
    assert np.mean(yaw_differences) < 2.5 and np.percentile(yaw_differences, 95) < 7
    assert same_codes >= 0.9 * len(stream)
    assert followed >= 0.25 * len(stream)  # detection really is skipped
    assert tracker.detections + followed == tracker.frames == len(stream)


@pytest.mark.parametrize("clip", [
    "liveportrait_d0.mp4", "liveportrait_d3.mp4", "liveportrait_d9.mp4", "liveportrait_d10.mp4",
    "liveportrait_d12.mp4", "liveportrait_d14.mp4", "liveportrait_d19.mp4", "liveportrait_s18.mp4",
    "liveportrait_s32.mp4", "sadtalker_katiehill.mp4", "sadtalker_radio2.mp4",
])
def test_liveness_as_the_service_follows_reaches_the_verdict_of_detecting_every_frame(faces_dir, clip):
    """The service follows the face only while the liveness tracker does not need the
    detector's landmarks (LivenessTracker.needs_detection): same verdict, same evidence."""
    frames = [browser_frame(frame) for _, frame in video_frames(faces_dir / "video" / clip, fps=FPS)]
    followed_live, followed = liveness_eval.evaluate_frames(frames, face_tracking=True)
    detected_live, detected = liveness_eval.evaluate_frames(frames, face_tracking=False)
    assert followed_live == detected_live
    assert (followed.blinks, followed.head_motion, followed.frames) == (
        detected.blinks, detected.head_motion, detected.frames
    )


def test_following_skips_detection_once_head_movement_is_in(faces_dir):
    liveness = fe.LivenessTracker(stop_at_evidence=True)
    tracker = fe.FaceTracker()
    before = after = followed_after = 0
    for timestamp, frame in video_frames(faces_dir / "video" / "sadtalker_katiehill.mp4", fps=FPS):
        needs_detection = liveness.needs_detection
        tracked = tracker.analyze(browser_frame(frame), follow=not needs_detection)
        assert tracked.detected or not needs_detection
        if liveness.measuring_parallax:
            before += 1
        else:
            after += 1
            followed_after += not tracked.detected
        liveness.update(tracked.image, tracked.analysis, timestamp, gray=tracked.gray)
    # katiehill turns her head at once: parallax is done within a second of the 8 s clip.
    assert before <= 10 and after >= 60
    assert followed_after >= 0.4 * after


def test_after_the_blink_parallax_detects_only_where_a_window_starts(faces_dir):
    """Once the blink is in and parallax is still measured, the detector's landmarks are asked
    for on the frame that starts a parallax window (they place its tracked region); the
    frames inside a window may be followed."""
    liveness = fe.LivenessTracker(stop_at_evidence=True)
    tracker = fe.FaceTracker(watch_liveness=False)
    asked = followed = parallax_only = 0
    for timestamp, frame in video_frames(faces_dir / "video" / "liveportrait_d9.mp4", fps=FPS, duration=12):
        if not liveness.measuring_parallax:
            break
        tracked = tracker.analyze(browser_frame(frame), follow=not liveness.needs_detection)
        if not liveness.measuring_blink:
            parallax_only += 1
            asked += liveness.needs_detection
            followed += not tracked.detected
        liveness.update(tracked.image, tracked.analysis, timestamp, gray=tracked.gray,
                        continued=tracked.continued)
    # liveportrait_d9 blinks within its first seconds and shows head movement later.
    assert parallax_only >= 8
    assert asked <= parallax_only / 2 + 1 and followed >= parallax_only / 3


def follow_clips(faces_dir, clips, seconds):
    """The clips one after the other through a FaceTracker and a LivenessTracker as the
    service runs them: the states of every clip's frames."""
    liveness, tracker = fe.LivenessTracker(stop_at_evidence=True), fe.FaceTracker(watch_liveness=False)
    states: list[list[fe.LivenessState]] = []
    for clip in clips:
        states.append([])
        for _, frame in video_frames(faces_dir / "video" / clip, fps=FPS, duration=seconds):
            tracked = tracker.analyze(browser_frame(frame), follow=not liveness.needs_detection)
            states[-1].append(liveness.update(tracked.image, tracked.analysis, tracker.frames / FPS,
                                              gray=tracked.gray, continued=tracked.continued))
    return states


def test_identity_checks_space_out_while_the_face_is_followed(faces_dir):
    [states] = follow_clips(faces_dir, ["liveportrait_d10.mp4"], 10)
    checks = [index for index, state in enumerate(states) if state.embedding is not None]
    # Every second when detecting each frame (test_liveness); here the first face, and then
    # about every 3 s, sooner after a frame where the face jumped (a break of the track).
    assert checks[0] == 0 and 3 <= len(checks) <= 6, checks
    assert all(state.same_person and state.failure is None for state in states)


@pytest.mark.parametrize(("first", "second"), [
    ("liveportrait_d9.mp4", "liveportrait_d10.mp4"), ("liveportrait_d0.mp4", "liveportrait_s18.mp4"),
    ("sadtalker_radio2.mp4", "liveportrait_d14.mp4"),
])
def test_a_person_swapped_mid_stream_is_caught_through_the_tracker(faces_dir, first, second):
    """A cut to another person, as the service follows faces: at most identity_followed_seconds
    to the first failed check (the cut need not break the track: the faces may sit alike), then
    identity_seconds to the second."""
    before, after = follow_clips(faces_dir, [first, second], 4)
    assert all(state.failure is None for state in before)
    caught = next(index for index, state in enumerate(after) if state.failure == "face_changed")
    config = fe.LivenessConfig()
    assert caught <= FPS * (config.identity_followed_seconds + config.identity_seconds), caught


def test_photo_attacks_stay_not_live_through_the_tracker(faces_dir):
    """The synthesised photo attacks of face_engine.evaluation.attacks that test_liveness runs with
    detection on every frame: every photo, 4 s each, the kinds taken in turn."""
    photos = [(path, at) for path, at in photo_sources(faces_dir) if at is None]
    presentations = [Presentation("attack", PHOTO_KINDS[index % len(PHOTO_KINDS)], path, 1, at, frames=40)
                     for index, (path, at) in enumerate(photos)]
    assert {p.kind for p in presentations} == set(PHOTO_KINDS)
    for presentation in presentations:
        liveness, tracker = fe.LivenessTracker(), fe.FaceTracker()
        for index, frame in enumerate(presentation.stream()):
            tracked = tracker.analyze(frame)
            state = liveness.update(tracked.image, tracked.analysis, index / FPS)
        assert not state.live and state.blinks == 0 and not state.head_motion, presentation.name


def test_a_face_that_leaves_is_detected_again_not_followed_into_the_background(faces_dir):
    frames = [browser_frame(frame) for _, frame in video_frames(faces_dir / "video" / "liveportrait_d9.mp4",
                                                                  fps=FPS, duration=0.5)]
    tracker = fe.FaceTracker()
    for frame in frames[:3]:
        assert tracker.analyze(frame).analysis.face is not None
    noise = np.random.default_rng(0).integers(0, 255, frames[0].shape, dtype=np.uint8)
    background = cv2.GaussianBlur(noise, (31, 31), 0)
    gone = tracker.analyze(background)
    assert gone.detected and gone.analysis.face is None and gone.analysis.quality.codes == ["no_face"]
    back = tracker.analyze(frames[3])
    assert back.detected and back.analysis.face is not None


def test_a_second_face_is_seen_within_the_redetection_interval(faces_dir):
    frames = [browser_frame(frame) for _, frame in video_frames(faces_dir / "video" / "liveportrait_d9.mp4",
                                                                  fps=FPS, duration=2)]
    visitor = load_image(faces_dir / "obama" / "obama.jpg")
    face = fe.detect(visitor)[0].box
    margin = face.width // 2
    crop = visitor[max(face.y - margin, 0):face.y + face.height + margin,
                   max(face.x - margin, 0):face.x + face.width + margin]
    crop = cv2.resize(crop, (200, 200 * crop.shape[0] // crop.shape[1]))
    tracker = fe.FaceTracker()
    for frame in frames[:3]:
        assert tracker.analyze(frame).analysis.quality.codes == []
    for frame in frames[3:3 + REDETECT_EVERY]:
        frame = frame.copy()
        frame[:crop.shape[0], :crop.shape[1]] = crop  # someone steps into the corner
        if "multiple_faces" in tracker.analyze(frame).analysis.quality.codes:
            break
    else:
        pytest.fail(f"the second face was not seen within {REDETECT_EVERY} frames")


def test_a_large_face_is_decoded_at_half_size_and_reported_in_frame_pixels(faces_dir):
    stream = jpeg_stream(faces_dir / "video" / "liveportrait_d9.mp4", seconds=0.5, size=(1600, 1200))
    tracker = fe.FaceTracker()
    first = tracker.decode(stream[0])
    assert first.scale == 1 and first.analysis.face.box.width >= REDUCED_DECODE_MIN_FACE
    second = tracker.decode(stream[1])
    assert second.scale == 2 and second.image.shape == (600, 800, 3)
    assert second.analysis.image_size == (800, 600)  # what liveness and embeddings see
    reported = second.frame_analysis
    full = fe.analyze(fe.decode(stream[1]))
    assert reported.image_size == (1600, 1200)
    width = full.face.box.width
    assert abs(reported.face.box.x - full.face.box.x) < 0.05 * width
    assert abs(reported.face.box.width / width - 1) < 0.1
    assert np.abs(reported.landmarks.points - full.landmarks.points).mean() < 0.03 * width
    assert reported.quality.codes == full.quality.codes == []


def test_decoding_at_reduced_size(faces_dir):
    image = load_image(faces_dir / "obama" / "obama.jpg")
    height, width = image.shape[:2]
    roomy = fe.DecodeLimits(max_bytes=64 * 2**20)
    for extension in (".jpg", ".png"):
        data = cv2.imencode(extension, image)[1].tobytes()
        assert fe.decode(data, reduce=2, limits=roomy).shape == (-(-height // 2), -(-width // 2), 3)
        assert fe.decode(data, reduce=4, limits=roomy).shape == (-(-height // 4), -(-width // 4), 3)
        # Limits apply to the size as sent, not as decoded.
        with pytest.raises(fe.ImageError) as refused:
            fe.decode(data, reduce=2, limits=dataclasses.replace(roomy, max_side=max(width, height) - 1))
        assert refused.value.code == "image_too_large"
    with pytest.raises(ValueError):
        fe.decode(data, reduce=3)
