"""Judging one shown challenge: from the head poses and the passive tracker's counts after it
was shown, whether it was performed, whether the head moved another way instead, or whether its
time ran out."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from face_engine.types import LivenessState

# Head movements as (pose axis, sign): a movement towards the person's left raises the yaw,
# looking down raises the pitch (checked by eye: face_engine/challenge/__init__.py says where).
MOVEMENTS = {
    "turn_left": ("yaw", 1),
    "turn_right": ("yaw", -1),
    "look_up": ("pitch", -1),
    "look_down": ("pitch", 1),
}

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
    # The passive tracker's parallax window while challenges run (0.4 s, against the passive
    # mode's 0.8 s): a prompted turn is large and registers within it, and a longer window
    # reaches back further across the stillness before the prompt (and, in the evaluation's
    # spliced footage, across a cut: challenge_player.CUT_FRAMES).
    parallax_window_frames: int = 4
    # A blink answers the prompt only if its first closed frame came at least this long after
    # the prompt was shown: even simple visual reactions take 0.2-0.3 s, a blink on command
    # more (the instruction is read first), so an earlier closure was under way before it. A
    # straight replay of liveportrait_d9, whose lids close 0.2 s after the prompt (first closed
    # frame 0.3 s after it at 10 frames/s), passed the blink challenge; the obeying player
    # answers after 0.5-1 s.
    min_blink_reaction_seconds: float = 0.4
    # ... and at most this long after it: a blink on command comes within a second or two of
    # the prompt (the obeying player's closure begins 1.3-2.0 s after it, a lead-in of footage
    # included), while a replayed natural blinker blinks whenever; a later blink does not
    # answer, and the challenge times out (bench/active_liveness_bench.py measures replays).
    max_blink_reaction_seconds: float = 2.5

    def threshold(self, axis: str) -> float:
        return self.min_yaw_degrees if axis == "yaw" else self.min_pitch_degrees


DEFAULT_CHALLENGE_CONFIG = ChallengeConfig()


class ChallengeJudge:
    """One shown challenge. ``see`` takes each frame's head pose (None when the face cannot be
    judged); ``performed``, ``wrong_movement`` and ``timed_out`` give the verdicts."""

    def __init__(
        self, code: str, *, reference: tuple[float, float], shown_at: float, passive: LivenessState,
        config: ChallengeConfig,
    ) -> None:
        self.code = code
        self.reference = reference  # the head pose when it was shown (median of recent frames)
        self.shown_at = shown_at
        self.config = config
        self._blinks_at_issue = passive.blinks
        self._parallax_at_issue = passive.parallax_frames
        self._since_issue: list[tuple[float, float]] = []
        self._consecutive = 0  # usable frames in a row (held movements need consecutive frames)

    def see(self, pose: tuple[float, float] | None) -> None:
        if pose is None:
            self._consecutive = 0
            return
        self._consecutive += 1
        self._since_issue.append(pose)

    def held(self) -> dict[str, float]:
        """How far the head moved in each direction, as held over the last ``hold_frames``
        usable frames since the challenge was shown (0 when fewer frames)."""
        hold = self.config.hold_frames
        recent = self._since_issue[-hold:]
        if len(recent) < hold or self._consecutive < hold:
            return dict.fromkeys(MOVEMENTS, 0.0)
        moved = {}
        for code, (axis, sign) in MOVEMENTS.items():
            index = 0 if axis == "yaw" else 1
            moved[code] = min(sign * (pose[index] - self.reference[index]) for pose in recent)
        return moved

    def performed(self, passive: LivenessState, last_blink_began: float | None) -> bool:
        if self.code == "blink":
            reaction = None if last_blink_began is None else last_blink_began - self.shown_at
            return (passive.blinks > self._blinks_at_issue and reaction is not None
                    and self.config.min_blink_reaction_seconds <= reaction
                    <= self.config.max_blink_reaction_seconds)
        axis, _ = MOVEMENTS[self.code]
        return (
            self.held()[self.code] >= self.config.threshold(axis)
            and passive.parallax_frames - self._parallax_at_issue >= self.config.min_parallax_frames
        )

    def wrong_movement(self) -> bool:
        moved = self.held()
        # Progress as a share of each direction's threshold, so yaw and pitch compare fairly.
        share = {other: moved[other] / self.config.threshold(MOVEMENTS[other][0]) for other in MOVEMENTS}
        asked = share.get(self.code, 0.0)
        return any(value >= 1.0 and value > asked for other, value in share.items() if other != self.code)

    def timed_out(self, now: float) -> bool:
        return now - self.shown_at > self.config.window_seconds

    def seconds_left(self, now: float) -> float:
        return max(0.0, self.config.window_seconds - (now - self.shown_at))


def median_pose(poses: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Yaw and pitch, each the median over ``poses`` (how a challenge's reference is taken)."""
    return (statistics.median(p[0] for p in poses), statistics.median(p[1] for p in poses))
