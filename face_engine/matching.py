"""Security levels (target false match rates mapped to cosine thresholds) and the decision
rules of verification (1:1) and identification (1:N).

A level names the false match rate (FMR) one probe-template comparison may have: the chance
that a different person's face scores at or above the level's threshold. The thresholds below
were calibrated by ``python -m face_engine calibrate`` on every labelled face of
../shared/faces: 392 samples of 22 identities (32 photos, 128 generated variations of them,
232 frames of 11 single-person clips), 71,731 different-identity and 4,905 same-identity
pairs. Each threshold is the larger of (a) the empirical one (at most FMR x pairs of the
different-identity pairs at or above it) and (b) the normal model of different-identity
scores (mean IMPOSTOR_MEAN, standard deviation IMPOSTOR_STD) at that FMR. Below 1 / 71,731
only the model speaks; it matches the measured tail where there is data (49 pairs at or
above 0.35 measured, 63 modelled; 3 at or above 0.40 measured, 8 modelled).

Identification compares a stranger with every enrolled user, so the chance that somebody
matches grows with the gallery: about gallery size x FMR. The 1:N threshold therefore holds
the level's rate for the whole search (a false-positive identification rate): it is the
model's threshold at FMR / gallery size, never below the level's own threshold. The best user
must also beat the second best by a margin, or the outcome is ``ambiguous``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

# Different-identity SFace cosine similarities on the calibration set above.
IMPOSTOR_MEAN = 0.0670
IMPOSTOR_STD = 0.0905


@dataclass(frozen=True)
class Level:
    """A security level: its target false match rate per comparison and its threshold."""

    name: str
    target_fmr: float
    threshold: float


LEVELS: dict[str, Level] = {
    level.name: level
    for level in (
        Level("low", 1e-3, 0.347),
        Level("medium", 1e-4, 0.404),
        Level("high", 1e-5, 0.453),
        Level("very_high", 1e-6, 0.498),
    )
}
DEFAULT_LEVEL = "high"
# Identification: the best user must lead the second best by this much cosine similarity.
# On ../shared/faces the smallest lead of a correct identification is 0.32.
DEFAULT_MARGIN = 0.1


class UnknownLevel(ValueError):
    """A level name that is not one of LEVELS."""


def level(name: str) -> Level:
    """The level called ``name`` (raises UnknownLevel, naming the valid ones)."""
    try:
        return LEVELS[name]
    except (KeyError, TypeError):
        raise UnknownLevel(
            f"unknown match level {name!r}; use one of {', '.join(LEVELS)}"
        ) from None


def model_threshold(fmr: float, *, mean: float = IMPOSTOR_MEAN, std: float = IMPOSTOR_STD) -> float:
    """The similarity that a different person's face reaches with probability ``fmr`` under
    the normal model of different-identity scores."""
    if not 0.0 < fmr < 1.0:
        raise ValueError(f"a false match rate lies strictly between 0 and 1, not {fmr}")
    return mean + std * NormalDist().inv_cdf(1.0 - fmr)


def identification_threshold(match_level: Level, gallery_size: int, *, floor: float | None = None) -> float:
    """The 1:N threshold for a gallery of ``gallery_size`` users: the level's FMR holds for
    the whole search, not for each comparison. Never below ``floor`` (default: the level's
    own threshold; an operator's explicit threshold replaces it)."""
    per_user = match_level.target_fmr / max(1, gallery_size)
    return max(match_level.threshold if floor is None else floor, model_threshold(per_user))


@dataclass(frozen=True)
class Candidate:
    """A user and the session's score against that user's templates."""

    user_id: str
    score: float


@dataclass(frozen=True)
class Decision:
    """``outcome`` is ``match``, ``no_match`` or ``ambiguous``; ``user_id`` is set only on a
    match. ``score`` is the best candidate's, ``runner_up`` the second best's (1:N)."""

    outcome: str
    user_id: str | None
    score: float
    threshold: float
    runner_up: Candidate | None = None
    margin: float | None = None

    @property
    def is_match(self) -> bool:
        return self.outcome == "match"


def decide_verification(score: float, threshold: float, user_id: str) -> Decision:
    """1:1: the claimed user matches when the score reaches the threshold."""
    if score >= threshold:
        return Decision("match", user_id, score, threshold)
    return Decision("no_match", None, score, threshold)


def decide_identification(
    candidates: Iterable[Candidate], *, threshold: float, margin: float = DEFAULT_MARGIN
) -> Decision:
    """1:N: the best candidate is named when its score reaches ``threshold`` and it leads the
    second best by at least ``margin``; ``ambiguous`` when it reaches the threshold but
    another user is within the margin (look-alikes, or one person enrolled twice), so the
    service cannot say which one it is; ``no_match`` otherwise."""
    ranked = sorted(candidates, key=lambda candidate: candidate.score, reverse=True)
    if not ranked:
        return Decision("no_match", None, 0.0, threshold, None, margin)
    best = ranked[0]
    runner_up = ranked[1] if len(ranked) > 1 else None
    if best.score < threshold:
        return Decision("no_match", None, best.score, threshold, runner_up, margin)
    if runner_up is not None and best.score - runner_up.score < margin:
        return Decision("ambiguous", None, best.score, threshold, runner_up, margin)
    return Decision("match", best.user_id, best.score, threshold, runner_up, margin)
