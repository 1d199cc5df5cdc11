"""Identity embeddings (SFace, 128-D, L2-normalized) and cosine matching."""

from __future__ import annotations

import cv2
import numpy as np

from face_engine import models
from face_engine.types import Face, Match

# Cosine threshold of SFace published by OpenCV (0.363). It still decides whether the samples
# of one session agree (same person); matching decisions use the security levels of
# face_engine.matching instead: on every labelled pair of ../shared/faces 0.363 let 23 of
# 71,731 different-identity pairs match (`python -m face_engine calibrate`).
DEFAULT_THRESHOLD = 0.363
EMBEDDING_SIZE = 128
SFACE_OUTPUT = "fc1"


def embed(image: np.ndarray, face: Face) -> np.ndarray:
    """The face's identity embedding: (128,) float32 with unit L2 norm.

    The face is aligned on its 5 key points to SFace's 112x112 input first."""
    aligned = align_crop(image, face)
    blob = cv2.dnn.blobFromImage(aligned, swapRB=True)  # NCHW float32, RGB
    vector = models.recognizer().run(blob)[SFACE_OUTPUT].reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


# Where SFace wants the five key points in its 112x112 input (right eye, left eye, nose tip,
# right and left mouth corner), and their mean, as OpenCV's FaceRecognizerSF writes them.
_SFACE_POINTS = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)
_SFACE_MEAN = np.array([56.0262, 71.9008], np.float32)


def align_crop(image: np.ndarray, face: Face) -> np.ndarray:
    """The 112x112 crop SFace takes: the similarity transform (rotation, uniform scale, shift)
    that maps the face's key points onto SFace's by least squares (Umeyama, 1991), computed
    as OpenCV's FaceRecognizerSF.alignCrop does, then a bilinear warp."""
    source = face.keypoints.astype(np.float32)
    mean = source.mean(axis=0)
    source_centred = source - mean
    target_centred = _SFACE_POINTS - _SFACE_MEAN
    # Products in float32 summed in float64, as OpenCV's C++ does: the same matrix to the last
    # bit keeps the warp's sub-pixel steps, and so the embedding, identical.
    covariance = (target_centred[:, :, None] * source_centred[:, None, :]).astype(np.float64).sum(axis=0)
    covariance /= len(source)
    u, singular, vt = np.linalg.svd(covariance)
    signs = np.array([1.0, -1.0 if np.linalg.det(covariance) < 0 else 1.0])
    if np.count_nonzero(singular > singular.max() * 2 * np.finfo(np.float32).tiny) == 1:
        # Degenerate points (all on a line): keep the reflection-free rotation.
        rotation = u @ vt if np.linalg.det(u) * np.linalg.det(vt) > 0 else u @ np.diag([1.0, -1.0]) @ vt
    else:
        rotation = u @ np.diag(signs) @ vt
    variance = float((source_centred * source_centred).astype(np.float64).sum()) / len(source)
    scale = float(singular @ signs) / variance if variance > 0 else 1.0
    shift = _SFACE_MEAN - scale * rotation @ mean.astype(np.float64)
    matrix = np.hstack([scale * rotation, shift[:, None]])
    return cv2.warpAffine(image, matrix, (112, 112), flags=cv2.INTER_LINEAR)


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
