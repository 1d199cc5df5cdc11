"""Calibration data: labelled face samples, every same- and different-identity pair, and
the threshold that holds a target false match rate.

``shared_faces_samples`` assembles the largest labelled set ../shared/faces allows: every
single-identity photo (compreface/ identities by letter), generated variations of each photo
(dim, overexposed, low resolution, heavy JPEG with blur), and frames sampled from each video
clip, each clip its own identity. Group photos and the multi-actor Hamilton clip are left out:
their faces have no certain labels. ``python -m face_engine calibrate`` prints the table the
levels in face_engine.matching were set from; ``python -m face_engine pairs`` does the same for
an operator's own labelled photos."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from face_engine.decode import FILE_LIMITS, decode
from face_engine.detect import detect
from face_engine.embed import embed
from face_engine.matching import LEVELS, Level, model_threshold
from face_engine.video import video_frames

# folder -> identity for the single-identity photo folders; edge/ holds Obama photos too.
PHOTO_FOLDERS = {
    "obama": "obama",
    "edge": "obama",
    "biden": "biden",
    "alex_lacamoire": "alex_lacamoire",
    "kit_harington": "kit_harington",
    "rose_leslie": "rose_leslie",
    "lin_manuel_miranda": "lin_manuel_miranda",
}
# compreface/: NNN_<letter>.jpg is one of three people A, B, C; face_2 and face_3 are two others.
COMPREFACE_EXTRA = {"face_2.jpg": "compreface_face_2", "face_3.jpg": "compreface_face_3"}
# Several actors share this clip: its faces have no single label.
EXCLUDED_CLIPS = {"short_hamilton_clip.mp4"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass(frozen=True)
class Sample:
    """One labelled face: who it is, where it came from, and its embedding."""

    identity: str
    source: str  # file path, with ":<seconds>s" for a video frame and "~<variation>" for a variation
    kind: str  # "photo", "variation" or "video"
    embedding: np.ndarray


def _dim(image: np.ndarray) -> np.ndarray:
    lut = (255.0 * (np.arange(256) / 255.0) ** 2.2 * 0.8).astype(np.uint8)
    return cv2.LUT(image, lut)


def _overexposed(image: np.ndarray) -> np.ndarray:
    return cv2.convertScaleAbs(image, alpha=1.5, beta=40)


def _low_resolution(image: np.ndarray) -> np.ndarray:
    # Down to a face of roughly 60-80 px, then back up as a browser canvas would draw it.
    scale = 320.0 / max(image.shape[:2])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)


def _jpeg_blur(image: np.ndarray) -> np.ndarray:
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=max(1.0, max(image.shape[:2]) / 600))
    ok, data = cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, 25])
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else blurred


VARIATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "dim": _dim,
    "overexposed": _overexposed,
    "low_resolution": _low_resolution,
    "jpeg25_blur": _jpeg_blur,
}


def labelled_photos(faces_dir: Path) -> Iterator[tuple[str, Path]]:
    """``(identity, path)`` of every single-identity photo under ``faces_dir``."""
    for folder, identity in PHOTO_FOLDERS.items():
        for path in sorted((faces_dir / folder).glob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                yield identity, path
    for path in sorted((faces_dir / "compreface").glob("*.jpg")):
        stem = path.stem.split("_")
        if path.name in COMPREFACE_EXTRA:
            yield COMPREFACE_EXTRA[path.name], path
        elif len(stem) == 2 and stem[1] in ("A", "B", "C"):
            yield f"compreface_{stem[1]}", path


def labelled_clips(faces_dir: Path) -> Iterator[tuple[str, Path]]:
    """``(identity, path)`` of every single-person clip (each clip is one person)."""
    for path in sorted((faces_dir / "video").glob("*.mp4")):
        if path.name not in EXCLUDED_CLIPS:
            yield f"clip_{path.stem}", path


def _largest_face_embedding(image: np.ndarray) -> np.ndarray | None:
    faces = detect(image)
    return embed(image, faces[0]) if faces else None


def shared_faces_samples(
    faces_dir: Path,
    *,
    variations: bool = True,
    clip_fps: float = 2.0,
    embedder: Callable[[np.ndarray], np.ndarray | None] = _largest_face_embedding,
) -> list[Sample]:
    """Every labelled face of ``faces_dir`` (../shared/faces) that has a detectable face.

    Photos give one sample each, plus one per entry of VARIATIONS when ``variations``;
    clips give one frame every ``1 / clip_fps`` seconds. ``embedder`` maps an image to the
    embedding of its largest face (None when there is none)."""
    samples: list[Sample] = []
    for identity, path in labelled_photos(faces_dir):
        image = decode(path.read_bytes(), limits=FILE_LIMITS)
        vector = embedder(image)
        if vector is None:
            continue
        samples.append(Sample(identity, str(path), "photo", vector))
        if variations:
            for name, vary in VARIATIONS.items():
                varied = embedder(vary(image))
                if varied is not None:
                    samples.append(Sample(identity, f"{path}~{name}", "variation", varied))
    for identity, path in labelled_clips(faces_dir):
        for seconds, frame in video_frames(path, fps=clip_fps):
            vector = embedder(frame)
            if vector is not None:
                samples.append(Sample(identity, f"{path}:{seconds:.1f}s", "video", vector))
    return samples


def pair_scores(embeddings: np.ndarray, identities: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of every pair of rows: ``(same-identity, different-identity)``."""
    matrix = np.asarray(embeddings, np.float32)
    matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    scores = matrix @ matrix.T
    labels = np.asarray(identities)
    upper = np.triu_indices(len(labels), k=1)
    same = labels[upper[0]] == labels[upper[1]]
    values = scores[upper]
    return values[same], values[~same]


def empirical_threshold(impostor_scores: np.ndarray, target_fmr: float) -> float:
    """The lowest threshold (a similarity at or above it matches) whose false match rate on
    ``impostor_scores`` is at most ``target_fmr``: just above the k-th highest impostor score,
    k = floor(target_fmr * n). With fewer than 1 / target_fmr pairs that is just above the
    highest score: the data cannot show a rate that small, so it claims no more than "none
    of these pairs matched"."""
    scores = np.sort(np.asarray(impostor_scores, np.float64))[::-1]
    if len(scores) == 0:
        raise ValueError("no different-identity pairs to calibrate on")
    allowed = int(np.floor(target_fmr * len(scores)))
    return float(np.nextafter(scores[allowed], np.inf)) if allowed < len(scores) else float(scores[-1])


@dataclass(frozen=True)
class ErrorRates:
    threshold: float
    false_match_rate: float
    false_non_match_rate: float
    false_matches: int
    false_non_matches: int
    impostor_pairs: int
    genuine_pairs: int

    def as_dict(self) -> dict:
        return {
            "threshold": round(self.threshold, 4),
            "fmr": self.false_match_rate,
            "fnmr": round(self.false_non_match_rate, 4),
            "false_matches": self.false_matches,
            "false_non_matches": self.false_non_matches,
            "impostor_pairs": self.impostor_pairs,
            "genuine_pairs": self.genuine_pairs,
        }


def error_rates(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> ErrorRates:
    """False match and false non-match rates of ``threshold`` on the given pair scores."""
    false_matches = int(np.sum(impostor >= threshold))
    false_non_matches = int(np.sum(genuine < threshold))
    return ErrorRates(
        threshold,
        false_matches / len(impostor) if len(impostor) else 0.0,
        false_non_matches / len(genuine) if len(genuine) else 0.0,
        false_matches,
        false_non_matches,
        len(impostor),
        len(genuine),
    )


def calibrated_threshold(impostor_scores: np.ndarray, target_fmr: float) -> float:
    """The threshold for ``target_fmr``: the larger of the empirical one and that of a normal
    model fitted to ``impostor_scores`` (which speaks where the pairs are too few)."""
    scores = np.asarray(impostor_scores, np.float64)
    fitted = model_threshold(target_fmr, mean=float(scores.mean()), std=float(scores.std()))
    return max(empirical_threshold(scores, target_fmr), fitted)


@dataclass(frozen=True)
class LevelCalibration:
    """A level's threshold recalibrated on some data, and the error rates it gives there."""

    level: Level
    empirical_threshold: float
    model_threshold: float
    rates: ErrorRates

    def as_dict(self) -> dict:
        return {
            "level": self.level.name,
            "target_fmr": self.level.target_fmr,
            "threshold": round(self.rates.threshold, 4),
            "empirical_threshold": round(self.empirical_threshold, 4),
            "model_threshold": round(self.model_threshold, 4),
            "shipped_threshold": self.level.threshold,
            **{key: value for key, value in self.rates.as_dict().items() if key != "threshold"},
        }


def calibrate_levels(
    genuine: np.ndarray, impostor: np.ndarray, levels: list[Level] | None = None
) -> list[LevelCalibration]:
    """Each level's threshold from ``impostor`` scores, and its error rates on both sets."""
    impostor = np.asarray(impostor, np.float64)
    genuine = np.asarray(genuine, np.float64)
    rows = []
    for level in levels or list(LEVELS.values()):
        empirical = empirical_threshold(impostor, level.target_fmr)
        modelled = model_threshold(level.target_fmr, mean=float(impostor.mean()), std=float(impostor.std()))
        rates = error_rates(genuine, impostor, max(empirical, modelled))
        rows.append(LevelCalibration(level, empirical, modelled, rates))
    return rows
