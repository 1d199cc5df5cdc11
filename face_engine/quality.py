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
    max_outside: float = 0.08  # share of the box allowed outside the frame
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
    inside_w = max(0, min(box.x + box.width, width) - max(box.x, 0))
    inside_h = max(0, min(box.y + box.height, height) - max(box.y, 0))
    outside = 1.0 - (inside_w * inside_h) / float(box.width * box.height)
    if outside > config.max_outside:
        issues.append("partially_visible")
    if box.width < config.min_face_px:
        issues.append("too_small")
    if gray is None:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    crop = gray[max(box.y, 0):box.y + box.height, max(box.x, 0):box.x + box.width]
    metrics: dict[str, float] = {"face_width": float(box.width), "outside": round(outside, 3)}
    if crop.size:
        brightness = float(crop.mean())
        patch = cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA)
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


def _issue(code: str) -> QualityIssue:
    return QualityIssue(code, HINTS[code])
