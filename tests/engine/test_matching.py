"""Security levels, their calibration on every labelled pair of the shared faces, and the
1:1 / 1:N decision rules."""

from __future__ import annotations

import numpy as np
import pytest

from face_engine import matching
from face_engine.evaluation import calibration
from face_engine.matching import Candidate, decide_identification, decide_verification


@pytest.fixture(scope="module")
def pairs(labelled_samples) -> tuple[np.ndarray, np.ndarray]:
    return calibration.pair_scores(
        np.stack([s.embedding for s in labelled_samples]), [s.identity for s in labelled_samples]
    )


def test_the_calibration_set_is_every_labelled_face(labelled_samples):
    identities = {s.identity for s in labelled_samples}
    kinds = {kind: sum(s.kind == kind for s in labelled_samples) for kind in ("photo", "variation", "video")}
    # 11 single-person clips (Hamilton left out), 6 photo people, compreface A, B, C and 2 others.
    assert len(identities) == 22 and not any("hamilton" in i for i in identities)
    assert kinds["photo"] >= 30 and kinds["variation"] >= 4 * 30 and kinds["video"] >= 200


def test_high_lets_no_different_person_pair_match_and_fnmr_is_measured(pairs):
    genuine, impostor = pairs
    assert len(impostor) > 70_000 and len(genuine) > 4_000
    for level in matching.LEVELS.values():
        rates = calibration.error_rates(genuine, impostor, level.threshold)
        print(f"{level.name}: threshold {level.threshold}, FMR {rates.false_matches}/{rates.impostor_pairs}, "
              f"FNMR {rates.false_non_matches}/{rates.genuine_pairs} = {rates.false_non_match_rate:.4f}")
        # Where the pairs can show the target rate, the measured rate keeps to it.
        if level.target_fmr * len(impostor) >= 1:
            assert rates.false_match_rate <= level.target_fmr
    high = calibration.error_rates(genuine, impostor, matching.LEVELS["high"].threshold)
    assert high.false_matches == 0
    assert high.false_non_match_rate < 0.05


def test_shipped_thresholds_are_the_calibrated_ones(pairs):
    genuine, impostor = pairs
    assert abs(float(impostor.mean()) - matching.IMPOSTOR_MEAN) < 0.002
    assert abs(float(impostor.std()) - matching.IMPOSTOR_STD) < 0.002
    for row in calibration.calibrate_levels(genuine, impostor):
        # Shipped values are the recalibrated ones rounded up to 3 decimals.
        assert 0 <= row.level.threshold - row.rates.threshold < 0.0015, row.as_dict()


def test_stricter_levels_have_higher_thresholds():
    levels = list(matching.LEVELS.values())
    assert [lv.target_fmr for lv in levels] == sorted((lv.target_fmr for lv in levels), reverse=True)
    assert [lv.threshold for lv in levels] == sorted(lv.threshold for lv in levels)
    assert matching.DEFAULT_LEVEL == "high"


def test_unknown_levels_are_refused_by_name():
    with pytest.raises(matching.UnknownLevel, match="use one of low, medium, high, very_high"):
        matching.level("ultra")
    assert matching.level("medium").target_fmr == 1e-4


def test_empirical_threshold_allows_at_most_the_target_share():
    scores = np.linspace(0.0, 0.999, 1000)
    threshold = calibration.empirical_threshold(scores, 0.01)
    assert int(np.sum(scores >= threshold)) == 10
    # Fewer pairs than 1 / rate: nothing may match.
    assert calibration.empirical_threshold(scores, 1e-4) > scores.max()


def test_identification_threshold_grows_with_the_gallery():
    high = matching.LEVELS["high"]
    sizes = [1, 10, 1_000, 100_000]
    thresholds = [matching.identification_threshold(high, n) for n in sizes]
    assert thresholds[0] == high.threshold
    assert thresholds == sorted(thresholds) and thresholds[-1] > thresholds[1] > high.threshold
    # The search as a whole keeps the level's rate: per user it is the rate / gallery size.
    assert thresholds[2] == pytest.approx(matching.model_threshold(high.target_fmr / 1_000))
    assert matching.identification_threshold(high, 1, floor=0.6) == 0.6


def test_verification_decides_at_the_threshold():
    assert decide_verification(0.5, 0.453, "alice").user_id == "alice"
    refused = decide_verification(0.45, 0.453, "alice")
    assert refused.outcome == "no_match" and refused.user_id is None


def test_identification_names_a_clear_winner_only():
    clear = decide_identification([Candidate("bob", 0.41), Candidate("alice", 0.72)], threshold=0.5)
    assert clear.outcome == "match" and clear.user_id == "alice" and clear.runner_up.user_id == "bob"
    close = decide_identification([Candidate("alice", 0.72), Candidate("twin", 0.68)], threshold=0.5)
    assert close.outcome == "ambiguous" and close.user_id is None and close.runner_up.score == 0.68
    low = decide_identification([Candidate("alice", 0.45)], threshold=0.5)
    assert low.outcome == "no_match" and low.user_id is None
    assert decide_identification([], threshold=0.5).outcome == "no_match"
    # A runner-up below the threshold but within the margin still makes it ambiguous.
    near = decide_identification([Candidate("a", 0.52), Candidate("b", 0.47)], threshold=0.5, margin=0.1)
    assert near.outcome == "ambiguous"
