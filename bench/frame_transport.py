"""Server CPU per frame: a base64 data URL in a JSON text message against the same JPEG as a
binary WebSocket message. 640x480 JPEG (quality 80) frames from ../shared/faces/video.

    .venv/bin/python bench/frame_transport.py [--frames 300] [--rounds 3] [--reduce 1]

Times what the server runs for each message before the face analysis: the text message's
UTF-8 decode (the WebSocket server hands Django a str), auth_service.protocol's
parse_client_message, and face_engine.decode.decode with the service's limits (base64 and
JPEG for a data URL, JPEG alone for bytes), as FrameProcessor.process does through
FaceTracker.decode. Both kinds run interleaved on the same frames in one process, one
thread (as an engine thread: cv2.setNumThreads(1)), so the ratio is measured in the same
run; figures are medians of per-message thread CPU time."""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from auth_service.protocol import parse_client_message  # noqa: E402
from auth_service.services.frames import ProcessingConfig  # noqa: E402
from face_engine.decode import decode  # noqa: E402
from face_engine.video import fit_frame, video_frames  # noqa: E402

CLIP = REPO.parent / "shared" / "faces" / "video" / "liveportrait_d9.mp4"


def clip_jpegs(count: int) -> list[bytes]:
    """``count`` frames of the clip at 10 frames/s as 640x480 JPEG, quality 80 (the JS
    client's defaults); the clip is read again from the start when it runs out."""
    frames: list[bytes] = []
    while len(frames) < count:
        before = len(frames)
        for _, frame in video_frames(CLIP, fps=10):
            ok, jpeg = cv2.imencode(".jpg", fit_frame(frame, 640, 480), [cv2.IMWRITE_JPEG_QUALITY, 80])
            frames.append(jpeg.tobytes())
            if len(frames) == count:
                break
        if len(frames) == before:
            raise SystemExit(f"no frames in {CLIP}")
    return frames


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the frames")
    parser.add_argument("--reduce", type=int, default=1, choices=(1, 2),
                        help="decode at 1/n size (the service uses 2 while it follows a large face)")
    args = parser.parse_args()
    if not CLIP.is_file():
        print(f"{CLIP} is absent: nothing to measure", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    config = ProcessingConfig.from_settings(samples_needed=3)
    max_bytes = settings.FACEAUTH_MAX_MESSAGE_BYTES
    jpegs = clip_jpegs(args.frames)
    # What arrives on the socket: the text message's bytes, or the JPEG itself.
    texts = [json.dumps({"type": "frame", "image": data_url(j)}).encode() for j in jpegs]

    def text_message(wire: bytes) -> None:
        message = parse_client_message(wire.decode("utf-8"), None, max_bytes=max_bytes)
        decode(message.image, limits=config.decode_limits, reduce=args.reduce, formats=config.image_formats)

    def binary_message(wire: bytes) -> None:
        message = parse_client_message(None, wire, max_bytes=max_bytes)
        decode(message.image, limits=config.decode_limits, reduce=args.reduce, formats=config.image_formats)

    def text_parse_only(wire: bytes) -> None:
        message = parse_client_message(wire.decode("utf-8"), None, max_bytes=max_bytes)
        base64.b64decode(message.image.split(",", 1)[1], validate=True)

    def cpu_ms(function, wire: bytes) -> float:
        start = time.thread_time_ns()
        function(wire)
        return (time.thread_time_ns() - start) / 1e6

    for jpeg, text in zip(jpegs[:10], texts[:10], strict=True):  # warm-up (first decodes, caches)
        text_message(text)
        binary_message(jpeg)
    samples: dict[str, list[float]] = {"text": [], "binary": [], "text_parse": []}
    for round_number in range(args.rounds):
        for index, (jpeg, text) in enumerate(zip(jpegs, texts, strict=True)):
            # Alternate which kind goes first, so neither always meets a warmer cache.
            if (index + round_number) % 2:
                samples["binary"].append(cpu_ms(binary_message, jpeg))
                samples["text"].append(cpu_ms(text_message, text))
            else:
                samples["text"].append(cpu_ms(text_message, text))
                samples["binary"].append(cpu_ms(binary_message, jpeg))
            samples["text_parse"].append(cpu_ms(text_parse_only, text))

    text_ms = statistics.median(samples["text"])
    binary_ms = statistics.median(samples["binary"])
    saved = [t - b for t, b in zip(samples["text"], samples["binary"], strict=True)]
    print(f"{len(jpegs)} frames x {args.rounds} rounds, 640x480 JPEG q80 from {CLIP.name}, "
          f"decode reduce={args.reduce}, one thread; medians of per-message thread CPU time")
    print(f"message size, median bytes: data URL text {statistics.median(map(len, texts)):.0f}, "
          f"binary {statistics.median(map(len, jpegs)):.0f} "
          f"(x{statistics.median(len(t) / len(j) for t, j in zip(texts, jpegs, strict=True)):.3f})")
    print(f"data URL text message: {text_ms:.3f} ms  (UTF-8 + JSON + base64 alone: "
          f"{statistics.median(samples['text_parse']):.3f} ms)")
    print(f"binary message:        {binary_ms:.3f} ms")
    print(f"saved per frame:       {statistics.median(saved):.3f} ms (median of per-frame differences)")
    print(f"ratio text / binary:   {text_ms / binary_ms:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
