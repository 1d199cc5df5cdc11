"""The active mode's rules (face_engine.challenge), frame by frame, with a scripted passive
tracker: the head pose, blinks and 3D-movement evidence of each frame are given, so each
rule is seen on its own. Recorded footage is in test_challenge_player.py."""

from __future__ import annotations

import random
import secrets

import numpy as np
import pytest

from face_engine.challenge import (
    CHALLENGE_CODES,
    DEFAULT_CHALLENGE_CONFIG,
    INSTRUCTIONS,
    ChallengeConfig,
    ChallengeTracker,
    draw_challenges,
)
from face_engine.liveness import LivenessTracker
from face_engine.types import (
    Box,
    Face,
    FrameAnalysis,
    Landmarks,
    LivenessConfig,
    LivenessState,
    Pose,
    Quality,
    QualityIssue,
)

IMAGE = np.zeros((4, 4, 3), np.uint8)


class ScriptedPassive:
    """Stands in for LivenessTracker: each update reports the blink and parallax counts it is
    told, and the failure once set."""

    config = LivenessConfig()
    stop_at_evidence = False
    seek_blink = True

    def __init__(self) -> None:
        self.blinks = 0
        self.parallax = 0
        self.failure: str | None = None
        self.frames = 0
        self.last_blink_began: float | None = None
        self._blinks_seen = 0

    def update(self, image, analysis, timestamp=None, *, gray=None, continued=False) -> LivenessState:
        self.frames += 1
        if self.blinks > self._blinks_seen:  # a blink told on this frame closed the frame before
            self._blinks_seen, self.last_blink_began = self.blinks, timestamp - 0.1
        return LivenessState(
            frames=self.frames, blinks=self.blinks, head_motion=self.parallax >= 3,
            same_person=self.failure != "face_changed", missing=[], failure=self.failure,
            hint="the person changed: start again" if self.failure else None,
            parallax_frames=self.parallax,
        )


def frame(yaw: float = 0.0, pitch: float = 0.0, *, issues: tuple[str, ...] = ()) -> FrameAnalysis:
    face = Face(Box(100, 100, 200, 200), 0.9, np.zeros((5, 2)))
    marks = Landmarks(np.zeros((68, 2), np.float32), 0.3, 0.3, Pose(yaw, pitch, 0.0))
    return FrameAnalysis((640, 480), [face], face, marks, Quality([QualityIssue(c, c) for c in issues]))


class Session:
    """A ChallengeTracker fed at 10 frames/s."""

    def __init__(self, challenges, config: ChallengeConfig = DEFAULT_CHALLENGE_CONFIG) -> None:
        self.passive = ScriptedPassive()
        self.tracker = ChallengeTracker(self.passive, challenges, config)
        self.time = 0.0
        self.state = None

    def feed(self, analysis: FrameAnalysis, count: int = 1, *, parallax: int = 0, blinks: int = 0):
        for _ in range(count):
            self.passive.parallax += parallax
            self.passive.blinks += blinks
            self.state = self.tracker.update(IMAGE, analysis, self.time)
            self.time += 0.1
        return self.state

    def until_shown(self, analysis: FrameAnalysis | None = None):
        for _ in range(100):
            state = self.feed(analysis or frame())
            if state.challenge is not None:
                return state
        raise AssertionError("no challenge was shown")


def test_drawn_sequences_are_short_varied_and_reproducible():
    sequences = [draw_challenges(random.Random(seed)) for seed in range(300)]
    assert sequences == [draw_challenges(random.Random(seed)) for seed in range(300)]
    assert {len(s) for s in sequences} == {2, 3}
    assert {code for s in sequences for code in s} == set(CHALLENGE_CODES)
    for sequence in sequences:
        assert all(a != b for a, b in zip(sequence, sequence[1:], strict=False))
        assert sequence.count("blink") <= 1
    assert len({tuple(s) for s in sequences}) > 40
    assert len(draw_challenges(secrets.SystemRandom(), count=3)) == 3
    with pytest.raises(ValueError):
        draw_challenges(random.Random(0), count=9)


def test_a_turn_needs_the_movement_and_parallax():
    session = Session(["turn_left", "blink"])
    state = session.until_shown()
    assert state.challenge.code == "turn_left" and state.challenge.index == 0
    assert state.challenge.total == 2 and state.hint == INSTRUCTIONS["turn_left"]
    assert state.as_dict()["challenge"]["seconds_left"] == pytest.approx(4.0, abs=0.11)
    # Yaw rises when a person turns to their own left (see the module docstring).
    state = session.feed(frame(yaw=20), 2, parallax=1)
    assert state.passed == ("turn_left",) and state.challenge is None
    assert state.hint == "look straight at the camera"
    assert state.as_dict()["challenges_passed"] == ["turn_left"] and state.score == 0.5


def test_a_turn_without_parallax_is_a_flat_picture_and_times_out():
    session = Session(["turn_left", "blink"])
    session.until_shown()
    state = session.feed(frame(yaw=20), 30)
    assert state.passed == () and state.challenge is not None
    state = session.feed(frame(yaw=20), 15)
    assert state.failure == "challenge_timeout" and not state.live
    assert state.challenge is None and "in time" in state.hint
    assert state.as_dict()["failure"] == "challenge_timeout"


def test_the_wrong_direction_fails_the_session():
    session = Session(["turn_left", "look_up"])
    session.until_shown()
    state = session.feed(frame(yaw=-20), 2, parallax=1)
    assert state.failure == "challenge_wrong_action" and state.passed == ()


def test_a_head_turn_while_a_blink_is_asked_is_wrong():
    session = Session(["blink", "look_down"])
    session.until_shown()
    assert session.feed(frame(pitch=15), 2, parallax=1).failure == "challenge_wrong_action"


def test_a_single_frame_spike_is_pose_noise():
    session = Session(["turn_left", "blink"])
    session.until_shown()
    session.feed(frame(yaw=-20), parallax=1)  # one outlier the other way
    state = session.feed(frame(yaw=1), 3)
    assert state.failure is None and state.passed == ()


def test_blinks_count_only_after_the_prompt_and_the_sequence_completes_in_order():
    session = Session(["blink", "look_down"])
    session.feed(frame(), blinks=1)  # a blink before any prompt does not answer it
    state = session.until_shown()
    assert state.challenge.code == "blink" and state.passed == ()
    # Lids closing 0.1 s after the prompt were closing before it: no answer.
    state = session.feed(frame(), blinks=1)
    assert state.passed == () and state.challenge.code == "blink"
    state = session.feed(frame(), 4)
    state = session.feed(frame(), blinks=1)
    assert state.passed == ("blink",)
    state = session.until_shown()
    assert state.challenge.code == "look_down" and state.challenge.index == 1
    state = session.feed(frame(pitch=12), 2, parallax=1)
    assert state.live and state.missing == [] and state.score == 1.0 and state.hint is None
    assert state.as_dict()["mode"] == "active" and state.as_dict()["is_live"]


def test_the_next_challenge_waits_for_the_head_to_come_back():
    config = DEFAULT_CHALLENGE_CONFIG
    session = Session(["turn_left", "turn_right"], config)
    session.until_shown()
    session.feed(frame(yaw=20), 2, parallax=1)
    # Still turned left after the settle pause: nothing is shown, so the way back to the
    # middle is not taken for a turn to the right.
    state = session.feed(frame(yaw=20), round(config.settle_seconds * 10) + 3)
    assert state.challenge is None and state.failure is None
    state = session.until_shown(frame(yaw=1))
    assert state.challenge.code == "turn_right"


def test_unusable_faces_give_their_hint_and_no_evidence():
    session = Session(["turn_left", "blink"])
    session.until_shown()
    state = session.feed(frame(yaw=25, issues=("too_small",)), 3, parallax=1)
    assert state.passed == () and state.hint == "too_small"


def test_passive_failures_end_the_active_session_too():
    session = Session(["turn_left", "blink"])
    session.until_shown()
    session.passive.failure = "face_changed"
    state = session.feed(frame(yaw=20), 2, parallax=1)
    assert state.failure == "face_changed" and not state.same_person and not state.live
    assert state.challenge is None and state.hint == "the person changed: start again"


def test_unknown_challenges_are_refused():
    with pytest.raises(ValueError):
        ChallengeTracker(ScriptedPassive(), ["jump"])
    with pytest.raises(ValueError):
        ChallengeTracker(ScriptedPassive(), [])
    # Challenges count blinks and 3D frames after each prompt: a tracker that stops is refused.
    with pytest.raises(ValueError, match="stop_at_evidence"):
        ChallengeTracker(LivenessTracker(stop_at_evidence=True), ["blink"])


def test_challenges_measure_parallax_over_shorter_windows_than_the_passive_mode():
    # Passive mode looks for small natural movements over 0.8 s; a prompted turn registers
    # within 0.4 s, and a longer window would reach back across the stillness before the prompt.
    passive = LivenessTracker()
    assert passive.parallax_window_frames == LivenessConfig().parallax_window_frames == 8
    ChallengeTracker(passive, ["turn_left"])
    assert passive.parallax_window_frames == DEFAULT_CHALLENGE_CONFIG.parallax_window_frames == 4
    ChallengeTracker(passive, ["turn_left"], ChallengeConfig(parallax_window_frames=6))
    assert passive.parallax_window_frames == 6
    with pytest.raises(ValueError, match="at least 2 frames"):
        passive.parallax_window_frames = 1
