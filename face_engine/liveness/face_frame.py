"""The face in a canonical frame: a similarity transform (rotation, scale, shift) from the
landmarks' eye corners puts the eye centres at fixed points of a small grey crop, so the eye
regions of successive frames can be compared pixel for pixel whatever the face's position,
size and in-plane angle."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SIZE = 96  # side of the aligned crop in pixels
RIGHT_EYE_AT = (30.0, 38.0)  # where the subject's right eye centre lands (image left)
LEFT_EYE_AT = (66.0, 38.0)
ALIGNED_EYE_DISTANCE = LEFT_EYE_AT[0] - RIGHT_EYE_AT[0]
# iBUG indices: eye corners (which stay put when the lids close) and the nose.
RIGHT_EYE_CORNERS = [36, 39]
LEFT_EYE_CORNERS = [42, 45]
RIGID_POINTS = [27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45]


@dataclass(frozen=True)
class AlignedFace:
    """``gray``: the SIZE x SIZE aligned crop; ``matrix``: image -> crop (2x3);
    ``eye_distance``: between the eye centres, in image pixels; ``rigid``: the rigid
    landmarks (eye corners, nose) in crop coordinates."""

    gray: np.ndarray
    matrix: np.ndarray
    eye_distance: float
    rigid: np.ndarray


def _eye_span(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """In float64: the subject's right eye centre (mean of the eye's corners), the vector from
    it to the left one, and its length (1 when the centres coincide, so that it can divide)."""
    right = points[RIGHT_EYE_CORNERS].mean(0).astype(np.float64)
    span = points[LEFT_EYE_CORNERS].mean(0).astype(np.float64) - right
    return right, span, float(np.hypot(*span)) or 1.0


def eye_distance(points: np.ndarray) -> float:
    """Distance between the eye centres (means of each eye's corners) in pixels (1 when they
    coincide)."""
    return _eye_span(points)[2]


def align_face(gray: np.ndarray, points: np.ndarray) -> AlignedFace:
    """Warp ``gray`` so that the eye centres of ``points`` (68 landmarks) land on
    RIGHT_EYE_AT and LEFT_EYE_AT."""
    right, span, distance = _eye_span(points)
    scale = ALIGNED_EYE_DISTANCE / distance
    angle = np.arctan2(span[1], span[0])
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    linear = np.array([[cos, sin], [-sin, cos]])
    matrix = np.hstack([linear, (np.array(RIGHT_EYE_AT) - linear @ right)[:, None]])
    crop = cv2.warpAffine(gray, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    rigid = points[RIGID_POINTS].astype(np.float64) @ linear.T + matrix[:, 2]
    return AlignedFace(crop, matrix, distance, rigid)
