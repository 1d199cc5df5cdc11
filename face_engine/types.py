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
    # bench/blink_bench.py prints the figures these rest on: every annotated blink of the shared
    # clips at 10 frames/s (bench/blink_events.csv), their 12 live variations (camera motion,
    # light, resolution, narrow eyes) and every synthesised photo attack.
    # The open level: a high percentile of this many recent openings of open eyes.
    baseline_frames: int = 20
    baseline_percentile: float = 70.0
    # The less-closed eye at this share of its open level or above = eyes open. Open eyes stay
    # above 0.8 but for a gaze down or a squint; below it a dip may begin.
    open_ratio: float = 0.8
    # A dip deeper than this (the less-closed eye) that does not rise again within the window
    # is reported as too long for a blink (looking down, eyes shut).
    close_ratio: float = 0.6
    # The dip: its deepest frame, the most open frame before it in the window, the frame after.
    # The window holds both sides of a blink at 10 frames/s: real blinks' dips, closing to
    # reopening, span 1-5 frames (0.1-0.5 s; liveportrait_d9's slow ones 0.4-0.5 s).
    blink_window_seconds: float = 0.65
    # Fully open eyes (open_ratio) must have been seen this shortly before the deepest frame:
    # lids that flutter while shut for seconds (liveportrait_d14 at 4.2-6.9 s) or stay half
    # down are not blinking. Two blinks in a row (liveportrait_d9 at 9.8 s) are 0.5 s apart.
    blink_open_within: float = 0.6
    # Rise of the lids on both sides of the dip, in open levels (before: mean of the eyes, as a
    # wink may hold one eye down already, liveportrait_d3 at 1.6 s; after: each eye). Real
    # blinks caught half-closed rise by 0.13-0.35. 0.12 adds false blinks on the live
    # variations (16 -> 18), 0.18 loses real ones (351 -> 335 of 408). It is also the floor
    # where the noise is near zero: photo attacks whose opening noise is under 0.01 (84 of
    # 960 over two seeds) dip by 0.036 at most.
    min_blink_rise: float = 0.15
    # Noise: the median frame-to-frame change of open eyes' ratios (opening noise) and of their
    # look (look noise), over this many open frames; until this many are in, a prior stands in.
    blink_noise_frames: int = 20
    blink_noise_min_frames: int = 5
    blink_look_noise_gap: float = 0.25  # only open frames this close in time give look noise
    # Median noise per stream (5th-95th percentile), live clips and their variations: opening
    # 0.02-0.05, look 0.003-0.024; small faces carried by a walking or shaking phone up to 0.26
    # and 0.1. The priors sit above the live typical values: a photo carried on a walk
    # (obama-480p, 33 px between the eyes) blinked in its first half second with a look prior
    # of 0.03 (seed 1 of the attack set).
    blink_prior_noise: float = 0.05
    blink_prior_look_noise: float = 0.04
    # Evidence 1, the look changed: each eye's look change at the deepest frame (against the
    # open frames either side, the larger) at least this many look noises and this floor, with
    # a rise of blink_rise_noise opening noises. Photo attacks' dips changed the look by up to
    # 0.06 on sharp faces, 0.25 on small moving ones, whose look noise is high too: at 4.5 look
    # noises one attack of seed 1 counted a blink.
    min_look_change: float = 0.12
    look_change_noise: float = 6.0
    blink_rise_noise: float = 3.0
    # Evidence 2, a dip alone far out of the opening's noise (a lid half closed on a steady,
    # sharp face: liveportrait_d9 at 4.7 s, 13 noises; liveportrait_d14 at 11.6 s, 5.6). Photo
    # attacks' dips reached 4.4 noises (a photo carried on a walk); at 4, three of them counted.
    strong_rise_noise: float = 5.0
    # Landmarks' rigid points (eye corners, nose) moving against each other in the aligned
    # frame between consecutive frames of the dip, in eye distances: real blinks move them
    # 0.006-0.16 (the most while sadtalker_katiehill turns her head by 19 degrees as she
    # blinks, 1.4 s); more is a lost fit, not a head.
    max_blink_head_shift: float = 0.25
    # --- parallax (liveness/parallax.py) ---
    # Coherent homography residual of the tracked face points, per eye distance. Over 8-frame
    # windows, a photo attack's highest residual in its session has a median of 0.011 and a
    # 90th percentile of 0.034 (the 480 of attacks.attack_set, seed 0); more only where
    # tracking loses most points (a photo shaken wide, tilted or carried on a walk: up to 16
    # frames). Heads that move give 2 (d0: nearly frontal) to 46 (katiehill) frames above it
    # in 120, every frame detected.
    min_parallax: float = 0.05
    # Frames a set of tracked points is followed (0.8 s). A slow head (liveportrait_d0 turns a
    # few degrees over its 3 s) builds parallax over the window: of the 84 live variations
    # (attacks.live_set, every frame detected), 5 (seed 0) and 9 (seed 1) never reached 0.05 on
    # 2 frames with 4-frame windows, 0 and 4 with 8. Flat pictures gain less but do gain (a
    # photo moved fast loses tracked points): photo attacks reaching it went from 9 to 13 of 480
    # (seed 0) and from 12 to 18 (seed 1), all shaken, tilted or carried (jitter, tilt, walking).
    parallax_window_frames: int = 8
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
