"""Active liveness against recordings: a person obeying the prompts vs replays.

    .venv/bin/python bench/active_liveness_bench.py [--seeds 40] [--clips NAME ...] [--json]

For each seed (0..N-1) the challenge sequence is ``draw_challenges(random.Random(seed))``.
- obeying: a person following the prompts (face_engine.evaluation.challenge_player.play_obeying),
  resting at a rest of a clip from which the clip shows every drawn action (of those that
  do, the most versatile: ``Rest.rank``); seeds whose sequence no rest covers are counted
  apart, with the reason.
- straight replay: every clip from its start, looped, whatever the prompts.
- screen replay: every clip on a simulated phone screen (face_engine.evaluation.attacks), played once.
Prints each clip's rests with their registering stretches, each seed's outcome, then
pass/fail rates and the failure codes."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from itertools import combinations
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from face_engine.challenge import draw_challenges  # noqa: E402
from face_engine.evaluation import challenge_player as player  # noqa: E402
from face_engine.evaluation.attacks import live_clips  # noqa: E402

FACES = REPO.parent / "shared" / "faces"


def rate(results: list[player.RunResult], *, live: bool) -> dict:
    hits = sum(result.live == live for result in results)
    return {
        "runs": len(results),
        "rate": round(hits / len(results), 3) if results else None,
        "failures": dict(Counter(result.failure or "passed" for result in results)),
        "median_frames": sorted(r.frames for r in results)[len(results) // 2] if results else None,
    }


def not_covered_because(indexes: list[player.ClipIndex], sequence: list[str]) -> str:
    """Why no rest covers ``sequence``: an action no rest shows, or two no rest shows together."""
    rests = [rest for index in indexes for rest in index.rests]
    codes = list(dict.fromkeys(sequence))
    showing = {code: [rest for rest in rests if rest.stretches(code)] for code in codes}
    missing = [code for code in codes if not showing[code]]
    if missing:
        return f"no clip shows {' or '.join(missing)} from any rest"
    for first, second in combinations(codes, 2):
        if not set(showing[first]) & set(showing[second]):
            return (f"no rest shows both {first} and {second} ({first} from {len(showing[first])} rests, "
                    f"{second} from {len(showing[second])})")
    return "no rest shows all three"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--clips", nargs="*", help="clip file names (default: every single-person clip)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--no-replays", action="store_true", help="only the obeying person (quicker)")
    args = parser.parse_args()
    if not (FACES / "video").is_dir():
        print(f"no clips: {FACES / 'video'} is absent", file=sys.stderr)
        return 2
    paths = [path for path in live_clips(FACES) if not args.clips or path.name in args.clips]
    started = time.monotonic()
    indexes = [player.index_clip(path) for path in paths]
    for index in indexes:
        for rest in index.summary()["rests"]:
            print(json.dumps(rest), flush=True)
    sequences = [draw_challenges(random.Random(seed)) for seed in range(args.seeds)]

    obeying, uncovered, used, per_seed = [], 0, Counter(), []
    for seed, sequence in enumerate(sequences):
        covering = [(index, rest) for index in indexes for rest in index.covering(sequence)]
        if not covering:
            uncovered += 1
            outcome = f"not coverable: {not_covered_because(indexes, sequence)}"
        else:
            index, rest = min(covering, key=lambda pair: pair[1].rank)
            used[index.path.name] += 1
            result = player.play_obeying(index, sequence, seed=seed, rest=rest)
            obeying.append(result)
            outcome = (f"{'passed' if result.live else 'failed: ' + str(result.failure)} after "
                       f"{result.frames} frames, resting at {rest.where} ({len(covering)} rests cover it)")
        per_seed.append(f"seed {seed} {','.join(sequence)}: {outcome}")
        print(per_seed[-1], flush=True)

    straight, screen = [], []
    for index in [] if args.no_replays else indexes:
        shown = player.screen_replay_frames(index.path)
        for sequence in sequences:
            straight.append(player.play_straight(index.frames, sequence))
            screen.append(player.play_straight(shown, sequence, loop=False))

    summary = {
        "seeds": args.seeds,
        "clips": [path.name for path in paths],
        "obeying_pass": {**rate(obeying, live=True), "seeds_without_a_covering_rest": uncovered,
                         "passed_of_all_seeds": f"{sum(result.live for result in obeying)}/{args.seeds}",
                         "clips_used": dict(used)},
        "straight_replay_fail": rate(straight, live=False),
        "screen_replay_fail": rate(screen, live=False),
        "per_clip_straight_fail": {
            index.path.name: rate(straight[i * len(sequences):(i + 1) * len(sequences)], live=False)["rate"]
            for i, index in enumerate(indexes) if straight
        },
        "per_clip_screen_fail": {
            index.path.name: rate(screen[i * len(sequences):(i + 1) * len(sequences)], live=False)["rate"]
            for i, index in enumerate(indexes) if screen
        },
        "seconds": round(time.monotonic() - started, 1),
    }
    if args.json:
        print(json.dumps({**summary, "per_seed": per_seed}))
    else:
        for key, value in summary.items():
            print(f"{key}: {json.dumps(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
