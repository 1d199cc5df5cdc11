"""Per-frame quality verdict: is this face good enough to enroll or recognize, and if not,
what should the person do about it."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from face_engine.types import Face, Landmarks, Quality, QualityIssue

HINTS = {
    "no_face": "no face found: look at the camera",
    "multiple_faces": "only one face please",
    "partially_visible": "center your face in the frame",
    "too_small": "move closer",
    "too_dark": "find better lighting",
    "too_bright": "too much light: avoid direct light on your face",
    "not_frontal": "look straight at the camera",
    "blurry": "hold still",
}


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the quality verdict (measured on webcam-like 640x480 frames)."""

    min_face_px: int = 80  # SFace aligns to 112x112; much smaller faces embed poorly
    second_face_ratio: float = 0.4  # a second face this large relative to the first counts
    max_outside: float = 0.05  # share of the expected face extent allowed outside the frame
    min_brightness: float = 50.0  # mean gray level of the face, 0-255
    max_brightness: float = 215.0
    max_yaw: float = 25.0
    max_pitch: float = 25.0
    min_sharpness: float = 40.0  # variance of the Laplacian on the face scaled to 128 px


DEFAULT_QUALITY = QualityConfig()


def quality(
    image: np.ndarray,
    faces: list[Face],
    marks: Landmarks | None = None,
    *,
    config: QualityConfig = DEFAULT_QUALITY,
    gray: np.ndarray | None = None,
) -> Quality:
    """Judge the primary (first) face of ``faces`` in ``image``. Issues come most actionable
    first; ``metrics`` holds the measured values. ``marks`` (landmarks of faces[0]) adds the
    frontal-pose check."""
    if not faces:
        return Quality([_issue("no_face")])
    face = faces[0]
    issues: list[str] = []
    if any(other.box.width >= config.second_face_ratio * face.box.width for other in faces[1:]):
        issues.append("multiple_faces")
    height, width = image.shape[:2]
    box = face.box
    outside = _share_outside(face, width, height)
    if outside > config.max_outside:
        issues.append("partially_visible")
    if box.width < config.min_face_px:
        issues.append("too_small")
    if gray is None:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    crop = gray[max(box.y, 0):box.y + box.height, max(box.x, 0):box.x + box.width]
    metrics: dict[str, float] = {"face_width": float(box.width), "outside": round(outside, 3)}
    if crop.size:
        brightness = cv2.mean(crop)[0]  # numpy's mean converts the crop to float64 first
        patch = cv2.resize(crop, (128, 128), interpolation=cv2.INTER_LINEAR)
        sharpness = float(cv2.Laplacian(patch, cv2.CV_32F).var())
        metrics.update(brightness=round(brightness, 1), sharpness=round(sharpness, 1))
        if brightness < config.min_brightness:
            issues.append("too_dark")
        elif brightness > config.max_brightness:
            issues.append("too_bright")
        if sharpness < config.min_sharpness:
            issues.append("blurry")
    if marks is not None:
        metrics.update(yaw=round(marks.pose.yaw, 1), pitch=round(marks.pose.pitch, 1))
        if abs(marks.pose.yaw) > config.max_yaw or abs(marks.pose.pitch) > config.max_pitch:
            issues.append("not_frontal")
    order = list(HINTS)
    issues.sort(key=order.index)
    return Quality([_issue(code) for code in issues], metrics)


def _share_outside(face: Face, width: int, height: int) -> float:
    """Share of the face's expected extent that lies outside the image.

    The detector clips its box to the image, so a face cut by the border can still get a
    box fully inside; the expected extent from the key points (about 2.2 eye distances wide,
    1.3 above the eyes to 0.9 below the mouth, as measured on frontal faces) is not clipped."""
    right_eye, left_eye, _, right_mouth, left_mouth = face.keypoints
    eye_distance = float(np.linalg.norm(left_eye - right_eye))
    eye_x = (right_eye[0] + left_eye[0]) / 2
    eye_y = (right_eye[1] + left_eye[1]) / 2
    mouth_y = (right_mouth[1] + left_mouth[1]) / 2
    box = face.box
    x0 = min(box.x, eye_x - 1.1 * eye_distance)
    x1 = max(box.x + box.width, eye_x + 1.1 * eye_distance)
    y0 = min(box.y, eye_y - 1.3 * eye_distance)
    y1 = max(box.y + box.height, mouth_y + 0.9 * eye_distance)
    area = (x1 - x0) * (y1 - y0)
    if area <= 0:
        return 0.0
    inside = max(0.0, min(x1, width) - max(x0, 0.0)) * max(0.0, min(y1, height) - max(y0, 0.0))
    return 1.0 - inside / area


def _issue(code: str) -> QualityIssue:
    return QualityIssue(code, HINTS[code])
