"""Face engine benchmark: per-stage medians on 640x480 JPEG frames from ../shared/faces/video,
one thread and two, with the issue's targets beside the figures.

    .venv/bin/python bench/engine_bench.py [--frames 60] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

from face_engine.evaluation import benchmark

# Targets of the face engine issue (one thread unless said otherwise).
TARGETS = {
    "tracking path median (ms)": (lambda f: f["stages"]["tracking_path"]["median_ms"], "<=", 6.0),
    "embedding median (ms)": (lambda f: f["stages"]["embed"]["median_ms"], "<=", 25.0),
    "two-thread speedup (x)": (lambda f: f["two_thread_speedup"], ">=", 1.7),
    "engine memory after a session (MB)": (lambda f: f["engine_rss_mb"], "<=", 400.0),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames taken from each video")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    videos = benchmark.default_videos()
    if not videos:
        print("../shared/faces/video is absent: nothing to measure", file=sys.stderr)
        return 2
    figures = benchmark.run(videos, per_video=args.frames)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print("\n".join(benchmark.as_lines(figures)))
    print()
    for name, (read, relation, target) in TARGETS.items():
        value = read(figures)
        met = value <= target if relation == "<=" else value >= target
        print(f"{name:38s} {value:8.2f}  target {relation} {target:<6} {'met' if met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
