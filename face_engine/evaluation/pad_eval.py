"""Per-frame presentation attack detection figures of the MiniFASNet anti-spoofing score on
labelled frames in the Replay-Attack label format (``python -m face_engine pad-eval``).

CSV columns: ``path,split,client,label,attack_type,support,medium,light``; ``label`` is
``live`` or ``attack``, ``attack_type`` ``real``/``print``/``mobile``/``highdef``. Each frame:
the largest face (``detect.detect``), its real-class probability (one model's, or both fused
by ``antispoof.combine``), accepted as live when at least the threshold. A frame without a face counts as
refused: it raises BPCER on live frames and is never an accepted attack.

- APCER: share of attack frames accepted, by attack type and by kind (type/support/medium).
- BPCER: share of live frames refused, overall and by light.

With ``judgeable`` the frames that the presentation signal would not score (too dark or
blurred: liveness/presentation.py) are left out of the rates and counted apart, which is how
the signal's own threshold was calibrated."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face_engine import antispoof
from face_engine.decode import ALL_FORMATS, FILE_LIMITS, decode
from face_engine.detect import detect
from face_engine.errors import ImageError
from face_engine.liveness.presentation import DEFAULT_PRESENTATION, judgeable
from face_engine.quality import quality

ATTACK_TYPES = ("print", "mobile", "highdef")
LIGHTS = ("controlled", "adverse")
MODEL_CHOICES = {"v2": ("v2",), "v1se": ("v1se",), "both": ("v1se", "v2")}
DEFAULT_CHOICE = "both"
# Per-frame thresholds: ``pad-eval labels_train.csv --models M --calibrate-bpcer 0.05`` with the
# crops of antispoof.MODELS ("both" = the fused score), the target at which train's live frames
# stay within the BPCER goals (fused: 3.3% in office light, 6.7% in dim light).
# labels_devel.csv is only reported on, never calibrated on.
CALIBRATED_THRESHOLDS = {"v2": 0.4881, "v1se": 0.9185, "both": 0.4737}


def default_threshold(choice: str, *, judged_only: bool = False) -> float:
    """The calibrated per-frame threshold of a model choice; on judged frames with the default
    models, the presentation signal's own (calibrated on judged frames)."""
    if judged_only and MODEL_CHOICES[choice] == DEFAULT_PRESENTATION.models:
        return DEFAULT_PRESENTATION.threshold
    return CALIBRATED_THRESHOLDS[choice]


@dataclass(frozen=True)
class LabelledFrame:
    path: Path
    client: str
    label: str
    attack_type: str
    support: str
    medium: str
    light: str

    @property
    def kind(self) -> str:
        """The presentation attack instrument: type/support/medium, e.g. ``mobile/hand/video``."""
        return f"{self.attack_type}/{self.support}/{self.medium}"


@dataclass(frozen=True)
class FrameScore:
    frame: LabelledFrame
    probabilities: dict[str, float]  # real-class probability per model; empty without a face
    judgeable: bool = True  # bright and sharp enough for the presentation signal to score

    @property
    def has_face(self) -> bool:
        return bool(self.probabilities)

    def score(self, models: Sequence[str]) -> float | None:
        """Real-class probability of ``models`` (fused when both); None without a face."""
        if not self.probabilities:
            return None
        return antispoof.combine({name: self.probabilities[name] for name in models})

    def accepted(self, threshold: float, models: Sequence[str]) -> bool:
        score = self.score(models)
        return score is not None and score >= threshold

    def as_dict(self, threshold: float, models: Sequence[str]) -> dict:
        frame = self.frame
        score = self.score(models)
        return {
            "path": str(frame.path), "client": frame.client, "label": frame.label,
            "attack_type": frame.attack_type, "kind": frame.kind, "light": frame.light,
            "face": self.has_face, "judgeable": self.judgeable,
            "score": None if score is None else round(score, 5),
            "models": {name: round(value, 5) for name, value in self.probabilities.items()},
            "accepted": self.accepted(threshold, models),
        }


def read_labels(csv_path: Path, root: Path | None = None) -> list[LabelledFrame]:
    """The frames of a label CSV, paths resolved against ``root`` (default: the CSV's folder)."""
    base = csv_path.parent if root is None else root
    frames = []
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["label"] not in ("live", "attack"):
                raise ValueError(f"{csv_path}: unknown label {row['label']!r}")
            frames.append(LabelledFrame(
                base / row["path"], row["client"], row["label"], row["attack_type"],
                row.get("support", ""), row.get("medium", ""), row.get("light", ""),
            ))
    return frames


def score_image(image: np.ndarray, models: Sequence[str]) -> tuple[dict[str, float], bool]:
    """Real-class probability per model for the largest face of ``image`` ({} without a face)
    and whether the presentation signal would judge that face."""
    faces = detect(image)
    if not faces:
        return {}, True  # counted as refused, not set aside
    return (antispoof.model_probabilities(image, faces[0], models),
            judgeable(quality(image, faces[:1]).metrics))


def score_frame(frame: LabelledFrame, models: Sequence[str]) -> FrameScore:
    try:
        data = frame.path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{frame.path}: {exc.strerror or exc}") from exc
    image = decode(data, limits=FILE_LIMITS, formats=ALL_FORMATS)
    probabilities, fit = score_image(image, models)
    return FrameScore(frame, probabilities, fit)


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summary(results: Sequence[FrameScore], threshold: float, models: Sequence[str], *,
            judged_only: bool = False) -> dict:
    """The summary line: error rates as fractions (None where a group has no frame). With
    ``judged_only`` frames the presentation signal would not judge are left out and counted
    under ``unjudgeable``."""
    unjudgeable = sum(not r.judgeable for r in results)
    if judged_only:
        results = [r for r in results if r.judgeable]
    live = [r for r in results if r.frame.label == "live"]
    attacks = [r for r in results if r.frame.label == "attack"]
    kinds = sorted({r.frame.kind for r in attacks})
    return {
        "summary": True,
        "frames": len(results),
        "no_face": sum(not r.has_face for r in results),
        "threshold": threshold,
        "bpcer": _rate([not r.accepted(threshold, models) for r in live]),
        "bpcer_by_light": {light: _rate([not r.accepted(threshold, models) for r in live
                                         if r.frame.light == light]) for light in LIGHTS},
        "apcer_by_type": {kind: _rate([r.accepted(threshold, models) for r in attacks
                                       if r.frame.attack_type == kind]) for kind in ATTACK_TYPES},
        "apcer_by_kind": {kind: _rate([r.accepted(threshold, models) for r in attacks
                                       if r.frame.kind == kind]) for kind in kinds},
    } | ({"unjudgeable": unjudgeable} if judged_only else {})


def calibrate(results: Sequence[FrameScore], target_bpcer: float, models: Sequence[str]) -> float:
    """The highest threshold (rounded down to 4 decimals) that refuses at most ``target_bpcer``
    of the live frames, frames without a face included among the refused."""
    live = [r for r in results if r.frame.label == "live"]
    if not live:
        raise ValueError("no live frames to calibrate on")
    allowed = math.floor(target_bpcer * len(live)) - sum(not r.has_face for r in live)
    scores = sorted(r.score(models) for r in live if r.has_face)
    if allowed < 0 or not scores:
        raise ValueError("more live frames without a face than the target BPCER allows")
    if allowed >= len(scores):
        return 1.0
    # Accepting at >= scores[allowed] refuses exactly the `allowed` lowest (ties aside).
    return math.floor(scores[allowed] * 10_000) / 10_000


def auc(results: Sequence[FrameScore], models: Sequence[str], attack_type: str | None = None) -> float | None:
    """Area under the ROC curve of live against attack frames (of ``attack_type`` if given);
    frames without a face score 0."""
    live = [r.score(models) or 0.0 for r in results if r.frame.label == "live"]
    attack = [r.score(models) or 0.0 for r in results if r.frame.label == "attack"
              and (attack_type is None or r.frame.attack_type == attack_type)]
    if not live or not attack:
        return None
    live_scores, attack_scores = np.array(live)[:, None], np.array(attack)[None, :]
    wins = (live_scores > attack_scores).sum() + 0.5 * (live_scores == attack_scores).sum()
    return round(float(wins / (live_scores.size * attack_scores.size)), 4)
