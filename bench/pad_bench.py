"""Anti-spoofing cost: median time per face of each MiniFASNet model (crop, resize and
inference in OpenVINO at the f32 precision hint), of the fused pair as the presentation signal
runs it (letterbox search included), and of the letterbox search alone, against a JPEG decode
of the same 640x480 frames measured in the same run.

    .venv/bin/python bench/pad_bench.py [videos...] [--frames 30] [--json]

Frames: the liveportrait clips of ../shared/faces/video (webcam-like 640x480 JPEG at quality
80, as the browser sends them), their largest face. One thread, as one engine call runs."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from face_engine import antispoof
from face_engine.decode import decode
from face_engine.detect import detect
from face_engine.evaluation.benchmark import jpeg_frames

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "faces" / "video"
REPEATS = 5  # each face is timed this many times; the median of all samples is reported


def _median_ms(function: Callable[[], object], calls: int) -> float:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples)


def run(videos: list[Path], frames_per_video: int) -> dict:
    stream = jpeg_frames(videos, per_video=frames_per_video)
    images = [decode(data) for data in stream]
    faces = [(image, found[0]) for image in images if (found := detect(image))]
    if not faces:
        raise SystemExit("no face found in the frames")
    antispoof.load_models(("v1se", "v2"))
    for image, face in faces[:3]:  # warm-up: first inferences allocate
        antispoof.real_probability(image, face, ("v1se", "v2"))

    def per_face(function: Callable[[object, object], object]) -> float:
        return statistics.median(
            _median_ms(lambda image=image, face=face: function(image, face), REPEATS) for image, face in faces
        )

    decode_ms = statistics.median(_median_ms(lambda data=data: decode(data), REPEATS) for data in stream)
    figures = {
        "frames": len(stream), "faces": len(faces),
        "decode_median_ms": round(decode_ms, 3),
        "v2_median_ms": round(per_face(
            lambda image, face: antispoof.logits(image, face, "v2", trim_padding=False)), 3),
        "v1se_median_ms": round(per_face(
            lambda image, face: antispoof.logits(image, face, "v1se", trim_padding=False)), 3),
        "both_median_ms": round(per_face(
            lambda image, face: antispoof.real_probability(image, face, ("v1se", "v2"))), 3),
        "crop_median_ms": round(per_face(lambda image, face: antispoof.crop(image, face.box, 2.7)), 3),
        "letterbox_median_ms": round(per_face(lambda image, face: antispoof.content_region(image)), 3),
    }
    figures["ratios_to_decode"] = {
        name: round(figures[f"{name}_median_ms"] / decode_ms, 2) for name in ("v2", "v1se", "both")
    }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*",
                        help="video files (default: ../shared/faces/video liveportrait clips)")
    parser.add_argument("--frames", type=int, default=30, help="frames taken from each video")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    videos = [Path(name) for name in args.videos] or sorted(VIDEOS.glob("liveportrait_*.mp4"))
    if not videos:
        raise SystemExit("no videos given and ../shared/faces/video is absent")
    figures = run(videos, args.frames)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"frames {figures['frames']}, faces {figures['faces']} (640x480 JPEG q80, one thread)")
    print(f"JPEG decode          median {figures['decode_median_ms']:6.2f} ms")
    for name, label in (("v2", "MiniFASNetV2"), ("v1se", "MiniFASNetV1SE"), ("both", "both (fused)")):
        print(f"{label:20s} median {figures[f'{name}_median_ms']:6.2f} ms per face"
              f"   x{figures['ratios_to_decode'][name]} decode")
    print(f"crop + resize alone  median {figures['crop_median_ms']:6.2f} ms")
    print(f"letterbox search     median {figures['letterbox_median_ms']:6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
