"""The per-frame tracking path: detect, landmarks and quality in one call."""

from __future__ import annotations

import cv2
import numpy as np

from face_engine.detect import TRACKING_MAX_SIDE, detect, landmarks
from face_engine.quality import DEFAULT_QUALITY, QualityConfig, quality
from face_engine.types import FrameAnalysis


def analyze(image: np.ndarray, *, config: QualityConfig = DEFAULT_QUALITY) -> FrameAnalysis:
    """Detect faces in a video frame, then landmarks and a quality verdict for the largest.

    Detection runs at tracking resolution (320 px a side), which suits webcam frames where
    the face is large; use ``detect`` for photos with small faces."""
    faces = detect(image, max_side=TRACKING_MAX_SIDE)
    face = faces[0] if faces else None
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    marks = landmarks(image, face, gray=gray) if face is not None else None
    verdict = quality(image, faces, marks, config=config, gray=gray)
    return FrameAnalysis(
        image_size=(image.shape[1], image.shape[0]),
        faces=faces,
        face=face,
        landmarks=marks,
        quality=verdict,
    )
