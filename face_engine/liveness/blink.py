"""Blink: both eyes close and reopen within a blink's time while the rest of the face stays
rigid, seen in the face-aligned frame (face_frame.py).

The eye aspect ratio (EAR) of dlib's landmarks alone is not evidence: on a small, blurred or
resampled face the eyelid points wander by a pixel or two, and a photo moved by hand shows
EAR "dips". So a closure also needs the eyes' *appearance* to change against the last open
frame (closed lids hide the dark iris and lash line: a large change in the aligned, blurred
eye patch, which a photo cannot produce whatever its motion, because after alignment its eye
pixels are the same pixels), and the head must not have moved meanwhile (eye corners and
nose keep their places in the aligned frame, and the pose stays put): a head turning or
looking down narrows the eyes without a blink."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from face_engine.liveness.face_frame import ALIGNED_EYE_DISTANCE, LEFT_EYE_AT, RIGHT_EYE_AT, AlignedFace
from face_engine.types import Landmarks, LivenessConfig

_EYE_HALF = (11, 7)  # half width and height of an eye patch in aligned pixels


@dataclass(frozen=True)
class EyeView:
    """What the blink signal keeps of one frame."""

    ears: tuple[float, float]  # (subject's right, left)
    patches: tuple[np.ndarray, np.ndarray]
    rigid: np.ndarray
    pose: tuple[float, float]  # (yaw, pitch)
    time: float


def eye_view(face: AlignedFace, marks: Landmarks, now: float) -> EyeView:
    """The eye patches of the aligned face, with the landmarks' eye ratios and pose."""
    blurred = cv2.GaussianBlur(face.gray, (5, 5), 1.0).astype(np.float32)
    half_width, half_height = _EYE_HALF
    right, left = (
        blurred[round(y) - half_height:round(y) + half_height, round(x) - half_width:round(x) + half_width]
        for x, y in (RIGHT_EYE_AT, LEFT_EYE_AT)
    )
    pose = (marks.pose.yaw, marks.pose.pitch)
    return EyeView((marks.right_ear, marks.left_ear), (right, left), face.rigid, pose, now)


def appearance_change(a: np.ndarray, b: np.ndarray) -> float:
    """1 - normalised cross-correlation: 0 for the same pattern whatever the brightness and
    contrast (flicker, exposure), up to 2 for an inverted one."""
    a = a - a.mean()
    b = b - b.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 1.0 - float((a * b).sum()) / norm if norm > 1e-6 else 0.0


def head_shift(a: EyeView, b: EyeView) -> tuple[float, float]:
    """(RMS movement of the eye corners and nose in the aligned frame, per eye distance;
    largest change of yaw or pitch in degrees) between two views."""
    moved = float(np.sqrt(((a.rigid - b.rigid) ** 2).sum(axis=1).mean())) / ALIGNED_EYE_DISTANCE
    turned = max(abs(a.pose[0] - b.pose[0]), abs(a.pose[1] - b.pose[1]))
    return moved, turned


class BlinkSignal:
    """Feed it every usable face; ``update`` returns True on the frame a blink completes."""

    def __init__(self, config: LivenessConfig) -> None:
        self.config = config
        self._open: deque[tuple[float, float]] = deque(maxlen=config.baseline_frames)
        self._reference: EyeView | None = None  # the last open-eyed frame
        self._closed: EyeView | None = None  # the first frame of the current closure
        self._previous: EyeView | None = None  # the frame before this one
        self._armed = True
        self.eyes_open = True  # the last frame's eyes were at their open level (or unknown)

    def reset(self) -> None:
        """The face was lost: a closure in progress no longer counts."""
        self.eyes_open = True
        self._closed = None
        self._reference = None
        self._previous = None

    def update(self, view: EyeView) -> bool:
        counted = self._update(view)
        self._previous = view
        return counted

    def _update(self, view: EyeView) -> bool:
        config = self.config
        if len(self._open) < 3:
            self._open.append(view.ears)
            self._reference = view
            return False
        baseline = np.percentile(np.array(self._open), config.baseline_percentile, axis=0)
        ratios = [ear / base for ear, base in zip(view.ears, baseline, strict=True)]
        opened = self.eyes_open = min(ratios) >= config.open_ratio
        if self._closed is not None:
            if view.time - self._closed.time > config.max_blink_seconds:
                # Closed for longer than a blink: a squint or eyes shut, not a blink. Look for
                # the next closure once the eyes are open (now, or later).
                self._closed, self._armed = None, opened
                if opened:
                    self._accept_open(view)
            elif opened or (min(ratios) >= config.close_ratio and self._looks_as_before(view)):
                self._closed = None
                self._accept_open(view)
                return True
            return False
        if self._armed and self._reference is not None and max(ratios) < config.open_ratio:
            changes = self.eye_changes(view)
            # An eye is closing when its ratio falls well below its open level, or below
            # the open level with a strong change of look (a half-closed lid caught at
            # 10 frames/s, or landmarks imprecise in a dark frame: liveportrait_s32 at 2.2 s).
            closing = [
                ratio < config.close_ratio or change >= config.strong_eye_change
                for ratio, change in zip(ratios, changes, strict=True)
            ]
            if all(closing):
                if min(changes) >= config.min_eye_change and self._head_still(view):
                    self._closed = view
                else:
                    self._armed = False  # narrowed eyes without a blink: wait for open eyes
                return False
        if opened:
            self._armed = True
            self._accept_open(view)
        return False

    def eye_changes(self, view: EyeView) -> list[float]:
        """Appearance change of each eye against the last open-eyed frame."""
        assert self._reference is not None
        return [
            appearance_change(patch, reference)
            for patch, reference in zip(view.patches, self._reference.patches, strict=True)
        ]

    def _looks_as_before(self, view: EyeView) -> bool:
        """Both eyes look as they did before the closure: reopened, though the landmarks'
        eye ratio may lag (measured on liveportrait_s18 at 5.6 s)."""
        return float(np.mean(self.eye_changes(view))) < self.config.min_eye_change / 2

    def _head_still(self, view: EyeView) -> bool:
        """The head did not move between the previous frame and this closed one (a head
        turning or nodding narrows the eyes; a blink moves nothing else)."""
        if self._previous is None:
            return False
        moved, turned = head_shift(view, self._previous)
        return moved <= self.config.max_blink_head_shift and turned <= self.config.max_blink_pose_change

    def _accept_open(self, view: EyeView) -> None:
        self._open.append(view.ears)
        self._reference = view
