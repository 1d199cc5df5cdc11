"""Passive anti-spoofing: Minivision's MiniFASNet classifiers on a crop around the face.

Two small networks (Apache-2.0, converted from the upstream PyTorch files by
scripts/convert_minifasnet.py; see data/anti_spoofing/NOTICE) each look at the face with
context around it (V1SE at 4x the box, V2 at 2.7x) and say whether it is a real face, a 2D
attack (paper, screen) or a 3D one. They take BGR 0-255 floats, NCHW 80x80, no normalisation;
softmax index 1 is "real". Each costs about 1.3 ms per face in OpenVINO (bench/pad_bench.py).

The score is the real-class probability, averaged over the chosen models. V2 alone is the
default, measured with ``python -m face_engine pad-eval`` on the Replay-Attack frames (320x240
webcam, 15 + 15 clients): webcam faces are large in the frame, so the crop scale is capped
(to about 1.6x the YuNet box) and both networks see the same crop, nearer to V2's training
context (2.7x) than to V1SE's (4x). Per frame, AUC live against attacks: V2 0.970 (train) /
0.966 (devel), V1SE 0.965 / 0.937, the pair 0.973 / 0.956; V1SE's live scores also shift
between the two client sets (its threshold calibrated on train refuses 12% of devel's live
frames in office light, V2's none). The pair costs twice V2 and is not better on devel."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import cv2
import numpy as np

from face_engine.models import ModelFile, Network
from face_engine.types import Box, Face

INPUT_SIZE = 80
REAL_CLASS = 1  # logits: 0 = 2D attack (paper, screen), 1 = real, 2 = 3D attack

V1SE = ModelFile(
    "face_engine",
    "data/anti_spoofing/minifasnet_v1se.onnx",
    "ca0738916fa955da28b52b132bc77de0b368df19253ecedeb0861676a556eac8",
)
V2 = ModelFile(
    "face_engine",
    "data/anti_spoofing/minifasnet_v2.onnx",
    "e6fc648b5c5787b53e6a943b9d87e244c34e3ef3feea0f584f36b8c6e77bdcfe",
)
# name -> (model file, crop scale the network was trained with: part of its file name upstream)
MODELS: dict[str, tuple[ModelFile, float]] = {"v1se": (V1SE, 4.0), "v2": (V2, 2.7)}
DEFAULT_MODELS: tuple[str, ...] = ("v2",)

_lock = threading.Lock()
_networks: dict[str, Network] = {}


def network(name: str) -> Network:
    """The process-wide compiled network ``name`` ("v2" or "v1se"), its file checked by
    SHA-256 at first use (raises ModelError)."""
    found = _networks.get(name)
    if found is None:
        model, _ = MODELS[name]
        with _lock:
            found = _networks.get(name)
            if found is None:
                found = _networks[name] = Network(model)
    return found


def load_models(names: Sequence[str] = DEFAULT_MODELS) -> None:
    """Load and verify the networks now (warm-up at process start)."""
    for name in names:
        network(name)


def crop_box(box: Box, scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end exclusive: ``box`` enlarged ``scale`` times around its centre,
    the scale lowered until the crop fits in a ``width`` x ``height`` image, then shifted back
    inside the image where it overflows an edge (the face stays in the crop, off centre)."""
    box_w, box_h = max(box.width, 1), max(box.height, 1)
    scale = min(scale, width / box_w, height / box_h)
    crop_w, crop_h = box_w * scale, box_h * scale
    x0 = box.x + box_w / 2 - crop_w / 2
    y0 = box.y + box_h / 2 - crop_h / 2
    x0 = min(max(x0, 0.0), width - crop_w)
    y0 = min(max(y0, 0.0), height - crop_h)
    left, top = int(round(x0)), int(round(y0))
    right = min(width, max(left + 1, int(round(x0 + crop_w))))
    bottom = min(height, max(top + 1, int(round(y0 + crop_h))))
    return left, top, right, bottom


def crop(image: np.ndarray, box: Box, scale: float) -> np.ndarray:
    """The network's 80x80 BGR input for the face ``box`` at crop ``scale`` (bilinear resize)."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = crop_box(box, scale, width, height)
    return cv2.resize(image[y0:y1, x0:x1], (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)


def logits(image: np.ndarray, face: Face, name: str) -> np.ndarray:
    """The 3 logits of model ``name`` for ``face`` in the BGR ``image``."""
    _, scale = MODELS[name]
    patch = crop(image, face.box, scale)
    blob = np.ascontiguousarray(patch.transpose(2, 0, 1)[None], dtype=np.float32)  # BGR 0-255, NCHW
    outputs = network(name).run(blob)
    return np.asarray(outputs["logits"], dtype=np.float64).reshape(-1)


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def model_probabilities(
    image: np.ndarray, face: Face, models: Sequence[str] = DEFAULT_MODELS,
) -> dict[str, float]:
    """Real-class probability of each model in ``models`` for ``face``."""
    return {name: float(softmax(logits(image, face, name))[REAL_CLASS]) for name in models}


def real_probability(image: np.ndarray, face: Face, models: Sequence[str] = DEFAULT_MODELS) -> float:
    """The mean real-class probability of ``models`` ("v1se", "v2") for ``face``: near 1 for
    a live face, near 0 for a face shown on paper or a screen."""
    if not models:
        raise ValueError("no anti-spoofing model chosen")
    return float(np.mean(list(model_probabilities(image, face, models).values())))
