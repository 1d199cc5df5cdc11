"""Passive anti-spoofing: Minivision's MiniFASNet classifiers on a crop around the face.

Two small networks (Apache-2.0, converted from the upstream PyTorch files by
scripts/convert_minifasnet.py; see data/anti_spoofing/NOTICE) each look at the face with
context around it (V1SE at 4x the box, V2 at 2.7x) and say whether it is a real face, a 2D
attack (paper, screen) or a 3D one. They take BGR 0-255 floats, NCHW 80x80, no normalisation
(the shared README; measured: the same crops in RGB order drop V2's AUC on Replay-Attack train
from 0.970 to 0.822); softmax index 1 is "real". Each costs about 1.3 ms per face in OpenVINO,
V2's area-averaging resize about 0.7 ms more and the letterbox search 0.3 ms
(bench/pad_bench.py, one thread).

Both run, and their real-class log-odds are fused by a logistic regression (``FUSION_WEIGHTS``).
Choices made on Replay-Attack labels_train.csv alone (320x240 webcam, 15 clients; AUC live
against attacks, fusions cross-validated leaving 3 clients out), labels_devel.csv only
reported on (``python -m face_engine pad-eval``), figures as train / devel:

- V2 on the YuNet box (tall, height 1.4x width) scaled 2.7x, capped to fit: AUC 0.970 /
  0.966. A square box hurts it (0.937 / 0.947). Area-averaging instead of
  bilinear resizing (the crop is shrunk 2-6x): 0.973 / 0.972, chosen.
- V1SE on a square box (side = the YuNet box's longer side), capped to fit: 0.969 / 0.967,
  against 0.965 / 0.937 on the tall box (which V1SE's 4x context squashes by 1.4 across).
- Growing the box changes nothing on these frames: the scale is always capped (to 1.2-2.1x),
  so only the box's shape and centre matter. Letting the crop run past the image instead of
  capping (black or replicated borders) is much worse (V2 0.84 / 0.80 and 0.80 / 0.80): the
  networks read padding as an attack, which is why the crop also stays out of letterbox bars
  (``content_region``). A fusion with V1SE on a black-padded crop looked best (0.984
  cross-validated) but reads the face's size through the padding's width (see the caveat):
  rejected. Upstream's exact crop arithmetic gives the same figures as ours.
- Fused (``FUSION_WEIGHTS``): train AUC 0.982 (0.971 cross-validated: the fit left out with
  its clients), devel 0.981 (print 0.957, phone 0.9998, tablet 0.975). Per frame at the
  threshold refusing 5% of train's live frames (pad_eval.CALIBRATED_THRESHOLDS), devel:
  phone accepted 0% (V2 alone before: 3.7%), tablet 7.1% (25.4%), print 20% (40.8%); live
  refused 1.3% in office light (0%) and 17.3% in dim light (9.3%): dim, blurred frames,
  which the presentation signal does not judge (on judged frames: 1.4% / 7.5%).

Caveat: in Replay-Attack the attack faces are larger than live ones (median box height 165
against 126 px; box height alone separates them with AUC 0.90), and on 320x240 frames the
capped crop's context depends on the box's size: the per-frame figures there may be
optimistic, which is why the product's own frames are measured too (bench/pad_sessions.py)."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Model:
    """One network and the crop it is given (see the module docstring for the measurements)."""

    file: ModelFile
    scale: float  # crop scale the network was trained with: part of its file name upstream
    square: bool  # crop built on a square box (side = the box's longer side) around its centre
    interpolation: int  # cv2 resize flag


MODELS: dict[str, Model] = {
    "v1se": Model(V1SE, 4.0, True, cv2.INTER_LINEAR),
    "v2": Model(V2, 2.7, False, cv2.INTER_AREA),
}
DEFAULT_MODELS: tuple[str, ...] = ("v1se", "v2")
# Fused log-odds of "real" = sum of weight x each model's log-odds of "real", plus the bias.
# Logistic regression fitted with numpy (Newton's method, L2 1e-3, live and attack frames
# weighted equally) on the 899 labels_train.csv frames with a face, crops as in MODELS; the
# two weights come out nearly equal and the fit barely moves with L2 up to 1.
FUSION_WEIGHTS: dict[str, float] = {"v2": 0.5709, "v1se": 0.5750}
FUSION_BIAS = -2.5049
# An edge row or column is padding (letterbox bars) when its gray levels span at most
# PADDING_RANGE and it is no brighter than PADDING_LEVEL: black bars JPEG-encoded read 0-3, and
# a brightened picture (liveness "bright" variation: x1.3 + 25) lifts them to a flat 25.
PADDING_RANGE = 12
PADDING_LEVEL = 64
_PROBABILITY_FLOOR = 1e-9  # keeps log-odds finite for probabilities rounded to 0 or 1

_lock = threading.Lock()
_networks: dict[str, Network] = {}


def network(name: str) -> Network:
    """The process-wide compiled network ``name`` ("v2" or "v1se"), its file checked by
    SHA-256 at first use (raises ModelError)."""
    found = _networks.get(name)
    if found is None:
        model = MODELS[name].file
        with _lock:
            found = _networks.get(name)
            if found is None:
                found = _networks[name] = Network(model)
    return found


def load_models(names: Sequence[str] = DEFAULT_MODELS) -> None:
    """Load and verify the networks now (warm-up at process start)."""
    for name in names:
        network(name)


def content_region(image: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end exclusive: ``image`` without the flat dark bars along its edges
    (a square clip letterboxed into 640x480 by the browser page has 80 px a side)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)

    def content(axis: int) -> np.ndarray:
        high = cv2.reduce(gray, axis, cv2.REDUCE_MAX).ravel().astype(np.int16)
        low = cv2.reduce(gray, axis, cv2.REDUCE_MIN).ravel().astype(np.int16)
        return np.flatnonzero((high - low > PADDING_RANGE) | (high > PADDING_LEVEL))

    columns, rows = content(0), content(1)
    if not columns.size or not rows.size:
        return 0, 0, gray.shape[1], gray.shape[0]
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


def crop_box(
    box: Box, scale: float, width: int, height: int, *, square: bool = False,
    region: tuple[int, int, int, int] | None = None,
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end exclusive: ``box`` (made square on its longer side if ``square``)
    enlarged ``scale`` times around its centre, the scale lowered until the crop fits in the
    ``width`` x ``height`` image (or in ``region`` of it), then shifted back inside where it
    overflows an edge (the face stays in the crop, off centre)."""
    left, top, right, bottom = region or (0, 0, width, height)
    area_w, area_h = right - left, bottom - top
    box_w, box_h = max(box.width, 1), max(box.height, 1)
    centre_x, centre_y = box.x + box_w / 2, box.y + box_h / 2
    if square:
        box_w = box_h = max(box_w, box_h)
    scale = min(scale, area_w / box_w, area_h / box_h)
    crop_w, crop_h = box_w * scale, box_h * scale
    x0 = min(max(centre_x - crop_w / 2, float(left)), right - crop_w)
    y0 = min(max(centre_y - crop_h / 2, float(top)), bottom - crop_h)
    x0_int, y0_int = int(round(x0)), int(round(y0))
    x1_int = min(right, max(x0_int + 1, int(round(x0 + crop_w))))
    y1_int = min(bottom, max(y0_int + 1, int(round(y0 + crop_h))))
    return x0_int, y0_int, x1_int, y1_int


def crop(
    image: np.ndarray, box: Box, scale: float, *, square: bool = False,
    interpolation: int = cv2.INTER_LINEAR, region: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """The network's 80x80 BGR input for the face ``box`` at crop ``scale``."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = crop_box(box, scale, width, height, square=square, region=region)
    return cv2.resize(image[y0:y1, x0:x1], (INPUT_SIZE, INPUT_SIZE), interpolation=interpolation)


def _region_for(image: np.ndarray, box: Box, trim_padding: bool) -> tuple[int, int, int, int] | None:
    if not trim_padding:
        return None
    x0, y0, x1, y1 = content_region(image)
    inside = x0 <= box.x and y0 <= box.y and box.x + box.width <= x1 and box.y + box.height <= y1
    return (x0, y0, x1, y1) if inside else None  # a face reaching into dark edges: the whole image


def logits(image: np.ndarray, face: Face, name: str, *, trim_padding: bool = True,
           region: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The 3 logits of model ``name`` for ``face`` in the BGR ``image``; with ``trim_padding``
    the crop stays out of black bars along the image's edges (``region`` if already known)."""
    model = MODELS[name]
    if region is None:
        region = _region_for(image, face.box, trim_padding)
    patch = crop(image, face.box, model.scale, square=model.square, interpolation=model.interpolation,
                 region=region)
    blob = np.ascontiguousarray(patch.transpose(2, 0, 1)[None], dtype=np.float32)  # BGR 0-255, NCHW
    outputs = network(name).run(blob)
    return np.asarray(outputs["logits"], dtype=np.float64).reshape(-1)


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def model_probabilities(
    image: np.ndarray, face: Face, models: Sequence[str] = DEFAULT_MODELS, *, trim_padding: bool = True,
) -> dict[str, float]:
    """Real-class probability of each model in ``models`` for ``face``."""
    region = _region_for(image, face.box, trim_padding)  # found once for both crops
    return {
        name: float(softmax(logits(image, face, name, trim_padding=trim_padding, region=region))[REAL_CLASS])
        for name in models
    }


def _log_odds(probability: float) -> float:
    p = min(max(probability, _PROBABILITY_FLOOR), 1.0 - _PROBABILITY_FLOOR)
    return math.log(p / (1.0 - p))


def combine(probabilities: Mapping[str, float]) -> float:
    """One real probability from the models' own: the ``FUSION_WEIGHTS`` regression when both
    are there, a single model's probability as it is."""
    if not probabilities:
        raise ValueError("no anti-spoofing model chosen")
    if len(probabilities) == 1:
        return float(next(iter(probabilities.values())))
    if set(probabilities) != set(FUSION_WEIGHTS):
        raise ValueError(f"no fusion for the models {sorted(probabilities)}")
    fused = FUSION_BIAS + sum(FUSION_WEIGHTS[name] * _log_odds(p) for name, p in probabilities.items())
    return 1.0 / (1.0 + math.exp(-fused))


def real_probability(
    image: np.ndarray, face: Face, models: Sequence[str] = DEFAULT_MODELS, *, trim_padding: bool = True,
) -> float:
    """The real probability of ``face`` by ``models`` ("v1se", "v2", fused when both): near 1
    for a live face, near 0 for a face shown on paper or a screen."""
    if not models:
        raise ValueError("no anti-spoofing model chosen")
    return combine(model_probabilities(image, face, models, trim_padding=trim_padding))
