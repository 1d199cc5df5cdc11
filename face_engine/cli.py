"""Command line: ``python -m face_engine detect|compare|liveness|pairs|bench``.

Output is JSON on stdout. Exit codes: 0 done (whatever the verdict), 2 an input could not
be used (message on stderr)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from face_engine import benchmark
from face_engine.decode import DecodeLimits, decode
from face_engine.detect import detect, landmarks
from face_engine.embed import DEFAULT_THRESHOLD, embed, similarity
from face_engine.errors import FaceEngineError, ImageError, NoFaceError
from face_engine.liveness import LivenessTracker
from face_engine.pipeline import analyze
from face_engine.quality import quality
from face_engine.video import video_frames

# Files given on the command line are the operator's own: allow large photos.
FILE_LIMITS = DecodeLimits(max_bytes=64 * 1024 * 1024, max_side=12_000, max_pixels=100_000_000)


def load_image(path: str | Path) -> np.ndarray:
    """Read and decode an image file (raises ImageError)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: {exc.strerror or exc}") from exc
    try:
        return decode(data, limits=FILE_LIMITS)
    except ImageError as exc:
        raise ImageError(f"{path}: {exc.message}", code=exc.code) from exc


def embed_file(path: str | Path) -> np.ndarray:
    """Embedding of the largest face in an image file (raises NoFaceError, ImageError)."""
    image = load_image(path)
    faces = detect(image)
    if not faces:
        raise NoFaceError(f"{path}: no face found")
    return embed(image, faces[0])


def command_detect(args: argparse.Namespace) -> dict:
    image = load_image(args.image)
    faces = detect(image)
    result = []
    for index, face in enumerate(faces):
        marks = landmarks(image, face)
        others = faces[:index] + faces[index + 1:]
        verdict = quality(image, [face, *others], marks)
        result.append({**face.as_dict(), "pose": marks.pose.as_dict(), "quality": verdict.as_dict()})
    return {"image": str(args.image), "width": image.shape[1], "height": image.shape[0],
            "count": len(result), "faces": result}


def command_compare(args: argparse.Namespace) -> dict:
    score = similarity(embed_file(args.image_a), embed_file(args.image_b))
    return {"similarity": round(score, 4), "match": score >= args.threshold, "threshold": args.threshold}


def command_liveness(args: argparse.Namespace) -> dict:
    tracker = LivenessTracker()
    state = None
    for timestamp, frame in video_frames(args.video, fps=args.fps):
        state = tracker.update(frame, analyze(frame), timestamp)
    if state is None:
        raise ImageError(f"{args.video}: no frames could be read")
    return {
        "live": state.live,
        "blinks": state.blinks,
        "head_motion": state.head_motion,
        "frames": state.frames,
        "same_person": state.same_person,
        "failure": state.failure,
    }


def command_pairs(args: argparse.Namespace) -> None:
    base = Path(args.pairs).parent
    embeddings: dict[str, np.ndarray | FaceEngineError] = {}

    def lookup(name: str) -> np.ndarray:
        if name not in embeddings:
            try:
                embeddings[name] = embed_file(base / name)
            except FaceEngineError as exc:
                embeddings[name] = exc
        found = embeddings[name]
        if isinstance(found, FaceEngineError):
            raise found
        return found

    counts = {"pairs": 0, "errors": 0, "labelled": 0, "correct": 0,
              "same": 0, "false_non_match": 0, "different": 0, "false_match": 0}
    with open(args.pairs, newline="") as handle:
        for row in csv.reader(handle):
            if not row or row[0].startswith("#") or row[0] == "image_a":
                continue
            counts["pairs"] += 1
            first, second = row[0].strip(), row[1].strip()
            line: dict = {"a": first, "b": second}
            try:
                score = similarity(lookup(first), lookup(second))
            except FaceEngineError as exc:
                counts["errors"] += 1
                print(json.dumps({**line, "error": exc.code, "message": exc.message}))
                continue
            matched = score >= args.threshold
            line.update(similarity=round(score, 4), match=matched)
            if len(row) > 2 and row[2].strip() in ("0", "1"):
                same = row[2].strip() == "1"
                line["same"] = same
                counts["labelled"] += 1
                counts["correct"] += matched == same
                counts["same" if same else "different"] += 1
                if same and not matched:
                    counts["false_non_match"] += 1
                if matched and not same:
                    counts["false_match"] += 1
            print(json.dumps(line))
    if counts["labelled"]:
        print(json.dumps({
            "summary": True,
            "threshold": args.threshold,
            "pairs": counts["pairs"],
            "errors": counts["errors"],
            "accuracy": round(counts["correct"] / counts["labelled"], 4),
            "false_match_rate": round(counts["false_match"] / counts["different"], 4)
            if counts["different"] else None,
            "false_non_match_rate": round(counts["false_non_match"] / counts["same"], 4)
            if counts["same"] else None,
        }))


def command_bench(args: argparse.Namespace) -> dict:
    videos = [Path(name) for name in args.videos] or benchmark.default_videos()
    if not videos:
        raise ImageError("no videos given and ../shared/faces/video is absent")
    figures = benchmark.run(videos, per_video=args.frames)
    if not args.json:
        print("\n".join(benchmark.as_lines(figures)))
        return {}
    return figures


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m face_engine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    detect_parser = commands.add_parser("detect", help="faces in an image, with quality verdicts")
    detect_parser.add_argument("image")
    detect_parser.set_defaults(handler=command_detect)

    compare_parser = commands.add_parser("compare", help="similarity of the largest faces of two images")
    compare_parser.add_argument("image_a")
    compare_parser.add_argument("image_b")
    compare_parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    compare_parser.set_defaults(handler=command_compare)

    liveness_parser = commands.add_parser("liveness", help="liveness of a video, fed as a browser would")
    liveness_parser.add_argument("video")
    liveness_parser.add_argument("--fps", type=float, default=10.0)
    liveness_parser.set_defaults(handler=command_liveness)

    pairs_parser = commands.add_parser(
        "pairs", help="score image pairs from a CSV (image_a,image_b[,same]) to calibrate the threshold"
    )
    pairs_parser.add_argument("pairs")
    pairs_parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    pairs_parser.set_defaults(handler=command_pairs)

    bench_parser = commands.add_parser("bench", help="per-stage timings on real frames")
    bench_parser.add_argument("videos", nargs="*", help="video files (default: ../shared/faces/video)")
    bench_parser.add_argument("--frames", type=int, default=60, help="frames taken from each video")
    bench_parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench_parser.set_defaults(handler=command_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "liveness" and not 0 < args.fps <= 30:
        print("error: --fps must be between 0 and 30", file=sys.stderr)
        return 2
    try:
        result = args.handler(args)
    except FaceEngineError as exc:
        print(f"error: {exc.message} ({exc.code})", file=sys.stderr)
        return 2
    if result:
        print(json.dumps(result, indent=2))
    return 0
