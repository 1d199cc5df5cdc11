"""Passive liveness bench: APCER/BPCER per attack kind and live variation, and the per-frame
tracking-path median against a JPEG decode baseline measured in the same run.

    .venv/bin/python bench/liveness_bench.py [--faces ../shared/faces] [--seed 0] [--json]
        [--no-face-tracking] [--workers N]

Every synthesised attack (face_engine/evaluation/attacks.py: every photo kind on every single-face photo
and on a frame of every live clip, and a screen replay of every live clip), every shared live
clip and every generated variation of it, at 10 frames/s within the 120-frame budget. The
same set as files: ``python -m face_engine attacks OUT`` then
``python -m face_engine liveness-eval OUT/manifest.csv``."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

from face_engine.evaluation import attacks, benchmark, liveness_eval, processes

SHARED_FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"


def run(
    faces: Path, seed: int, face_tracking: bool = True, workers: int = 1,
) -> list[liveness_eval.ClipResult]:
    results = []
    for clip in attacks.live_clips(faces):
        frames = liveness_eval.file_frames(clip, 10.0)
        results.append(
            liveness_eval.evaluate(clip.name, "live", "original", frames, face_tracking=face_tracking)
        )
        print(json.dumps(results[-1].as_dict()), file=sys.stderr, flush=True)
    evaluate = functools.partial(liveness_eval.evaluate_presentation, face_tracking=face_tracking)
    presentations = attacks.live_set(faces, seed) + attacks.attack_set(faces, seed)
    for result in processes.map_in_processes(evaluate, presentations, workers):
        results.append(result)
        print(json.dumps(result.as_dict()), file=sys.stderr, flush=True)
    return results


def table(results: list[liveness_eval.ClipResult]) -> list[str]:
    lines = [f"{'kind':30s} {'clips':>5s} {'wrong':>5s} {'rate':>7s}  {'blink seen':>10s} {'3D seen':>8s}"]
    kinds: dict[str, list[liveness_eval.ClipResult]] = {}
    for result in results:
        kinds.setdefault(f"{result.label}:{result.note}", []).append(result)
    for kind, group in sorted(kinds.items()):
        wrong = sum(not result.correct for result in group)
        metric = "APCER" if kind.startswith("attack") else "BPCER"
        lines.append(
            f"{kind:30s} {len(group):5d} {wrong:5d} {metric} {wrong / len(group):6.1%}"
            f"  {sum(r.blinks > 0 for r in group):10d} {sum(r.head_motion for r in group):8d}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", default=str(SHARED_FACES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-frames", type=int, default=30, help="frames per clip for the timing")
    parser.add_argument("--face-tracking", action=argparse.BooleanOptionalAction, default=True,
                        help="follow the face between detections as the service does "
                             "(FACEAUTH_FACE_TRACKING); --no-face-tracking detects every frame")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for the synthesised presentations (the timing runs in this one)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    faces = Path(args.faces)
    if not (faces / "video").is_dir():
        print(f"{faces}/video is absent: nothing to measure", file=sys.stderr)
        return 2
    results = run(faces, args.seed, args.face_tracking, args.workers)
    summary = liveness_eval.summary(results)
    figures = benchmark.run(benchmark.default_videos(), per_video=args.timing_frames)
    timing = {
        "tracking_path_median_ms": figures["stages"]["tracking_path"]["median_ms"],
        "decode_median_ms": figures["stages"]["decode"]["median_ms"],
        "tracking_path_to_decode": figures["ratios_to_decode"]["tracking_path"],
    }
    if args.json:
        print(json.dumps({**summary, "timing": timing}, indent=2))
        return 0
    print("\n".join(table(results)))
    print()
    photo = [r for r in results if r.label == "attack" and r.note in attacks.PHOTO_KINDS]
    # BPCER counts the clips with a blink and head movement in the budget (attacks.py says why).
    stems = [clip.removesuffix(".mp4") for clip in attacks.BLINK_AND_MOVEMENT_CLIPS]
    eligible = [r for r in results if r.label == "live" and any(stem in r.name for stem in stems)]
    originals = [r for r in eligible if r.note == "original"]
    variations = [r for r in eligible if r.note != "original"]
    for name, group, wanted in (("photo attacks APCER", photo, False), ("live clips BPCER", originals, True),
                                ("live variations BPCER", variations, True)):
        wrong = sum(result.live != wanted for result in group)
        print(f"{name:24s} {wrong}/{len(group)} = {wrong / max(len(group), 1):.1%}")
    print(f"live clips refused: {[r.name for r in originals if not r.live]}")
    print(
        f"tracking path median {timing['tracking_path_median_ms']:.2f} ms (one thread), JPEG decode "
        f"{timing['decode_median_ms']:.2f} ms: x{timing['tracking_path_to_decode']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
