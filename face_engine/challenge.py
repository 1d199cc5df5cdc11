"""Active liveness: the person performs a random sequence of challenges (turn the head left or
right, look up or down, blink), each within a time window after it is shown, in order.

A recording cannot follow prompts it has never seen: played straight, it does the wrong thing
or nothing at the moment a challenge is pending. ``ChallengeTracker`` wraps a passive
``LivenessTracker`` (composition), so its other rules keep applying: the same person
throughout, no static replay, no evidence from faces too small to resolve.

Directions are the person's own: "turn left" means their left. In an unmirrored camera frame
(what a browser sends) that turns the face towards the image's right, which the engine's head
pose reports as a rising yaw; looking down raises the pitch (checked by eye on the shared clips,
e.g. liveportrait_d3 at 8.7 s: yaw +22, turned to her left; liveportrait_d9 at 9.9 s: pitch
+12, looking down).

    rng = secrets.SystemRandom()          # the service; the CLI uses random.Random(SEED)
    tracker = ChallengeTracker(LivenessTracker(), draw_challenges(rng))
    state = tracker.update(image, analyze(image), timestamp)
    state.challenge                        # the pending challenge (code, instruction, seconds left)
"""

from __future__ import annotations

import random
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from face_engine.liveness import LivenessTracker
from face_engine.types import FrameAnalysis, LivenessState

INSTRUCTIONS = {
    "turn_left": "turn your head to the left",
    "turn_right": "turn your head to the right",
    "look_up": "look up",
    "look_down": "look down",
    "blink": "blink your eyes",
}
CHALLENGE_CODES = tuple(INSTRUCTIONS)
# Head movements as (pose axis, sign): a movement towards the person's left raises the yaw,
# looking down raises the pitch (see the module docstring).
MOVEMENTS = {
    "turn_left": ("yaw", 1),
    "turn_right": ("yaw", -1),
    "look_up": ("pitch", -1),
    "look_down": ("pitch", 1),
}
FAILURE_HINTS = {
    "challenge_timeout": "the instruction was not followed in time: start again",
    "challenge_wrong_action": "that was not the movement asked for: start again",
}
HINT_SETTLE = "look straight at the camera"
# Quality issues whose landmarks (and so head pose) are guesses, as the passive tracker holds.
_UNRELIABLE_POSE = frozenset({"partially_visible", "too_small"})


def draw_challenges(rng: random.Random, *, count: int | None = None) -> list[str]:
    """A random sequence of 2 or 3 challenge codes (``count`` fixes the length).

    No challenge follows itself, and there is at most one blink: blinks come by themselves
    every few seconds, so a recording "answers" a blink prompt far more often than a turn.
    Pass ``secrets.SystemRandom()`` in a service; a seeded ``random.Random`` reproduces a run."""
    length = count if count is not None else rng.choice((2, 3))
    if not 1 <= length <= len(CHALLENGE_CODES):
        raise ValueError(f"count must be from 1 to {len(CHALLENGE_CODES)}")
    sequence: list[str] = []
    while len(sequence) < length:
        options = [
            code
            for code in CHALLENGE_CODES
            if (not sequence or code != sequence[-1]) and not (code == "blink" and "blink" in sequence)
        ]
        sequence.append(rng.choice(options))
    return sequence


@dataclass(frozen=True)
class ChallengeConfig:
    """Thresholds of the active mode. Where the numbers come from (pose measured by the engine
    at 10 frames/s on the shared clips, see face_engine/evaluation/challenge_player.py):

    - Head pose of a still, frontal person wobbles by up to +-4 degrees of yaw and pitch from
      frame to frame (liveportrait_d0, d9 0-4.6 s, d12), with single-frame spikes up to 15
      degrees (d12 at 0.3 s); hence a movement must hold for ``hold_frames`` frames, and its
      size is taken from the median of ``reference_frames`` poses when the challenge is shown.
    - Deliberate turns in the clips reach 13-36 degrees of yaw, deliberate up/down looks
      9-16 degrees of pitch (d9 at 9.9 s, 14.3 s, 18.9 s; sadtalker_katiehill at 1.3 s), while
      a talking frontal head drifts up to 10 degrees of pitch over seconds (liveportrait_d10),
      less within a challenge's window: turns need 12 degrees, looks 8.
    - Parallax: the passive tracker's 3D-movement count must rise at least once during a turn
      or look. Turns of 12-17 degrees often leave too little parallax for it at 10 frames/s
      (liveportrait_d9's residuals 0.02-0.045 against its 0.05), so a person must turn clearly.
    - The clips need 0.2-1.0 s from the start of a movement to its threshold; with a reaction
      time of 0.5-1 s and reading the instruction a person needs about 2 s, so the window is
      twice that. A longer window lets a straight replay hit more prompts by chance (measured:
      bench/active_liveness_bench.py).
    """

    window_seconds: float = 4.0  # from showing a challenge to its completion
    settle_seconds: float = 1.0  # pause after a face appears or a challenge passes
    max_settle_seconds: float = 3.0  # show the next challenge then even if the head is not back
    min_yaw_degrees: float = 12.0
    min_pitch_degrees: float = 8.0
    neutral_tolerance_degrees: float = 8.0  # "back to looking straight" before the next challenge
    hold_frames: int = 2  # consecutive usable frames a movement must hold
    reference_frames: int = 5  # usable frames whose median pose is the reference
    min_parallax_frames: int = 1  # rise of the passive tracker's 3D-movement count during a turn
    # A blink answers the prompt only if its first closed frame came at least this long after
    # the prompt was shown: even simple visual reactions take 0.2-0.3 s, a blink on command
    # more (the instruction is read first), so an earlier closure was under way before it. A
    # straight replay of liveportrait_d9, whose lids close 0.2 s after the prompt (first closed
    # frame 0.3 s after it at 10 frames/s), passed the blink challenge; the obeying player
    # answers after 0.5-1 s.
    min_blink_reaction_seconds: float = 0.4

    def threshold(self, axis: str) -> float:
        return self.min_yaw_degrees if axis == "yaw" else self.min_pitch_degrees


DEFAULT_CHALLENGE_CONFIG = ChallengeConfig()


@dataclass(frozen=True)
class ChallengeStatus:
    """The pending challenge, as a client shows it."""

    code: str
    instruction: str
    index: int  # 0-based position in the sequence
    total: int
    seconds_left: float

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "instruction": self.instruction,
            "index": self.index,
            "total": self.total,
            "seconds_left": round(self.seconds_left, 1),
        }


@dataclass(frozen=True)
class ActiveLivenessState:
    """The state of an active session after a frame: the passive state it wraps, the pending
    challenge (None while settling, after the last one, or after a failure) and the codes
    passed so far. Offers what callers read from a ``LivenessState``; the session is live once
    every challenge passed with the same person throughout and no failure."""

    passive: LivenessState
    total: int
    passed: tuple[str, ...]
    challenge: ChallengeStatus | None
    failure: str | None
    hint: str | None

    mode = "active"

    @property
    def frames(self) -> int:
        return self.passive.frames

    @property
    def blinks(self) -> int:
        return self.passive.blinks

    @property
    def head_motion(self) -> bool:
        return self.passive.head_motion

    @property
    def parallax_frames(self) -> int:
        return self.passive.parallax_frames

    @property
    def same_person(self) -> bool:
        return self.passive.same_person

    @property
    def embedding(self) -> np.ndarray | None:
        return self.passive.embedding

    @property
    def missing(self) -> list[str]:
        return [] if len(self.passed) == self.total else ["challenges"]

    @property
    def live(self) -> bool:
        # The anti-spoofing signal vetoes here too (an attack verdict is a failure; it must
        # have decided).
        return (not self.missing and self.same_person and self.failure is None
                and self.passive.presentation_passed)

    @property
    def score(self) -> float:
        return 0.0 if self.failure is not None else round(len(self.passed) / self.total, 2)

    def as_dict(self) -> dict:
        return {
            **self.passive.as_dict(),
            "mode": self.mode,
            "is_live": self.live,
            "score": self.score,
            "missing": self.missing,
            "failure": self.failure,
            "challenge": self.challenge.as_dict() if self.challenge is not None else None,
            "challenges_passed": list(self.passed),
            "challenges_total": self.total,
        }


class ChallengeTracker:
    """Feed it every analysed frame of one session, in order, like a ``LivenessTracker``.

    A challenge is shown once the face has been in view for ``settle_seconds`` (and, after a
    passed challenge, the head is back near where it looked at the first one). It passes when
    - a turn or look: the head pose, held for ``hold_frames`` frames, moved at least the
      axis threshold in the asked direction from the pose when it was shown, and the passive
      tracker saw 3D head movement (``parallax_frames`` rose) meanwhile: a flat picture
      rotated or tilted to fake a pose change leaves no parallax;
    - a blink: the passive tracker's blink count rose after it was shown, with the closure
      beginning at least ``min_blink_reaction_seconds`` after it.
    It fails the session with ``challenge_wrong_action`` when the head instead moves the
    threshold in another direction (further than in the asked one), and with
    ``challenge_timeout`` when ``window_seconds`` pass first."""

    def __init__(
        self,
        passive: LivenessTracker,
        challenges: Sequence[str],
        config: ChallengeConfig = DEFAULT_CHALLENGE_CONFIG,
    ) -> None:
        unknown = [code for code in challenges if code not in INSTRUCTIONS]
        if unknown or not challenges:
            raise ValueError(f"challenges must be a non-empty list of {', '.join(CHALLENGE_CODES)}")
        if passive.stop_at_evidence:
            raise ValueError("challenges need every blink and 3D frame counted: stop_at_evidence must be off")
        self.passive = passive
        self.challenges = tuple(challenges)
        self.config = config
        self._passed: list[str] = []
        self._failure: str | None = None
        history = max(config.reference_frames, config.hold_frames)
        self._poses: deque[tuple[float, float]] = deque(maxlen=history)
        self._settle_from: float | None = None  # when the current pause started
        self._neutral: tuple[float, float] | None = None  # pose when the first challenge was shown
        self._issued_at: float | None = None
        self._reference: tuple[float, float] = (0.0, 0.0)
        self._blinks_at_issue = 0
        self._parallax_at_issue = 0
        self._since_issue: list[tuple[float, float]] = []
        self._frames = 0

    @property
    def needs_detection(self) -> bool:
        """Always: every turn needs its 3D movement (see ``LivenessTracker.needs_detection``)."""
        return True

    def is_same_person(self, embedding: np.ndarray) -> bool:
        """As ``LivenessTracker.is_same_person``."""
        return self.passive.is_same_person(embedding)

    def update(
        self, image: np.ndarray, analysis: FrameAnalysis, timestamp: float | None = None, *,
        gray: np.ndarray | None = None, continued: bool = False,
    ) -> ActiveLivenessState:
        """Take one frame (the image and its ``analyze`` result) and return the new state.
        ``timestamp`` is in seconds; without it frames come at the passive default rate.
        ``gray`` and ``continued`` as ``LivenessTracker.update``."""
        self._frames += 1
        now = timestamp if timestamp is not None else self._frames / self.passive.config.default_fps
        # The eye model runs only while the blink challenge is next (its settle pause gives the
        # blink signal the open-eye frames it needs first).
        pending = len(self._passed) < len(self.challenges) and self._failure is None
        self.passive.seek_blink = pending and self.challenges[len(self._passed)] == "blink"
        passive = self.passive.update(image, analysis, now, gray=gray, continued=continued)
        usable = (
            analysis.landmarks is not None
            and analysis.face is not None
            and not passive.too_small
            and not _UNRELIABLE_POSE & set(analysis.quality.codes)
        )
        if passive.failure is None and self._failure is None and len(self._passed) < len(self.challenges):
            self._step(analysis, passive, now, usable)
        return self._state(passive, now, None if usable else analysis.hint or passive.hint)

    def _step(self, analysis: FrameAnalysis, passive: LivenessState, now: float, usable: bool) -> None:
        marks = analysis.landmarks
        if usable:
            self._poses.append((marks.pose.yaw, marks.pose.pitch))
        else:
            self._poses.clear()  # held movements and references need consecutive good frames
        if self._issued_at is None:
            if usable:
                self._maybe_issue(passive, now)
            return
        if usable:
            self._since_issue.append(self._poses[-1])
        code = self.challenges[len(self._passed)]
        if self._performed(code, passive):
            self._passed.append(code)
            self._issued_at = None
            self._settle_from = now
        elif self._wrong_movement(code):
            self._failure = "challenge_wrong_action"
        elif now - self._issued_at > self.config.window_seconds:
            self._failure = "challenge_timeout"

    def _maybe_issue(self, passive: LivenessState, now: float) -> None:
        config = self.config
        if self._settle_from is None:
            self._settle_from = now
        waited = now - self._settle_from
        if waited < config.settle_seconds or len(self._poses) < config.reference_frames:
            return
        reference = median_pose(list(self._poses)[-config.reference_frames:])
        if (
            self._neutral is not None
            and waited < config.max_settle_seconds
            and max(abs(reference[0] - self._neutral[0]), abs(reference[1] - self._neutral[1]))
            > config.neutral_tolerance_degrees
        ):
            return
        if self._neutral is None:
            self._neutral = reference
        self._reference = reference
        self._issued_at = now
        self._blinks_at_issue = passive.blinks
        self._parallax_at_issue = passive.parallax_frames
        self._since_issue = []

    def _held(self) -> dict[str, float]:
        """How far the head moved in each direction, as held over the last ``hold_frames``
        usable frames since the challenge was shown (0 when fewer frames)."""
        recent = self._since_issue[-self.config.hold_frames:]
        if len(recent) < self.config.hold_frames or len(self._poses) < self.config.hold_frames:
            return dict.fromkeys(MOVEMENTS, 0.0)
        moved = {}
        for code, (axis, sign) in MOVEMENTS.items():
            index = 0 if axis == "yaw" else 1
            moved[code] = min(sign * (pose[index] - self._reference[index]) for pose in recent)
        return moved

    def _performed(self, code: str, passive: LivenessState) -> bool:
        if code == "blink":
            began = self.passive.last_blink_began
            return (passive.blinks > self._blinks_at_issue and began is not None
                    and began - self._issued_at >= self.config.min_blink_reaction_seconds)
        axis, _ = MOVEMENTS[code]
        return (
            self._held()[code] >= self.config.threshold(axis)
            and passive.parallax_frames - self._parallax_at_issue >= self.config.min_parallax_frames
        )

    def _wrong_movement(self, code: str) -> bool:
        moved = self._held()
        # Progress as a share of each direction's threshold, so yaw and pitch compare fairly.
        share = {other: moved[other] / self.config.threshold(MOVEMENTS[other][0]) for other in MOVEMENTS}
        asked = share.get(code, 0.0)
        return any(value >= 1.0 and value > asked for other, value in share.items() if other != code)

    def _state(self, passive: LivenessState, now: float, unusable_hint: str | None) -> ActiveLivenessState:
        """``unusable_hint`` says what to fix when the frame's face cannot be judged."""
        failure = passive.failure or self._failure
        challenge = None
        if failure is None and self._issued_at is not None:
            index = len(self._passed)
            code = self.challenges[index]
            challenge = ChallengeStatus(
                code=code,
                instruction=INSTRUCTIONS[code],
                index=index,
                total=len(self.challenges),
                seconds_left=max(0.0, self.config.window_seconds - (now - self._issued_at)),
            )
        if passive.failure is not None:
            hint = passive.hint
        elif self._failure is not None:
            hint = FAILURE_HINTS[self._failure]
        elif len(self._passed) == len(self.challenges):
            hint = None if passive.presentation_passed else passive.hint
        elif unusable_hint is not None:
            hint = unusable_hint
        else:
            hint = challenge.instruction if challenge is not None else HINT_SETTLE
        return ActiveLivenessState(
            passive=passive,
            total=len(self.challenges),
            passed=tuple(self._passed),
            challenge=challenge,
            failure=failure,
            hint=hint,
        )


def median_pose(poses: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Yaw and pitch, each the median over ``poses`` (how a challenge's reference is taken)."""
    return (statistics.median(p[0] for p in poses), statistics.median(p[1] for p in poses))
