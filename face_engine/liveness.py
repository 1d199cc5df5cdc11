"""Liveness over a stream of frames: a natural blink, natural (3D) head movement, and the same
person throughout.

Why these signals hold up against simple presentation attacks:
- Blink: the eye aspect ratio (EAR) must fall well below the person's own recent open-eye
  level and come back within a blink's duration. A printed photo's EAR does not change.
- Head movement: the head pose must change by several degrees *and* the 68 landmarks must
  stop fitting one plane-to-plane mapping (homography) of an earlier frame. Anything flat
  (a photo moved, rotated or tilted in front of the camera) is related to its earlier
  views by a homography, so its landmarks keep fitting one to within landmark noise.
- Identity: embeddings are taken every few frames and whenever the face reappears; a face
  that no longer matches the ones seen earlier ends the session (``face_changed``).
- Replay of the very same frame: consecutive frames whose face pixels are identical to
  within encoding noise end the session (``static_image``).
Not covered: a video replayed on a screen or a 3D mask; those need texture/depth analysis."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from face_engine.embed import embed
from face_engine.types import FrameAnalysis, LivenessState

HINT_BLINK = "blink naturally"
HINT_MOVE = "turn your head slightly"
HINT_FACE = "keep your face in view"
HINT_SAME_PERSON = "the person changed: start again"
HINT_STATIC = "a still image was detected: use a live camera"


@dataclass(frozen=True)
class LivenessConfig:
    """Thresholds, measured on real footage at 10 frames/s (see tests/engine)."""

    baseline_frames: int = 20  # open-eye level: a high percentile of this many recent EARs
    baseline_percentile: float = 70.0
    close_ratio: float = 0.65  # EAR below this share of the open level = eyes closed
    open_ratio: float = 0.8  # ... above this share = open again
    max_blink_seconds: float = 0.7  # closure to first open frame; longer = a squint, not a blink
    min_pose_change: float = 6.0  # degrees of yaw or pitch away from the reference frame
    min_nonplanar: float = 0.045  # homography residual / eye span; flat photos stay under ~0.03
    nonplanar_frames: int = 3  # frames showing 3D movement before it counts
    identity_every: int = 5  # frames between identity checks
    same_person_min: float = 0.30  # cosine; different people in the test clips stay under 0.34
    face_changed_checks: int = 2  # consecutive failed identity checks that end the session
    static_max_difference: float = 0.2  # mean absolute difference of the 48x48 face patch;
    # exact replays score 0, a live webcam stays above it even with temporal denoising
    static_frames: int = 15  # consecutive near-identical frames that end the session
    default_fps: float = 10.0  # for timestamps when the caller gives none


class LivenessTracker:
    """Feed it every analyzed frame of one session, in order; read the returned state."""

    def __init__(self, config: LivenessConfig = LivenessConfig()) -> None:
        self.config = config
        self._frames = 0
        self._blinks = 0
        self._ears: deque[float] = deque(maxlen=config.baseline_frames)
        self._closed_since: float | None = None
        self._blink_armed = True
        self._extreme_views: dict[str, tuple[np.ndarray, tuple[float, float]]] = {}
        self._nonplanar_frames = 0
        self._identities: list[np.ndarray] = []
        self._since_identity_check = 0
        self._failed_identity_checks = 0
        self._face_was_missing = True
        self._previous_patch: np.ndarray | None = None
        self._static_frames = 0
        self._failure: str | None = None

    def update(
        self, image: np.ndarray, analysis: FrameAnalysis, timestamp: float | None = None
    ) -> LivenessState:
        """Take one frame (the image and its ``analyze`` result) and return the new state.

        ``timestamp`` is in seconds; without it frames are taken to come at 10 per second."""
        self._frames += 1
        now = timestamp if timestamp is not None else self._frames / self.config.default_fps
        embedding = None
        if self._failure is None and analysis.face is not None and analysis.landmarks is not None:
            embedding = self._observe(image, analysis, now)
        elif analysis.face is None:
            self._face_was_missing = True
            self._closed_since = None
        return self._state(analysis, embedding)

    def _observe(self, image: np.ndarray, analysis: FrameAnalysis, now: float) -> np.ndarray | None:
        face, marks = analysis.face, analysis.landmarks
        assert face is not None and marks is not None  # checked by update
        self._check_static(image, face.box)
        embedding = None
        self._since_identity_check += 1
        if (
            self._face_was_missing
            or not self._identities
            or self._since_identity_check >= self.config.identity_every
        ):
            embedding = embed(image, face)
            self._check_identity(embedding)
        self._face_was_missing = False
        self._track_blink(marks.ear, now)
        # Landmarks of a face cut by the frame or too small to resolve are guesses at the
        # hidden part; they would look like 3D movement.
        if not {"partially_visible", "too_small"} & set(analysis.quality.codes):
            self._track_motion(marks.points, (marks.pose.yaw, marks.pose.pitch))
        return embedding

    def _track_blink(self, ear: float, now: float) -> None:
        config = self.config
        if len(self._ears) >= 3:
            baseline = float(np.percentile(self._ears, config.baseline_percentile))
            if self._closed_since is None:
                if self._blink_armed and ear < config.close_ratio * baseline:
                    self._closed_since = now
                    return  # closed-eye values stay out of the open-eye baseline
                if ear >= config.open_ratio * baseline:
                    self._blink_armed = True
            elif ear >= config.open_ratio * baseline:
                if now - self._closed_since <= config.max_blink_seconds:
                    self._blinks += 1
                self._closed_since = None
            elif now - self._closed_since > config.max_blink_seconds:
                # A long squint or closed eyes, not a blink: let the baseline follow it, and
                # wait for open eyes before looking for the next closure.
                self._closed_since = None
                self._blink_armed = False
            else:
                return
        self._ears.append(ear)

    def _track_motion(self, points: np.ndarray, pose: tuple[float, float]) -> None:
        # Compare with the views at the extremes of yaw and pitch seen so far: the wider
        # the angle between two views of a head, the further its landmarks are from any
        # homography, while a flat face keeps fitting one whatever the angle.
        points = points.astype(np.float64)
        moved = False
        for view_points, view_pose in self._extreme_views.values():
            change = max(abs(pose[0] - view_pose[0]), abs(pose[1] - view_pose[1]))
            if change >= self.config.min_pose_change and (
                planar_residual(view_points, points) >= self.config.min_nonplanar
            ):
                moved = True
                break
        if moved:
            self._nonplanar_frames += 1
        for key, axis, sign in (("yaw-", 0, -1), ("yaw+", 0, 1), ("pitch-", 1, -1), ("pitch+", 1, 1)):
            known = self._extreme_views.get(key)
            if known is None or sign * pose[axis] > sign * known[1][axis]:
                self._extreme_views[key] = (points, pose)

    def _check_identity(self, embedding: np.ndarray) -> None:
        self._since_identity_check = 0
        if self._identities:
            best = max(float(embedding @ known) for known in self._identities)
            if best < self.config.same_person_min:
                self._failed_identity_checks += 1
                if self._failed_identity_checks >= self.config.face_changed_checks:
                    self._failure = "face_changed"
                return
        self._failed_identity_checks = 0
        self._identities.append(embedding)

    def _check_static(self, image: np.ndarray, box) -> None:
        x0, y0 = max(box.x, 0), max(box.y, 0)
        crop = image[y0:box.y + box.height, x0:box.x + box.width]
        if crop.size == 0:
            return
        patch = cv2.resize(crop, (48, 48), interpolation=cv2.INTER_LINEAR).astype(np.int16)
        if self._previous_patch is not None:
            difference = float(np.abs(patch - self._previous_patch).mean())
            if difference < self.config.static_max_difference:
                self._static_frames += 1
                if self._static_frames >= self.config.static_frames:
                    self._failure = "static_image"
            else:
                self._static_frames = 0
        self._previous_patch = patch

    def _state(self, analysis: FrameAnalysis, embedding: np.ndarray | None) -> LivenessState:
        head_motion = self._nonplanar_frames >= self.config.nonplanar_frames
        missing = [
            name
            for name, seen in (("blink", self._blinks > 0), ("head_movement", head_motion))
            if not seen
        ]
        if self._failure == "face_changed":
            hint = HINT_SAME_PERSON
        elif self._failure == "static_image":
            hint = HINT_STATIC
        elif analysis.face is None:
            hint = HINT_FACE
        elif "blink" in missing:
            hint = HINT_BLINK
        elif missing:
            hint = HINT_MOVE
        else:
            hint = None
        return LivenessState(
            frames=self._frames,
            blinks=self._blinks,
            head_motion=head_motion,
            same_person=self._failure != "face_changed",
            missing=missing,
            failure=self._failure,
            hint=hint,
            embedding=embedding,
            parallax_frames=self._nonplanar_frames,
        )


def planar_residual(reference: np.ndarray, points: np.ndarray) -> float:
    """How far ``points`` are from the best homography image of ``reference``: RMS
    landmark error divided by the eye-corner span. Views of one flat object score near
    landmark noise (about 0.01-0.03); a turning head scores more."""
    reference = np.asarray(reference, np.float64)
    points = np.asarray(points, np.float64)
    homography, _ = cv2.findHomography(reference, points, 0)
    if homography is None:
        return 0.0
    mapped = cv2.perspectiveTransform(reference.reshape(-1, 1, 2), homography).reshape(-1, 2)
    span = float(np.linalg.norm(points[36] - points[45])) or 1.0
    return float(np.sqrt(((mapped - points) ** 2).sum(axis=1).mean()) / span)
