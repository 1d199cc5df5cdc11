"""The blink rule on synthetic eye views (face_engine/liveness/blink.py): a dip of both eyes'
openings, judged against the stream's own noise. Real footage is measured by
bench/blink_bench.py and tests/engine/test_liveness.py; these pin each branch of the rule."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from face_engine.liveness.blink import BlinkSignal, EyeView
from face_engine.types import DEFAULT_LIVENESS

FPS = 10.0
OPEN = 0.3  # the eye model's opening of an open eye, in eye widths
RIGID = np.zeros((11, 2))


def _texture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (14, 22)).astype(np.float32)


OPEN_LOOK = _texture(1)
SHUT_LOOK = _texture(2)  # closed lids: another pattern altogether


def _view(number: int, opening: float, look: np.ndarray, rng: np.random.Generator, noise: float,
          look_noise: float) -> EyeView:
    openings = tuple(float(opening * (1 + rng.normal(0, noise))) for _ in range(2))
    patches = tuple(look + rng.normal(0, look_noise, look.shape).astype(np.float32) for _ in range(2))
    return EyeView(openings, patches, RIGID, number / FPS)


def _counts(openings: Sequence[float], *, noise: float = 0.01, look_noise: float = 2.0,
            shut_look_below: float = 0.5) -> tuple[list[int], list[str]]:
    """Frames where a blink was counted, and every event the signal named, for a stream of
    openings (shares of OPEN); frames below ``shut_look_below`` look shut."""
    rng = np.random.default_rng(0)
    signal = BlinkSignal(DEFAULT_LIVENESS)
    counted, events = [], []
    for number, share in enumerate(openings):
        look = SHUT_LOOK if share < shut_look_below else OPEN_LOOK
        if signal.update(_view(number, OPEN * share, look, rng, noise, look_noise)):
            counted.append(number)
        if signal.last.event not in (None, "closing"):
            events.append(signal.last.event)
    return counted, events


def test_a_blink_counts_on_the_first_frame_its_lids_have_risen_again():
    counted, _ = _counts([1.0] * 12 + [0.5, 0.2, 0.6] + [1.0] * 5)
    assert counted == [14]  # 0.6: risen by 0.4 from the deepest frame


def test_a_lid_caught_half_closed_on_a_steady_face_counts_without_a_change_of_look():
    # One frame at 0.65 of the open level: far out of a steady face's opening noise.
    counted, _ = _counts([1.0] * 12 + [0.65] + [1.0] * 5, shut_look_below=0.0)
    assert counted == [13]


def test_the_same_dip_in_a_noisy_stream_is_not_a_blink():
    # A small face on a moving phone: the openings wobble by 12% from frame to frame.
    counted, events = _counts([1.0] * 12 + [0.65] + [1.0] * 5, noise=0.12, shut_look_below=0.0)
    assert counted == [] and "blink" not in events


def test_a_noisy_stream_still_counts_a_blink_that_changes_the_eyes_look():
    counted, _ = _counts([1.0] * 12 + [0.3, 0.25] + [1.0] * 5, noise=0.05)
    assert counted == [14]


def test_lids_that_stay_down_are_too_long_for_a_blink():
    counted, events = _counts([1.0] * 12 + [0.3] * 15 + [1.0] * 5)
    assert counted == [] and "rejected:too_long" in events


def test_lids_fluttering_while_shut_are_not_blinks():
    # Eyes shut for seconds, the eye model reading them half open every other frame.
    counted, events = _counts([1.0] * 12 + [0.3] * 8 + [0.3, 0.7] * 6 + [0.3] * 4)
    assert counted == [] and "rejected:not_from_open" in events


def test_a_count_is_made_once_per_dip():
    counted, _ = _counts([1.0] * 12 + [0.4, 0.2, 0.5, 0.7, 0.9] + [1.0] * 8)
    assert len(counted) == 1
