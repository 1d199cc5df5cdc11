"""The attack synthesiser: deterministic from seeds, browser-like frames, every kind on every
single-face photo."""

import cv2
import numpy as np

from face_engine.evaluation.attacks import (
    LIVE_VARIATIONS,
    PHOTO_KINDS,
    REPLAY_KINDS,
    Presentation,
    attack_set,
    live_set,
    write_set,
)

from .conftest import single_face_photos


def test_the_attack_set_covers_every_kind_on_every_single_face_photo(faces_dir):
    attacks = attack_set(faces_dir)
    assert len(attacks) >= 200
    assert {a.kind for a in attacks} == set(PHOTO_KINDS) | set(REPLAY_KINDS)
    for photo in single_face_photos(faces_dir):
        assert {a.kind for a in attacks if a.source == photo} == set(PHOTO_KINDS), photo
    assert len({a.name for a in attacks}) == len(attacks)
    assert {v.kind for v in live_set(faces_dir)} == set(LIVE_VARIATIONS)


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
