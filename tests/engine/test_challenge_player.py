"""The active mode on recorded footage (face_engine.evaluation.challenge_player): a person following the
prompts passes, the same clip replayed straight (or on a simulated phone screen) fails, over
40 seeds. The clip is analysed once per module; each run only feeds the trackers."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest

from face_engine.challenge import CHALLENGE_CODES, draw_challenges
from face_engine.cli import main
from face_engine.evaluation import challenge_player as player

SEEDS = range(40)
# The shared clip with rests from which it shows every action: turns both ways (one from its
# mirror image), looking down, a blink, and looking up (from the head tilted slightly down).
CLIP = "video/liveportrait_d9.mp4"
# Replays: clips full of turns and blinks, those a straight replay could most easily pass with.
REPLAYS = ("video/liveportrait_d9.mp4", "video/liveportrait_d3.mp4", "video/sadtalker_radio2.mp4")
TARGET = 0.95


@pytest.fixture(scope="module")
def index(faces_dir) -> player.ClipIndex:
    return player.index_clip(faces_dir / CLIP)


@pytest.fixture(scope="module")
def replays(faces_dir) -> dict[str, list[player.Frame]]:
    return {name: player.clip_frames(faces_dir / name) for name in REPLAYS}


def sequences() -> list[list[str]]:
    return [draw_challenges(random.Random(seed)) for seed in SEEDS]


def test_the_clip_is_cut_into_rests_and_action_stretches(index):
    assert len(index.rests) >= 2
    assert [rest.rank for rest in index.rests] == sorted(rest.rank for rest in index.rests)
    for rest in index.rests:
        # A rest spans NEUTRAL_FRAMES or more; the frames of a blink in it are not played.
        assert len(rest.frames) >= 2 and rest.where.startswith("liveportrait_d9")
        for stretch in (s for found in rest.found.values() for s in found):
            # Every stretch starts at its rest's pose: the cut into it does not move the head.
            assert player._at_rest(stretch.frames[0].pose, rest.pose), (rest.where, stretch.where)
            assert 0 < stretch.held_from < len(stretch.frames)
    for code in CHALLENGE_CODES:  # every action from some rest, from stretches found for it
        assert any(rest.stretches(code) for rest in index.rests), code
        for rest in index.rests:
            assert all(any(kept is found for found in rest.found[code]) for kept in rest.stretches(code))
    versatile = index.rests[0]  # the most actions that register from one rest
    assert sum(bool(versatile.stretches(code)) for code in CHALLENGE_CODES) >= 4, versatile.summary()
    # Turns both ways from one rest: one way from the mirror image.
    assert any({"mirrored" in stretch.where
                for stretch in rest.stretches("turn_left") + rest.stretches("turn_right")} == {True, False}
               for rest in index.rests)


def test_a_look_up_is_played_from_a_rest_with_the_head_tilted_down(index):
    # The clip's longest rest faces the camera, and it never looks up from there: only from a
    # head tilted down (the pitch rises looking down).
    usual = max(index.rests, key=lambda rest: len(rest.frames))
    assert not usual.stretches("look_up")
    looking_up = [rest for rest in index.rests if rest.stretches("look_up")]
    assert looking_up
    for rest in looking_up:
        assert rest.pose[1] > usual.pose[1], rest.where
        for stretch in rest.stretches("look_up"):
            peak = stretch.frames[stretch.held_from:stretch.held_from + 2]
            assert all(frame.pose[1] <= rest.pose[1] - 8 for frame in peak), (rest.where, stretch.where)


def test_evidence_made_by_the_cut_into_a_stretch_does_not_count():
    def scripted(parallax: list[int]):
        """A tracker whose parallax count follows ``parallax`` and that passes on the last frame."""
        states = iter(SimpleNamespace(parallax_frames=count, blinks=0, live=number == len(parallax) - 1,
                                      failure=None) for number, count in enumerate(parallax))
        return SimpleNamespace(update=lambda *_: next(states))

    cut = player.CUT_FRAMES
    frame = player.Frame(None, None)
    stretch = player.Stretch("turn_left", (frame,) * (cut + 2), "scripted", held_from=cut)
    assert not player._passes(scripted([1] * (cut + 2)), stretch, 0, False)  # risen at the cut
    within = [0, 1] + [2] * cut  # risen within CUT_FRAMES of the cut
    assert not player._passes(scripted(within), stretch, 0, False)
    assert player._passes(scripted([0] * cut + [1, 1]), stretch, 0, False)  # later: the movement's
    assert player._passes(scripted([1] * (cut + 2)), stretch, 0, True)  # risen while resting


def test_a_person_obeying_the_prompts_passes(index):
    # Every seed the clip can play: resting at the most versatile rest from which it shows every
    # drawn action (bench/active_liveness_bench.py plays every clip and rest that covers a
    # seed). The clip looks up only from rests where its turns right do not register (its blinks
    # are taken out of the rests played back and forth): 2 of the 40 seeds ask for both.
    castable = [(seed, sequence) for seed, sequence in zip(SEEDS, sequences(), strict=True)
                if index.covers(sequence)]
    assert len(castable) >= 0.9 * len(SEEDS)
    runs = [player.play_obeying(index, sequence, seed=seed) for seed, sequence in castable]
    failed = [(run.drawn, run.passed, run.failure) for run in runs if not run.live]
    assert len(runs) - len(failed) >= TARGET * len(runs), failed


def test_a_straight_replay_fails(replays):
    runs = [player.play_straight(frames, sequence) for frames in replays.values() for sequence in sequences()]
    assert sum(not run.live for run in runs) >= TARGET * len(runs), [run.drawn for run in runs if run.live]
    assert {run.failure for run in runs} <= {None, "challenge_timeout", "challenge_wrong_action", "ended"}


def test_a_replay_on_a_simulated_screen_fails(faces_dir):
    runs = []
    for name in REPLAYS:
        shown = player.screen_replay_frames(faces_dir / name, seed=0)
        runs += [player.play_straight(shown, sequence, loop=False) for sequence in sequences()]
    assert sum(not run.live for run in runs) >= TARGET * len(runs), [run.drawn for run in runs if run.live]


def test_the_cli_plays_a_clip_against_the_seeds_challenges(faces_dir, capsys):
    assert main(["liveness", str(faces_dir / "video" / "liveportrait_d0.mp4"), "--fps", "10",
                 "--challenge", "7"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mode"] == "active" and result["live"] is False
    challenges = result["challenges"]
    assert challenges["seed"] == 7 and challenges["drawn"] == draw_challenges(random.Random(7))
    assert challenges["failure"] == result["failure"] and result["failure"] in (
        "challenge_wrong_action", "challenge_timeout", None)
    assert challenges["passed"] == challenges["drawn"][:len(challenges["passed"])]
