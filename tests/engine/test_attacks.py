"""The attack synthesiser: deterministic from seeds, browser-like frames, every kind on every
single-face photo; live clips filmed by a moving phone keep the face in view and move it as
a phone does; narrowed eyes stay narrow and still blink."""

import hashlib
import math

import cv2
import numpy as np
import pytest

from face_engine.detect import detect, landmarks
from face_engine.evaluation.attacks import (
    CAMERA_MOTIONS,
    LIVE_VARIATIONS,
    PHOTO_KINDS,
    REPLAY_KINDS,
    Presentation,
    attack_set,
    browser_frame,
    live_clips,
    live_set,
    photo_sources,
    write_set,
)
from face_engine.video import video_frames

from .conftest import single_face_photos


def test_the_attack_set_covers_every_kind_on_every_single_face_photo(faces_dir):
    attacks = attack_set(faces_dir)
    assert len(attacks) >= 200
    assert {a.kind for a in attacks} == set(PHOTO_KINDS) | set(REPLAY_KINDS)
    for photo in single_face_photos(faces_dir):
        assert {a.kind for a in attacks if a.source == photo} == set(PHOTO_KINDS), photo
    assert len({a.name for a in attacks}) == len(attacks)
    assert len(attacks) == len(photo_sources(faces_dir)) * len(PHOTO_KINDS) + len(live_clips(faces_dir))
    assert {v.kind for v in live_set(faces_dir)} == set(LIVE_VARIATIONS)
    assert set(CAMERA_MOTIONS) <= set(PHOTO_KINDS) and set(CAMERA_MOTIONS) <= set(LIVE_VARIATIONS)


def test_streams_are_browser_frames_and_reproducible_from_the_seed(faces_dir):
    photo = faces_dir / "obama" / "obama-240p.jpg"
    for kind in ("jitter_wide", "tilt", "bent", "flicker"):
        first = list(Presentation("attack", kind, photo, 7, frames=6).stream())
        again = list(Presentation("attack", kind, photo, 7, frames=6).stream())
        other = list(Presentation("attack", kind, photo, 8, frames=6).stream())
        assert len(first) == 6 and all(frame.shape == (480, 640, 3) for frame in first)
        assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True)), kind
        assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True)), kind
        assert not np.array_equal(first[0], first[5]), kind  # the photo moves
    clip = faces_dir / "video" / "liveportrait_d0.mp4"
    replay = list(Presentation("attack", "screen_replay", clip, 0, frames=4).stream())
    assert len(replay) == 4 and replay[0].shape == (480, 640, 3)


def test_write_set_writes_videos_and_a_manifest(faces_dir, tmp_path):
    presentations = [
        Presentation("attack", "jitter_slow", faces_dir / "biden" / "biden.jpg", 0, frames=5),
        Presentation("live", "dark", faces_dir / "video" / "liveportrait_d0.mp4", 0, frames=5),
    ]
    manifest = write_set(presentations, tmp_path, [faces_dir / "video" / "liveportrait_d0.mp4"])
    rows = [line.split(",") for line in manifest.read_text().splitlines()]
    assert rows[0] == ["path", "label", "note"] and len(rows) == 4
    assert rows[1][1:] == ["live", "original"] and rows[2][1:] == ["attack", "jitter_slow"]
    capture = cv2.VideoCapture(str(tmp_path / rows[2][0]))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == 5


# The first 3 frames (sha256, 16 hex digits) of every older kind, taken before the camera
# motions, phone_portrait and narrow_eyes were added: the new kinds must not change the older
# kinds' random draws, so that earlier benchmark results stay comparable.
_OLDER_KINDS = {
    ("attack", "still", "obama/obama-240p.jpg", None): "5734cd8c65d05cb4",
    ("attack", "jitter_slow", "obama/obama-240p.jpg", None): "226f0bef9dd60d53",
    ("attack", "jitter_fast", "obama/obama-240p.jpg", None): "9c6e511d05e03a33",
    ("attack", "jitter_wide", "obama/obama-240p.jpg", None): "35b9d4a14e42c408",
    ("attack", "tilt", "obama/obama-240p.jpg", None): "47d1c68eb09200c1",
    ("attack", "low_resolution", "obama/obama-240p.jpg", None): "0701524d5b44f10a",
    ("attack", "recompressed", "obama/obama-240p.jpg", None): "a0eb62e26c03bbb0",
    ("attack", "flicker", "obama/obama-240p.jpg", None): "76346c8a8e5ab5b4",
    ("attack", "bent", "obama/obama-240p.jpg", None): "aa846c631d914b83",
    ("attack", "jitter_slow", "video/liveportrait_d3.mp4", 1.0): "0a66793b0d9f89f4",
    ("attack", "screen_replay", "video/liveportrait_d0.mp4", None): "7a587907fabdb0e3",
    ("live", "dark", "video/liveportrait_d0.mp4", None): "109d4c19586c6214",
    ("live", "bright", "video/liveportrait_d0.mp4", None): "e603cbedfe7429ac",
    ("live", "low_resolution", "video/liveportrait_d0.mp4", None): "7cd0ec8e9fb90fe8",
    ("live", "recompressed", "video/liveportrait_d0.mp4", None): "e3c3d0d4df3089ae",
    ("live", "camera_shake", "video/liveportrait_d0.mp4", None): "b205f6971f8c6439",
}


def test_the_older_kinds_give_the_same_frames_as_before(faces_dir):
    for (label, kind, source, at), expected in _OLDER_KINDS.items():
        digest = hashlib.sha256()
        for frame in Presentation(label, kind, faces_dir / source, 3, at, frames=3).stream():
            digest.update(frame.tobytes())
        assert digest.hexdigest()[:16] == expected, (label, kind, source)


def test_the_new_kinds_are_browser_frames_reproducible_from_the_seed(faces_dir):
    photo = faces_dir / "obama" / "obama-240p.jpg"
    clip = faces_dir / "video" / "liveportrait_d0.mp4"
    new_photo_kinds = [("attack", kind, photo) for kind in (*CAMERA_MOTIONS, "phone_portrait")]
    new_live_kinds = [("live", kind, clip) for kind in (*CAMERA_MOTIONS, "phone_portrait", "narrow_eyes")]
    for label, kind, source in new_photo_kinds + new_live_kinds:
        first = list(Presentation(label, kind, source, 7, frames=4).stream())
        again = list(Presentation(label, kind, source, 7, frames=4).stream())
        other = list(Presentation(label, kind, source, 8, frames=4).stream())
        assert len(first) == 4 and all(frame.shape == (480, 640, 3) for frame in first), kind
        assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True)), kind
        assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True)), kind


def _geometry(frame: np.ndarray) -> tuple[np.ndarray, float, float, float] | None:
    """The face's box centre, box width, eye-line angle (degrees) and eye distance (px)."""
    faces = detect(frame)
    if not faces:
        return None
    box, eyes = faces[0].box, faces[0].keypoints
    dx, dy = (eyes[1] - eyes[0]).tolist()
    return (np.array([box.x + box.width / 2, box.y + box.height / 2]), float(box.width),
            math.degrees(math.atan2(dy, dx)), math.hypot(dx, dy))


_MOTION_FRAMES = 60  # 6 s: a slow drift or roll (periods of 7-17 s) goes a good part of its way


@pytest.fixture(scope="module")
def talking_clip(faces_dir):
    """liveportrait_d10 (a frontal woman talking, head nearly still) and its faces as sent."""
    clip = faces_dir / "video" / "liveportrait_d10.mp4"
    frames = [browser_frame(frame) for _, frame in video_frames(clip, fps=10)][:_MOTION_FRAMES]
    return clip, [_geometry(frame) for frame in frames]


@pytest.mark.parametrize("kind", [*CAMERA_MOTIONS, "phone_portrait"])
def test_a_moving_camera_keeps_the_face_in_view_and_moves_it_as_a_phone_does(talking_clip, kind):
    clip, original = talking_clip
    presentation = Presentation("live", kind, clip, 0, frames=_MOTION_FRAMES)
    moved = [_geometry(frame) for frame in presentation.stream()]
    assert len(moved) == _MOTION_FRAMES
    assert sum(face is not None for face in moved) >= 0.9 * _MOTION_FRAMES, kind
    pairs = [(a, b) for a, b in zip(original, moved, strict=True) if a is not None and b is not None]
    # The camera's own motion at the face: the moved face against the same frame unmoved.
    offset = np.array([b[0] - a[0] for a, b in pairs])
    travel = float(np.ptp(offset, axis=0).max())
    step = float(np.median(np.linalg.norm(np.diff(offset, axis=0), axis=1)))
    zoom = [b[1] / a[1] for a, b in pairs]
    roll = [b[2] - a[2] for a, b in pairs]
    if kind == "camera_drift":
        assert 20 <= travel <= 120, travel  # several % of the frame per second, slowly
    elif kind == "camera_rotation":
        assert 8 <= np.ptp(roll) <= 35, np.ptp(roll)  # 10-15 degrees either way, slowly
    elif kind == "camera_zoom":
        assert 1.25 <= max(zoom) / min(zoom) <= 2.0, (min(zoom), max(zoom))  # 0.8-1.25
    elif kind == "rolling_jitter":
        assert 1.5 <= step <= 15 and travel <= 50, (step, travel)  # small, fast: a tremor
    elif kind == "walking":
        assert 5 <= step <= 40 and travel >= 20, (step, travel)  # a bob every step
    else:
        # A 9:16 window shown 270x480 in the middle of the frame, the eyes 52-80 px apart.
        eyes = float(np.median([b[3] for _, b in pairs]))
        assert 48 <= eyes <= 85, eyes
        assert all(185 + 30 <= b[0][0] <= 455 - 30 for _, b in pairs)


def test_narrow_eyes_narrows_open_eyes_and_leaves_blinks_closed(faces_dir):
    clip = faces_dir / "video" / "liveportrait_d10.mp4"  # blinks at frames 221-225 of 30 fps (7.4 s)
    count = 80
    original = [browser_frame(frame) for _, frame in video_frames(clip, fps=10)][:count]
    narrowed = list(Presentation("live", "narrow_eyes", clip, 0, frames=count).stream())

    def ear(frame: np.ndarray) -> float | None:
        faces = detect(frame)
        return landmarks(frame, faces[0]).ear if faces else None

    pairs = [(ear(a), ear(b)) for a, b in zip(original, narrowed, strict=True)]
    assert all(b is not None for _, b in pairs)
    open_eyes = [(a, b) for a, b in pairs if a is not None and a > 0.25]
    closed = [(a, b) for a, b in pairs if a is not None and a < 0.18]
    assert len(open_eyes) >= 0.8 * count and closed
    ratio = np.mean([b for _, b in open_eyes]) / np.mean([a for a, _ in open_eyes])
    assert ratio <= 0.75, ratio  # the opening squashed by 40-50%, of which dlib sees 25-30%
    assert all(b < 0.18 for _, b in closed)  # a closed eye squashed stays closed
