"""Small result types of the engine. Plain dataclasses over numpy arrays: no OpenCV or dlib types."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the image it was found in."""

    x: int
    y: int
    width: int
    height: int

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class Face:
    """A detected face: box, detector confidence and 5 key points (right eye, left eye, nose
    tip, right and left mouth corner, as YuNet orders them) as a (5, 2) float array."""

    box: Box
    score: float
    keypoints: np.ndarray

    def as_dict(self) -> dict:
        return {
            "box": self.box.as_dict(),
            "score": round(self.score, 4),
            "keypoints": np.round(self.keypoints, 1).tolist(),
        }


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees: yaw (left/right turn), pitch (up/down), roll (in-plane tilt)."""

    yaw: float
    pitch: float
    roll: float

    def as_dict(self) -> dict[str, float]:
        return {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1), "roll": round(self.roll, 1)}


@dataclass(frozen=True)
class Landmarks:
    """68 facial landmarks (iBUG order) as a (68, 2) float array, eye openness and head pose.

    ``ear`` is the eye aspect ratio averaged over both eyes: about 0.25-0.35 open, below
    about 0.2 closed; it is scale- and rotation-invariant, which is why blinks use it."""

    points: np.ndarray
    left_ear: float
    right_ear: float
    pose: Pose

    @property
    def ear(self) -> float:
        return (self.left_ear + self.right_ear) / 2.0


@dataclass(frozen=True)
class QualityIssue:
    """One reason a face is not good enough, with a hint a person can act on."""

    code: str
    hint: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "hint": self.hint}


@dataclass(frozen=True)
class Quality:
    """Quality verdict of a frame: ``ok`` when there are no issues; issues come most
    important first. ``metrics`` holds the measured values behind the verdict."""

    issues: list[QualityIssue]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def codes(self) -> list[str]:
        return [issue.code for issue in self.issues]

    def as_dict(self) -> dict:
        return {"ok": self.ok, "issues": [issue.as_dict() for issue in self.issues]}


@dataclass(frozen=True)
class FrameAnalysis:
    """What the per-frame tracking path found in one image. ``face`` is the primary (largest)
    face, ``landmarks`` belong to it."""

    image_size: tuple[int, int]
    faces: list[Face]
    face: Face | None
    landmarks: Landmarks | None
    quality: Quality

    @property
    def hint(self) -> str | None:
        return self.quality.issues[0].hint if self.quality.issues else None


@dataclass(frozen=True)
class LivenessState:
    """The liveness tracker's state after a frame.

    ``missing`` lists what is still needed ("blink", "head_movement"); ``blinks`` and
    ``parallax_frames`` only grow, so a caller sees a new blink or new 3D movement on the
    frame where the count rises; ``failure`` is set
    once the session can never become live ("face_changed", "static_image"); ``embedding``
    is the identity embedding computed on this frame, if any, so callers can reuse it
    instead of embedding the frame again."""

    frames: int
    blinks: int
    head_motion: bool
    same_person: bool
    missing: list[str]
    failure: str | None
    hint: str | None
    embedding: np.ndarray | None = None
    parallax_frames: int = 0  # frames so far that showed 3D (non-planar) head movement

    @property
    def blink_seen(self) -> bool:
        return self.blinks > 0

    @property
    def live(self) -> bool:
        return not self.missing and self.same_person and self.failure is None

    @property
    def score(self) -> float:
        """Share of the liveness evidence gathered so far, 0 to 1."""
        if self.failure is not None:
            return 0.0
        return round((2 - len(self.missing)) / 2, 2)

    def as_dict(self) -> dict:
        return {
            "is_live": self.live,
            "blink_detected": self.blink_seen,
            "blinks": self.blinks,
            "head_movement": self.head_motion,
            "same_person": self.same_person,
            "score": self.score,
            "missing": list(self.missing),
            "failure": self.failure,
            "frames": self.frames,
        }


@dataclass(frozen=True)
class Match:
    """Best match of a probe in a gallery: ``index`` is its row (None for an empty gallery)."""

    index: int | None
    similarity: float
    is_match: bool
    threshold: float
