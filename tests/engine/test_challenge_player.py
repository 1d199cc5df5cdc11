"""The active mode on recorded footage (face_engine.challenge_player): a person following the
prompts passes, the same clip replayed straight (or on a simulated phone screen) fails, over
40 seeds. The clip is analysed once per module; each run only feeds the trackers."""

from __future__ import annotations

import json
import random

import pytest

from face_engine import challenge_player as player
from face_engine.challenge import draw_challenges
from face_engine.cli import main

SEEDS = range(40)
# The shared clip with registering stretches for most actions: turns both ways (left ones from
# its mirror image) and looking down. No shared clip has a look up that registers.
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


def test_the_clip_is_cut_into_neutral_and_action_stretches(index):
    assert len(index.neutral) >= player.NEUTRAL_FRAMES
    for code in ("turn_left", "turn_right", "look_down"):
        assert index.found[code], index.summary()
    for stretch in (s for found in index.found.values() for s in found):
        assert 0 < stretch.held_from < len(stretch.frames) and stretch.where.startswith("liveportrait_d9")
    for code, kept in index.stretches.items():  # those that register are among those found
        assert all(any(k is f for f in index.found[code]) for k in kept)
    # The clip turns to its right only: left turns come from the mirror image.
    assert index.found["turn_left"] and all("mirrored" in s.where for s in index.found["turn_left"])


def test_a_person_obeying_the_prompts_passes(index):
    runs = [player.play_obeying(index, sequence, seed=seed)
            for seed, sequence in zip(SEEDS, sequences(), strict=True) if index.covers(sequence)]
    # Seeds whose sequence asks for an action the clip has no registering stretch of (look up,
    # blink) are left out: bench/active_liveness_bench.py counts them over every clip.
    passed = sum(run.live for run in runs)
    assert len(runs) >= 5 and passed >= TARGET * len(runs), [
        (run.drawn, run.passed, run.failure) for run in runs if not run.live]


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
        "challenge_timeout", "challenge_wrong_action", None)
    assert challenges["passed"] == challenges["drawn"][:len(challenges["passed"])]
