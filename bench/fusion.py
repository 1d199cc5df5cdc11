"""Would a second opinion help? SFace alone against SFace fused with dlib's ResNet embedding,
at each security level, on every labelled pair of ../shared/faces.

    .venv/bin/python bench/fusion.py [--json]

Both embeddings of every labelled sample (face_engine.evaluation.calibration's set) are computed; dlib's
score is minus the Euclidean distance of its descriptors (its own metric), the fused score the
mean of the two scores standardised on the different-identity pairs. Each level's threshold is
calibrated the same way for both (face_engine.evaluation.calibration.calibrated_threshold), then both
error rates are counted: on all pairs (in sample), and with thresholds calibrated on half of
the identities and counted on the other half (held out, both ways). The service keeps the
second opinion only if fusion lowers the error rates at every level; this prints the verdict."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import dlib
import numpy as np

from face_engine import models
from face_engine.cli import SHARED_FACES
from face_engine.detect import detect, landmarks
from face_engine.embed import embed
from face_engine.evaluation import calibration
from face_engine.matching import LEVELS

DLIB_RESNET = models.ModelFile(
    "face_recognition_models",
    "models/dlib_face_recognition_resnet_model_v1.dat",
    "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
)


def both_embeddings() -> Callable[[np.ndarray], np.ndarray | None]:
    """An embedder returning SFace's 128 values followed by dlib's 128 for the largest face."""
    models.model_bytes(DLIB_RESNET)  # verify the file before dlib parses it
    recognizer = dlib.face_recognition_model_v1(str(DLIB_RESNET.path))

    def embedder(image: np.ndarray) -> np.ndarray | None:
        faces = detect(image)
        if not faces:
            return None
        points = landmarks(image, faces[0]).points
        rect = dlib.rectangle(*map(int, (*points.min(axis=0), *points.max(axis=0))))
        shape = dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in points])
        descriptor = recognizer.compute_face_descriptor(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), shape)
        return np.concatenate([embed(image, faces[0]), np.array(descriptor, np.float32)])

    return embedder


def scores(vectors: np.ndarray, identities: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair (upper triangle): same identity?, SFace cosine, minus dlib distance."""
    labels = np.asarray(identities)
    upper = np.triu_indices(len(labels), k=1)
    sface = vectors[:, :128] / np.linalg.norm(vectors[:, :128], axis=1, keepdims=True)
    resnet = vectors[:, 128:]
    squared = (resnet**2).sum(axis=1)
    distance = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * resnet @ resnet.T, 0))
    return labels[upper[0]] == labels[upper[1]], (sface @ sface.T)[upper], -distance[upper]


def rates(score: np.ndarray, same: np.ndarray, calibrate_on: np.ndarray, count_on: np.ndarray) -> dict:
    out = {}
    for level in LEVELS.values():
        threshold = calibration.calibrated_threshold(score[calibrate_on & ~same], level.target_fmr)
        counted = calibration.error_rates(score[count_on & same], score[count_on & ~same], threshold)
        out[level.name] = {
            "false_matches": counted.false_matches, "impostor_pairs": counted.impostor_pairs,
            "false_non_matches": counted.false_non_matches, "genuine_pairs": counted.genuine_pairs,
        }
    return out


def fused(sface: np.ndarray, resnet: np.ndarray, same: np.ndarray, calibrate_on: np.ndarray) -> np.ndarray:
    standardised = []
    for score in (sface, resnet):
        impostor = score[calibrate_on & ~same]
        standardised.append((score - impostor.mean()) / impostor.std())
    return (standardised[0] + standardised[1]) / 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", default=str(SHARED_FACES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not Path(args.faces, "README.md").is_file():
        print(f"{args.faces} is not the shared faces folder", file=sys.stderr)
        return 2
    samples = calibration.shared_faces_samples(Path(args.faces), embedder=both_embeddings())
    identities = [s.identity for s in samples]
    same, sface, resnet = scores(np.stack([s.embedding for s in samples]), identities)
    labels = np.asarray(identities)
    upper = np.triu_indices(len(labels), k=1)
    names = sorted(set(identities))
    half = np.isin(labels, names[::2])
    in_first = half[upper[0]] & half[upper[1]]
    in_second = ~half[upper[0]] & ~half[upper[1]]
    everything = np.ones_like(same)
    splits = {"in_sample": (everything, everything), "held_out_1": (in_first, in_second),
              "held_out_2": (in_second, in_first)}
    figures = {"samples": len(samples), "identities": len(names), "splits": {}}
    keep = True
    for split, (calibrate_on, count_on) in splits.items():
        alone = rates(sface, same, calibrate_on, count_on)
        both = rates(fused(sface, resnet, same, calibrate_on), same, calibrate_on, count_on)
        figures["splits"][split] = {"sface": alone, "fused": both}
        for level in LEVELS:
            a, b = alone[level], both[level]
            if b["false_matches"] > a["false_matches"] or b["false_non_matches"] > a["false_non_matches"]:
                keep = False
    figures["fusion_lowers_both_error_rates_at_every_level"] = keep
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{len(samples)} samples of {len(names)} identities; false matches / false non-matches per level")
    for split, pair in figures["splits"].items():
        for name in ("sface", "fused"):
            cells = "  ".join(
                f"{level} {row['false_matches']}/{row['impostor_pairs']} {row['false_non_matches']}/"
                f"{row['genuine_pairs']}" for level, row in pair[name].items()
            )
            print(f"{split:11s} {name:6s} {cells}")
    print(f"fusion lowers both error rates at every level: {keep}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
