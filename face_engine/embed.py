"""Identity embeddings (SFace, 128-D, L2-normalized) and cosine matching."""

from __future__ import annotations

import numpy as np

from face_engine import models
from face_engine.types import Face, Match

# Cosine threshold of SFace published by OpenCV (0.363). It still decides whether the samples
# of one session agree (same person); matching decisions use the security levels of
# face_engine.matching instead: on every labelled pair of ../shared/faces 0.363 let 23 of
# 71,731 different-identity pairs match (`python -m face_engine calibrate`).
DEFAULT_THRESHOLD = 0.363
EMBEDDING_SIZE = 128


def embed(image: np.ndarray, face: Face) -> np.ndarray:
    """The face's identity embedding: (128,) float32 with unit L2 norm.

    The face is aligned on its 5 key points to SFace's 112x112 input first."""
    row = np.concatenate(
        [
            np.array([face.box.x, face.box.y, face.box.width, face.box.height], np.float32),
            face.keypoints.reshape(-1).astype(np.float32),
            np.array([face.score], np.float32),
        ]
    ).reshape(1, 15)
    recognizer = models.recognizer()
    aligned = recognizer.alignCrop(image, row)
    vector = recognizer.feature(aligned).reshape(-1).astype(np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings, -1 to 1 (higher is more alike)."""
    a = np.asarray(a, np.float32).reshape(-1)
    b = np.asarray(b, np.float32).reshape(-1)
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / denominator if denominator > 0 else 0.0


def match(
    probe: np.ndarray, gallery: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> Match:
    """Best match of ``probe`` among the rows of ``gallery`` (N, 128) by cosine similarity.

    ``index`` is the best row (None when the gallery is empty); ``is_match`` says whether
    its similarity reaches ``threshold``."""
    gallery = np.asarray(gallery, np.float32).reshape(-1, EMBEDDING_SIZE)
    if len(gallery) == 0:
        return Match(None, 0.0, False, threshold)
    probe = np.asarray(probe, np.float32).reshape(-1)
    norms = np.linalg.norm(gallery, axis=1) * float(np.linalg.norm(probe))
    scores = (gallery @ probe) / np.where(norms > 0, norms, 1.0)
    best = int(np.argmax(scores))
    score = float(scores[best])
    return Match(best, score, score >= threshold, threshold)
