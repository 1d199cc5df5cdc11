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
class LivenessConfig:
    """Thresholds of passive liveness. Each number says which measurement it comes from:
    ``bench/liveness_bench.py`` (shared live clips, their generated variations and the
    synthesised attacks, at 10 frames/s as 640x480 JPEG) prints the figures they rest on."""

    default_fps: float = 10.0  # for timestamps when the caller gives none
    # Faces with the eye centres closer than this give "move closer" and no evidence: the
    # quality check's 80 px minimum face width is about 32 px between the eye centres.
    min_eye_distance: float = 32.0
    # --- blink (liveness/blink.py) ---
    # The open-eye level: a high percentile of this many recent openings of the eye model.
    baseline_frames: int = 20
    baseline_percentile: float = 70.0
    # Eye-model opening against the open level (bench/blink_bench.py prints every annotated
    # event's deepest ratio at 10 frames/s): closed frames of real blinks fall to 0.26-0.55,
    # lids caught half-closed to 0.64-0.68 (liveportrait_s32, sadtalker_katiehill); open eyes
    # that are not blinking stay above 0.71 but for looks down and frowns (d3: 0.39-0.58,
    # for a second or more, which max_blink_seconds refuses).
    close_ratio: float = 0.6  # each eye below this share of its open level = closing
    open_ratio: float = 0.75  # ... above this share = open again
    max_blink_seconds: float = 0.5  # closure to first open frame; real blinks close for 1-3
    # frames at 10 frames/s, looks down, frowns and squints for 5 or more (d3 at 3.4 s and
    # 7.3 s, d10 at 3.9 s): longer = not a blink
    # Eye-patch change (1 - NCC of the blurred aligned patch) against the last open frame that
    # both eyes need for a closure: real blinks in the shared clips score 0.17-0.8, the photo
    # attacks at most 0.11 (flicker; jitter, tilt, low resolution, bent under 0.06).
    min_eye_change: float = 0.15
    strong_eye_change: float = 0.25  # a change this large counts an eye as closing even when
    # its opening has only fallen below open_ratio (more than twice the attacks' largest)
    # Landmarks' rigid points (eye corners, nose) moving against each other in the aligned
    # frame between the frame before a closure and the closed one, in eye distances: real
    # blinks move them 0.006-0.16 (the most while sadtalker_katiehill turns her head by 19
    # degrees as she blinks, 1.4 s); more is a lost fit, not a head.
    max_blink_head_shift: float = 0.25
    # --- parallax (liveness/parallax.py) ---
    # Coherent homography residual of the tracked face points, per eye distance. Photo
    # attacks (jitter, tilt; 60 frames each on every photo source) stay under 0.04 except
    # where tracking loses most points (a tilted obama-480p, a shaken half face: up to 8
    # frames); heads that move give 2 (d0, d14: nearly frontal) to 44 (katiehill) frames above.
    min_parallax: float = 0.05
    parallax_window_frames: int = 4  # frames a set of tracked points is followed (0.4 s)
    parallax_min_points: int = 12  # fewer tracked points: no measurement
    parallax_frames: int = 2  # frames showing 3D movement before head movement counts
    # --- identity continuity (liveness/identity.py) ---
    identity_seconds: float = 1.0  # between identity checks (and on every reappearance)
    # between identity checks while the face tracker follows the same face from frame to
    # frame; a break of the track or a failed check makes the next one due after
    # identity_seconds. A cut to a similar-looking face can keep the track (liveportrait_d0 to
    # _s18 did), so a swap is caught within this plus identity_seconds (services refuse samples
    # that do not match the checked person meanwhile: LivenessTracker.is_same_person)
    identity_followed_seconds: float = 3.0
    same_person_min: float = 0.30  # cosine; different people in the test clips stay under 0.34
    face_changed_checks: int = 2  # consecutive failed identity checks that end the session
    # --- static replay (liveness/replay.py) ---
    static_max_difference: float = 0.2  # mean absolute difference of the 48x48 face patch;
    # exact replays score 0, a live webcam stays above it even with temporal denoising
    static_frames: int = 15  # consecutive near-identical frames that end the session


DEFAULT_LIVENESS = LivenessConfig()


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
    too_small: bool = False  # this frame's face was too small for evidence ("move closer")
    # The anti-spoofing signal's verdict: "undecided", "live", "attack" (a failure) or
    # "unjudgeable" (the face stayed too dark or blurred to score).
    presentation: str = "live"

    @property
    def blink_seen(self) -> bool:
        return self.blinks > 0

    @property
    def presentation_passed(self) -> bool:
        """No attack verdict from the anti-spoofing signal: it found the face live, or could not
        judge it (too dark or blurred: the person gets a lighting hint, not an attack verdict,
        and blink and parallax decide as they did before the signal)."""
        return self.presentation in ("live", "unjudgeable")

    @property
    def live(self) -> bool:
        return not self.missing and self.same_person and self.failure is None and self.presentation_passed

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
            "presentation": self.presentation,
        }


@dataclass(frozen=True)
class Match:
    """Best match of a probe in a gallery: ``index`` is its row (None for an empty gallery)."""

    index: int | None
    similarity: float
    is_match: bool
    threshold: float
