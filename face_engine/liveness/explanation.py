"""Why a session was (or was not) found live, as reason codes a support desk can read out:
counts of what each signal rejected, no images and no measurements beyond counts. The liveness
tracker fills one per session; the service stores it with the session's result."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from face_engine.types import LivenessState

# Why a frame gave no evidence (docs/liveness.md says what each reason code means).
FRAME_ISSUES = ("no_face", "too_small", "partially_visible")


@dataclass
class Explanation:
    """Counts of the frames the signals could not use and of the eye closures the blink
    signal rejected, by reason."""

    frames: Counter = field(default_factory=Counter)
    blink_rejections: Counter = field(default_factory=Counter)

    def count(self, issue: str) -> None:
        self.frames[issue] += 1

    def blink_event(self, event: str | None) -> None:
        if event is not None and event.startswith("rejected:"):
            self.blink_rejections[event.removeprefix("rejected:")] += 1

    def as_dict(self, state: LivenessState) -> dict:
        """The explanation beside the session's last liveness state (its counts and verdicts
        say what was seen; this says what was rejected and why)."""
        return {
            "live": state.live,
            "failure": state.failure,
            "blink": {
                "seen": state.blinks > 0,
                "closures_rejected": dict(sorted(self.blink_rejections.items())),
            },
            "head_movement": {"seen": state.head_motion, "frames": state.parallax_frames},
            "presentation": state.presentation,
            "frames": state.frames,
            "frames_unusable": {issue: self.frames[issue] for issue in FRAME_ISSUES if self.frames[issue]},
        }
