"""Presentation attack signal per session on the product's own kind of frames: every shared
live clip, the synthesised screen replays and a sample of the synthesised photo attacks.

    .venv/bin/python bench/pad_sessions.py [--faces ../shared/faces] [--seed 0] [--json]
        [--keep-padding] [--live-variations]

Each clip is streamed as the browser sends it (640x480 JPEG q80 at 10 frames/s; the square
shared clips letterboxed with black bars: attacks.browser_frame), each frame through
``pipeline.analyze``, and its face fed to a fresh ``PresentationAttackSignal`` with its
defaults, as the liveness session does (a face with landmarks, not cut by the frame, eyes at
least ``min_eye_distance`` apart), until the signal decides or the 120-frame budget ends.
``--keep-padding`` lets the crop reach into the letterbox bars (what the crop did before);
``--live-variations`` adds one synthesised live variation of each kind (dark, bright, camera
motions...: attacks.live_set), the clip rotating over the shared clips."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from face_engine.evaluation import attacks
from face_engine.liveness.face_frame import eye_distance
from face_engine.liveness.presentation import ATTACK, LIVE, PresentationAttackSignal, PresentationConfig
from face_engine.pipeline import analyze
from face_engine.types import DEFAULT_LIVENESS
from face_engine.video import video_frames

SHARED_FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"


def session(frames: Iterable[np.ndarray], config: PresentationConfig) -> dict:
    """The signal's verdict on one stream, its score, the scored frames' probabilities and
    the signal's time per scored frame."""
    signal = PresentationAttackSignal(config)
    spent, frame_count = 0.0, 0
    for index, image in enumerate(frames):
        frame_count = index + 1
        analysis = analyze(image)
        face, marks = analysis.face, analysis.landmarks
        if face is None or marks is None or "partially_visible" in analysis.quality.codes:
            continue
        if eye_distance(marks.points) < DEFAULT_LIVENESS.min_eye_distance:
            continue
        start = time.perf_counter()
        signal.update(image, face, analysis.quality.metrics, index / attacks.FPS)
        spent += time.perf_counter() - start
        if signal.verdict in (LIVE, ATTACK):
            break
    return {
        "verdict": signal.verdict, "score": None if signal.score is None else round(signal.score, 4),
        "frames_scored": signal.frames_scored, "frames_seen": frame_count,
        "probabilities": [round(p, 4) for p in signal.probabilities],
        "ms_per_scored_frame": round(1000 * spent / signal.frames_scored, 2)
        if signal.frames_scored else None,
    }


def live_stream(clip: Path) -> Iterator[np.ndarray]:
    for _, (_, frame) in zip(range(attacks.MAX_FRAMES), video_frames(clip, fps=attacks.FPS), strict=False):
        yield attacks.browser_frame(frame)


def _sample(presentations: list[attacks.Presentation], kinds: tuple[str, ...]) -> list[attacks.Presentation]:
    """One presentation per kind, the source rotating so each kind sees another face."""
    sources = sorted({(p.source, p.at) for p in presentations},
                     key=lambda item: (str(item[0]), item[1] or 0.0))
    return [next(p for p in presentations
                 if p.kind == kind and (p.source, p.at) == sources[(7 * index) % len(sources)])
            for index, kind in enumerate(kinds)]


def run(faces: Path, seed: int, config: PresentationConfig, live_variations: bool = False) -> list[dict]:
    results = []
    for clip in attacks.live_clips(faces):
        results.append({"label": "live", "kind": "original", "name": clip.name}
                       | session(live_stream(clip), config))
    presentations = attacks.attack_set(faces, seed)
    replays = [p for p in presentations if p.kind in attacks.REPLAY_KINDS]
    photos = [p for p in presentations if p.kind in attacks.PHOTO_KINDS]
    variations = _sample(attacks.live_set(faces, seed), attacks.LIVE_VARIATIONS) if live_variations else []
    for presentation in replays + _sample(photos, attacks.PHOTO_KINDS) + variations:
        results.append({"label": presentation.label, "kind": presentation.kind, "name": presentation.name}
                       | session(presentation.stream(), config))
    return results


def summary(results: list[dict]) -> dict:
    def count(rows: list[dict], verdict: str) -> int:
        return sum(row["verdict"] == verdict for row in rows)

    live = [row for row in results if row["label"] == "live" and row["kind"] == "original"]
    varied = [row for row in results if row["label"] == "live" and row["kind"] != "original"]
    replays = [row for row in results if row["kind"] in attacks.REPLAY_KINDS]
    photos = [row for row in results if row["label"] == "attack" and row["kind"] in attacks.PHOTO_KINDS]
    costs = [row["ms_per_scored_frame"] for row in results if row["ms_per_scored_frame"] is not None]
    live_scores = [row["score"] for row in live if row["score"] is not None]
    attack_scores = [row["score"] for row in replays + photos if row["score"] is not None]
    return {
        "live_sessions": len(live), "live_refused": count(live, ATTACK),
        "live_undecided": len(live) - count(live, LIVE) - count(live, ATTACK),
        "replay_sessions": len(replays), "replay_accepted": count(replays, LIVE),
        "replay_undecided": len(replays) - count(replays, LIVE) - count(replays, ATTACK),
        "photo_sessions": len(photos), "photo_accepted": count(photos, LIVE),
        **({"variation_sessions": len(varied), "variation_refused": count(varied, ATTACK)} if varied else {}),
        "min_live_score": min(live_scores, default=None),
        "max_attack_score": max(attack_scores, default=None),
        "median_ms_per_scored_frame": round(float(np.median(costs)), 2) if costs else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=SHARED_FACES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-padding", action="store_true",
                        help="let the crop reach into the letterbox bars (the crop before they were trimmed)")
    parser.add_argument("--live-variations", action="store_true",
                        help="add one synthesised live variation of each kind")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (args.faces / "video").is_dir():
        raise SystemExit(f"no shared clips at {args.faces / 'video'}")
    config = PresentationConfig()
    if args.keep_padding:
        config = replace(config, trim_padding=False)
    results = run(args.faces, args.seed, config, args.live_variations)
    figures = summary(results)
    if args.json:
        print(json.dumps({"sessions": results, "summary": figures}, indent=2))
        return 0
    print(f"threshold {config.threshold}, models {'+'.join(config.models)}, "
          f"{'crop into letterbox bars' if args.keep_padding else 'letterbox bars trimmed'}")
    print(f"{'label':6s} {'kind':16s} {'verdict':10s} {'score':>6s}  probabilities  name")
    for row in results:
        score = "-" if row["score"] is None else f"{row['score']:.3f}"
        print(f"{row['label']:6s} {row['kind']:16s} {row['verdict']:10s} {score:>6s}  "
              f"{' '.join(f'{p:.2f}' for p in row['probabilities'])}  {row['name']}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
