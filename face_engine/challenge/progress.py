"""What an active session reports after each frame: the pending challenge as a client shows it,
the state that wraps the passive one, and the hint for the person."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from face_engine.challenge.draw import INSTRUCTIONS
from face_engine.types import LivenessState

FAILURE_HINTS = {
    "challenge_timeout": "the instruction was not followed in time: start again",
    "challenge_wrong_action": "that was not the movement asked for: start again",
}
HINT_SETTLE = "look straight at the camera"


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


def report(
    passive: LivenessState, *, challenges: tuple[str, ...], passed: tuple[str, ...], failure: str | None,
    pending: ChallengeStatus | None, unusable_hint: str | None,
) -> ActiveLivenessState:
    """The state after a frame. ``failure`` is the challenges' own (the passive one wins);
    ``pending`` the shown challenge, if any; ``unusable_hint`` says what to fix when the
    frame's face cannot be judged."""
    failure = passive.failure or failure
    challenge = pending if failure is None else None
    if passive.failure is not None:
        hint = passive.hint
    elif failure is not None:
        hint = FAILURE_HINTS[failure]
    elif len(passed) == len(challenges):
        hint = None if passive.presentation_passed else passive.hint
    elif unusable_hint is not None:
        hint = unusable_hint
    else:
        hint = challenge.instruction if challenge is not None else HINT_SETTLE
    return ActiveLivenessState(
        passive=passive, total=len(challenges), passed=passed, challenge=challenge, failure=failure,
        hint=hint,
    )


def pending_status(code: str, *, index: int, total: int, seconds_left: float) -> ChallengeStatus:
    return ChallengeStatus(code=code, instruction=INSTRUCTIONS[code], index=index, total=total,
                           seconds_left=seconds_left)
