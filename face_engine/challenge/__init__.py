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

The pieces: ``draw`` (what can be asked and the random sequence), ``judge`` (whether one shown
challenge was performed, done wrong or timed out), ``progress`` (what a client is told after
each frame); ``ChallengeTracker`` here shows the challenges in turn and wraps the passive tracker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from face_engine.challenge.draw import CHALLENGE_CODES, INSTRUCTIONS, draw_challenges
from face_engine.challenge.judge import (
    DEFAULT_CHALLENGE_CONFIG,
    MOVEMENTS,
    ChallengeConfig,
    ChallengeJudge,
    median_pose,
)
from face_engine.challenge.progress import (
    FAILURE_HINTS,
    HINT_SETTLE,
    ActiveLivenessState,
    ChallengeStatus,
    pending_status,
    report,
)
from face_engine.liveness import LivenessTracker
from face_engine.types import FrameAnalysis, LivenessState

__all__ = [
    "CHALLENGE_CODES", "DEFAULT_CHALLENGE_CONFIG", "FAILURE_HINTS", "HINT_SETTLE", "INSTRUCTIONS",
    "MOVEMENTS", "ActiveLivenessState", "ChallengeConfig", "ChallengeStatus", "ChallengeTracker",
    "draw_challenges", "median_pose",
]

# Quality issues whose landmarks (and so head pose) are guesses, as the passive tracker holds.
_UNRELIABLE_POSE = frozenset({"partially_visible", "too_small"})


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
        passive.parallax_window_frames = config.parallax_window_frames
        self.challenges = tuple(challenges)
        self.config = config
        self._passed: list[str] = []
        self._failure: str | None = None
        self._poses: deque[tuple[float, float]] = deque(maxlen=config.reference_frames)
        self._settle_from: float | None = None  # when the current pause started
        self._neutral: tuple[float, float] | None = None  # pose when the first challenge was shown
        self._judge: ChallengeJudge | None = None  # the shown challenge
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
        pending = len(self._passed) < len(self.challenges) and self._failure is None
        # The eye model runs only while the blink challenge is next (its settle pause gives the
        # blink signal the open-eye frames it needs first).
        self.passive.seek_blink = pending and self.challenges[len(self._passed)] == "blink"
        passive = self.passive.update(image, analysis, now, gray=gray, continued=continued)
        usable = (
            analysis.landmarks is not None
            and analysis.face is not None
            and not passive.too_small
            and not _UNRELIABLE_POSE & set(analysis.quality.codes)
        )
        if passive.failure is None and pending:
            self._step(analysis, passive, now, usable)
        shown = None
        if self._judge is not None:
            shown = pending_status(self._judge.code, index=len(self._passed), total=len(self.challenges),
                                   seconds_left=self._judge.seconds_left(now))
        return report(passive, challenges=self.challenges, passed=tuple(self._passed), failure=self._failure,
                      pending=shown, unusable_hint=None if usable else analysis.hint or passive.hint)

    def _step(self, analysis: FrameAnalysis, passive: LivenessState, now: float, usable: bool) -> None:
        pose = (analysis.landmarks.pose.yaw, analysis.landmarks.pose.pitch) if usable else None
        if pose is not None:
            self._poses.append(pose)
        else:
            self._poses.clear()  # references need consecutive good frames
        judge = self._judge
        if judge is None:
            if pose is not None:
                self._maybe_show(passive, now)
            return
        judge.see(pose)
        if judge.performed(passive, self.passive.last_blink_began):
            self._passed.append(judge.code)
            self._judge = None
            self._settle_from = now
        elif judge.wrong_movement():
            self._failure = "challenge_wrong_action"
        elif judge.timed_out(now):
            self._failure = "challenge_timeout"

    def _maybe_show(self, passive: LivenessState, now: float) -> None:
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
        self._judge = ChallengeJudge(self.challenges[len(self._passed)], reference=reference, shown_at=now,
                                     passive=passive, config=config)
