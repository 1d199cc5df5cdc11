"""Eye state from a dedicated eye model: MediaPipe's iris landmark network fitted to a crop of
each eye placed by the 68 landmarks' eye corners.

Why a second model for the eyes: dlib's six points per eye move by a pixel or two when the
lids close on a small, blurred or narrow eye, so its eye aspect ratio barely dips there (a
narrow-eyed person's blinks were missed); the iris model sees the eye at 64x64 whatever its
size and traces both lids with 16 points. Its opening fell 3-5x deeper, relative to open-eye
noise, than the aspect ratio on the shared clips (``bench/blink_bench.py``).

The crop is square, 2.3 eye widths a side, turned so that the eye corners are level; the
subject's left eye is mirrored, as the network was trained on right eyes. Both eyes go
through the network in one batch (1.3-1.5 ms an eye on one thread)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from face_engine import models

CROP_SIZE = 64
CROP_EYE_WIDTHS = 2.3  # crop side in eye widths (corner to corner), as the network expects
# The iris model's eye contour: points 0-8 run along the lower lid from one corner to the
# other, 9-15 along the upper lid between them (checked by drawing them on the shared clips).
_LOWER_LID = np.arange(1, 8)
_UPPER_LID = np.arange(9, 16)
_CORNERS = (0, 8)
# iBUG corners of each eye: (subject's right eye, left eye).
_EYE_CORNERS = ((36, 39), (42, 45))


@dataclass(frozen=True)
class EyeState:
    """``opening`` per eye (subject's right, left): the mean gap between the upper and the lower
    lid over the middle of the eye, in eye widths (about 0.25-0.35 open, under 0.1 shut).
    ``contours`` are the 16 lid points of each eye in image pixels, for drawing."""

    opening: tuple[float, float]
    contours: tuple[np.ndarray, np.ndarray]


def _crop_matrix(inner: np.ndarray, outer: np.ndarray, mirror: bool) -> np.ndarray:
    """Image -> crop (2x3): the eye's centre at the crop's centre, the corners level, the eye
    CROP_EYE_WIDTHS times narrower than the crop; mirrored left-right for the left eye."""
    centre = (inner + outer) / 2.0
    span = outer - inner
    width = float(np.hypot(*span)) or 1.0
    scale = CROP_SIZE / (CROP_EYE_WIDTHS * width)
    cos, sin = span / width * scale
    linear = np.array([[cos, sin], [-sin, cos]])
    if mirror:
        linear = np.array([[-1.0, 0.0], [0.0, 1.0]]) @ linear
    shift = np.array([CROP_SIZE / 2.0, CROP_SIZE / 2.0]) - linear @ centre
    return np.hstack([linear, shift[:, None]])


def eye_state(image: np.ndarray, points: np.ndarray) -> EyeState:
    """Both eyes' openings for a BGR ``image`` and its 68 landmarks ``points``."""
    crops, matrices = [], []
    for index, (first, second) in enumerate(_EYE_CORNERS):
        # Corners ordered image-left to image-right; the left eye is mirrored so that both
        # crops show an eye the same way round.
        matrix = _crop_matrix(points[first].astype(np.float64), points[second].astype(np.float64), index == 1)
        crops.append(cv2.warpAffine(image, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE))
        matrices.append(matrix)
    batch = np.ascontiguousarray(np.stack(crops)[..., ::-1], dtype=np.float32) / 255.0
    outputs = models.iris_landmarker().run(batch)
    contour = outputs["output_eyes_contours_and_brows"].reshape(len(crops), 71, 3)[..., :2]
    openings, contours = [], []
    for eye, matrix in zip(contour, matrices, strict=True):
        width = float(np.linalg.norm(eye[_CORNERS[1]] - eye[_CORNERS[0]])) or 1.0
        gap = np.linalg.norm(eye[_UPPER_LID] - eye[_LOWER_LID], axis=1).mean()
        openings.append(float(gap) / width)
        inverse = cv2.invertAffineTransform(matrix)
        lids = eye[:16].astype(np.float64)
        contours.append(lids @ inverse[:, :2].T + inverse[:, 2])
    return EyeState((openings[0], openings[1]), (contours[0], contours[1]))
