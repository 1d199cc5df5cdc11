"""Face detection (YuNet), 68-point landmarks (dlib's model, face_engine/shape_model.py) and head
pose (solvePnP)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from face_engine import models
from face_engine.types import Box, Face, Landmarks, Pose

# Photos are searched at up to 640 px a side (small faces in group photos); the per-frame
# tracking path uses 256 (YuNet pads its input to multiples of 32, so 256x192 costs
# about half of 320x240), where faces too small to be found there would
# fail the size check anyway.
PHOTO_MAX_SIDE = 640
TRACKING_MAX_SIDE = 256


def detect(image: np.ndarray, *, max_side: int = PHOTO_MAX_SIDE) -> list[Face]:
    """Find faces in a BGR image. Returns faces largest first, boxes in ``image`` pixels.

    The detector runs on a copy scaled down so its longest side is at most ``max_side``."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    small = image
    if scale < 1.0:
        small = cv2.resize(
            # Bilinear: area averaging costs a millisecond more at 640->256 and finds the same faces.
            image, (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_LINEAR,
        )
    faces = []
    for row in _yunet(small):
        x, y, w, h = (row[:4] / scale).tolist()
        box = Box(round(x), round(y), max(1, round(w)), max(1, round(h)))
        faces.append(Face(box, float(row[14]), (row[4:14] / scale).reshape(5, 2).astype(np.float32)))
    faces.sort(key=lambda face: face.box.width * face.box.height, reverse=True)
    return faces


# YuNet's thresholds: its own defaults, which keep partly turned faces.
DETECTOR_SCORE_THRESHOLD = 0.7
DETECTOR_NMS_THRESHOLD = 0.3
_YUNET_STRIDES = (8, 16, 32)


def _yunet(image: np.ndarray) -> np.ndarray:
    """YuNet's faces in ``image`` as rows of 15 (box x, y, w, h; five key points x, y; score),
    decoded and suppressed as OpenCV's FaceDetectorYN does: the image padded with black to
    multiples of 32, each stride's grid cells scored sqrt(class * objectness), boxes and key
    points relative to the cell, then non-maximum suppression on integer boxes."""
    height, width = image.shape[:2]
    padded_height, padded_width = -(-height // 32) * 32, -(-width // 32) * 32
    padded = cv2.copyMakeBorder(image, 0, padded_height - height, 0, padded_width - width,
                                cv2.BORDER_CONSTANT, value=0)
    outputs = models.detector().run(cv2.dnn.blobFromImage(padded))
    found = []
    for stride in _YUNET_STRIDES:
        columns = padded_width // stride
        classes = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0.0, 1.0)
        objects = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0.0, 1.0)
        scores = np.sqrt(classes * objects)
        cells = np.flatnonzero(scores >= DETECTOR_SCORE_THRESHOLD)
        if len(cells) == 0:
            continue
        column = (cells % columns).astype(np.float32)
        row = (cells // columns).astype(np.float32)
        deltas = outputs[f"bbox_{stride}"].reshape(-1, 4)[cells]
        centre_x, centre_y = (column + deltas[:, 0]) * stride, (row + deltas[:, 1]) * stride
        box_width, box_height = np.exp(deltas[:, 2]) * stride, np.exp(deltas[:, 3]) * stride
        points = outputs[f"kps_{stride}"].reshape(-1, 5, 2)[cells]
        points = (points + np.stack([column, row], axis=1)[:, None, :]) * stride
        found.append(np.column_stack([
            centre_x - box_width / 2, centre_y - box_height / 2, box_width, box_height,
            points.reshape(-1, 10), scores[cells],
        ]).astype(np.float32))
    if not found:
        return np.empty((0, 15), np.float32)
    rows = np.concatenate(found)
    if len(rows) > 1:
        boxes = [tuple(int(value) for value in row[:4]) for row in rows]
        keep = cv2.dnn.NMSBoxes(boxes, rows[:, 14].tolist(), DETECTOR_SCORE_THRESHOLD, DETECTOR_NMS_THRESHOLD)
        rows = rows[np.asarray(keep, dtype=int).reshape(-1)]
    return rows


# dlib's predictor was trained on its own detector's boxes: square, a little lower and
# tighter than YuNet's. This mapping measured best against YuNet's eye/nose/mouth points.
_BOX_SIDE_FACTOR = 0.85
_BOX_SHIFT_DOWN = 0.05

_LEFT_EYE = slice(42, 48)  # the subject's left eye (right side of the image)
_RIGHT_EYE = slice(36, 42)

# Generic 3D face model (millimetres) for solvePnP: nose tip, chin, eye outer corners,
# mouth corners, with the matching iBUG landmark indices.
_MODEL_POINTS = np.array(
    [
        (0.0, 0.0, 0.0),
        (0.0, -63.6, -12.5),
        (-43.3, 32.7, -26.0),
        (43.3, 32.7, -26.0),
        (-28.9, -28.9, -24.1),
        (28.9, -28.9, -24.1),
    ],
    dtype=np.float64,
)
_MODEL_INDICES = [30, 8, 36, 45, 48, 54]
_EYE_CORNER_SPAN_MM = 86.6


def landmarks(image: np.ndarray, face: Face, *, gray: np.ndarray | None = None) -> Landmarks:
    """68 landmarks, eye aspect ratios and head pose of ``face`` in ``image``.

    Pass ``gray`` (the image in grayscale) when you already have it."""
    if gray is None:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    points = models.shape_predictor().fit(gray, *landmark_box(face))
    return Landmarks(
        points=points,
        left_ear=eye_aspect_ratio(points[_LEFT_EYE]),
        right_ear=eye_aspect_ratio(points[_RIGHT_EYE]),
        pose=head_pose(points, image.shape[1], image.shape[0]),
    )


def landmark_box(face: Face) -> tuple[int, int, int, int]:
    """The square the 68-point model fits ``face`` in: left, top, right, bottom (inclusive)."""
    box = face.box
    half = _BOX_SIDE_FACTOR * max(box.width, box.height) / 2
    cx = box.x + box.width / 2
    cy = box.y + box.height / 2 + _BOX_SHIFT_DOWN * box.height
    return round(cx - half), round(cy - half), round(cx + half), round(cy + half)


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """(|p2-p6| + |p3-p5|) / (2 |p1-p4|) over an eye's six landmarks (Soukupova & Cech, 2016)."""
    # math.hypot rather than np.linalg.norm: on 2-vectors, called on every landmark fit, numpy's
    # overhead was a quarter of the fit's Python time under load (py-spy).
    vertical = math.hypot(*(eye[1] - eye[5])) + math.hypot(*(eye[2] - eye[4]))
    horizontal = math.hypot(*(eye[0] - eye[3]))
    return float(vertical / (2.0 * horizontal)) if horizontal > 0 else 0.0


def head_pose(points: np.ndarray, width: int, height: int) -> Pose:
    """Yaw, pitch and roll in degrees from 68 landmarks, with a pinhole camera whose focal
    length is the image width (a fair guess for webcams)."""
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
    image_points = points[_MODEL_INDICES].astype(np.float64)
    # Start from a frontal face at the distance its eye span implies: without this guess the
    # iterative solver flips between two mirror solutions from frame to frame (pitch jumps
    # of 30 degrees on a still head).
    eye_span = float(np.linalg.norm(points[36] - points[45])) or 1.0
    rotation_guess = np.array([[math.pi], [0.0], [0.0]])
    translation_guess = np.array([[0.0], [0.0], [width * _EYE_CORNER_SPAN_MM / eye_span]])
    ok, rotation_vector, _ = cv2.solvePnP(
        _MODEL_POINTS, image_points, camera, None, rotation_guess, translation_guess,
        useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        return Pose(0.0, 0.0, 0.0)
    rotation, _ = cv2.Rodrigues(rotation_vector)
    # The model's y axis points up and the image's down: flip it before reading angles.
    rotation = np.diag([1.0, -1.0, -1.0]) @ rotation
    pitch = math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -rotation[2, 0]))))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return Pose(yaw=yaw, pitch=_wrap(pitch), roll=_wrap(roll))


def _wrap(angle: float) -> float:
    """Fold an angle near ±180 (the flipped-axis solution) back to near 0."""
    if angle > 90:
        return angle - 180
    if angle < -90:
        return angle + 180
    return angle
