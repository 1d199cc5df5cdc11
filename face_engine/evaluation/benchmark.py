"""Per-stage timings of the engine on real 640x480 JPEG frames, one thread and two.

Figures are medians and 95th percentiles in milliseconds, with ratios against a baseline
measured in the same run (decoding the same JPEG), because machines differ and are noisy."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from face_engine.antispoof import real_probability
from face_engine.decode import decode
from face_engine.detect import TRACKING_MAX_SIDE, detect, landmark_box, landmarks
from face_engine.embed import embed
from face_engine.eyes import eye_state
from face_engine.liveness import LivenessTracker
from face_engine.models import SHAPE_68, detector, iris_landmarker, load_models, recognizer, shape_predictor
from face_engine.pipeline import FaceTracker
from face_engine.quality import quality
from face_engine.types import Face
from face_engine.video import fit_frame, video_frames

JPEG_QUALITY = 80  # what the browser client sends (canvas.toDataURL('image/jpeg', 0.8))


def jpeg_frames(videos: list[Path], *, per_video: int = 60, fps: float = 10.0) -> list[bytes]:
    """640x480 JPEG frames made from ``videos`` (a webcam-like stream of each)."""
    frames = []
    for path in videos:
        for count, (_, frame) in enumerate(video_frames(path, fps=fps)):
            if count >= per_video:
                break
            ok, data = cv2.imencode(".jpg", fit_frame(frame), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if ok:
                frames.append(data.tobytes())
    return frames


def _time_each(function: Callable[..., object], calls: list[tuple]) -> list[float]:
    """Milliseconds taken by ``function(*arguments)`` for each tuple in ``calls``."""
    samples = []
    for arguments in calls:
        start = time.perf_counter()
        function(*arguments)
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "n": len(ordered),
    }


def _tracking_path(sessions: list[list[bytes]]) -> tuple[list[float], list[float]]:
    """Milliseconds per frame of decode + analysis + liveness update as the service runs a
    passive session (the face followed between detections while liveness allows, each signal
    stopped once its evidence is in), each clip one session; and each session's share of
    frames on which the eye model ran (while a blink was still sought)."""
    samples, eye_shares = [], []
    for stream in sessions:
        tracker = LivenessTracker(stop_at_evidence=True)
        faces = FaceTracker(watch_liveness=False)
        eye_frames = 0
        for data in stream:
            start = time.perf_counter()
            eye_frames += tracker.measuring_blink
            tracked = faces.decode(data, follow=not tracker.needs_detection)
            tracker.update(tracked.image, tracked.analysis, gray=tracked.gray, continued=tracked.continued)
            samples.append((time.perf_counter() - start) * 1000.0)
        eye_shares.append(eye_frames / max(len(stream), 1))
    return samples, eye_shares


def run(videos: list[Path], *, per_video: int = 60) -> dict:
    """Measure every stage; returns a JSON-ready dict of figures."""
    cv2.setNumThreads(1)  # one thread per call, so two Python threads use two cores
    load_models()
    sessions = [jpeg_frames([video], per_video=per_video) for video in videos]
    stream = [frame for session in sessions for frame in session]
    if not stream:
        raise ValueError("no frames could be read from the videos")
    # What one worker process holds: models plus one session's state, measured before this
    # benchmark keeps decoded frames of its own in memory.
    tracking, eye_shares = _tracking_path(sessions)
    engine_rss_mb = _peak_rss_mb()
    images = [decode(data) for data in stream]
    faces = [detect(image, max_side=TRACKING_MAX_SIDE) for image in images]
    with_face = [(image, found[0]) for image, found in zip(images, faces, strict=True) if found]

    tracking_detect = partial(detect, max_side=TRACKING_MAX_SIDE)
    marks = [landmarks(image, face) for image, face in with_face]
    stages = {
        "decode": _time_each(decode, [(data,) for data in stream]),
        "detect": _time_each(tracking_detect, [(image,) for image in images]),
        "landmarks": _time_each(landmarks, with_face),
        "quality": _time_each(
            quality, [(image, [face], m) for (image, face), m in zip(with_face, marks, strict=True)]
        ),
        "embed": _time_each(embed, with_face[:40]),
        # The liveness signals' networks, per frame they run on: both eyes in one batch, and
        # the anti-spoofing network (the default model) on one face.
        "eye_model": _time_each(eye_state, [(image, m.points) for (image, _), m in zip(with_face, marks,
                                                                                          strict=True)]),
        "anti_spoofing": _time_each(real_probability, with_face),
    }

    # Throughput: every clip as a session on the tracking path (with its identity embeddings),
    # on 1 thread and on 2 at once.
    def throughput(threads: int) -> float:
        return _rate(lambda: _tracking_path(sessions), len(stream), threads)

    throughput(1)  # warm every thread's models before timing
    one = statistics.median(throughput(1) for _ in range(3))
    two = statistics.median(throughput(2) for _ in range(3))
    fits = _landmark_fit_rates(with_face)

    decode_median = statistics.median(stages["decode"])
    stages["tracking_path"] = tracking
    figures = {name: _summary(samples) for name, samples in stages.items()}
    return {
        "frames": len(stream),
        "frames_with_face": len(with_face),
        "stages": figures,
        "ratios_to_decode": {
            "tracking_path": round(statistics.median(tracking) / decode_median, 2),
            "embed": round(statistics.median(stages["embed"]) / decode_median, 2),
        },
        "throughput_fps": {"one_thread": round(one, 1), "two_threads": round(two, 1)},
        "two_thread_speedup": round(two / one, 2),
        "landmark_fits_per_s": fits,
        # Share of a session's frames on which the eye model ran, median over the clips.
        "eye_model_frame_share": round(statistics.median(eye_shares), 2),
        "engine_rss_mb": engine_rss_mb,
        "peak_rss_mb": _peak_rss_mb(),
        # What the networks computed in (models.inference_precision): figures differ with it.
        "precision": {"YuNet": detector().precision, "SFace": recognizer().precision,
                      "eye model": iris_landmarker().precision},
    }


def _landmark_fit_rates(with_face: list[tuple[np.ndarray, Face]]) -> dict[str, dict[str, int]]:
    """Landmark fits a second on one thread and on two of one process (as a worker's two
    engine threads run them), by the engine's shape model and by dlib's own binding, which
    holds the GIL for a whole fit."""
    import dlib

    reference = dlib.shape_predictor(str(SHAPE_68.path))
    model = shape_predictor()
    boxes = []
    for image, face in with_face:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes.append((gray, landmark_box(face)))

    def by_model() -> None:
        for gray, box in boxes:
            model.fit(gray, *box)

    def by_dlib() -> None:
        for gray, box in boxes:
            reference(gray, dlib.rectangle(*box))

    rates = {}
    for name, fit_all in (("shape model", by_model), ("dlib binding", by_dlib)):
        fit_all()  # warm
        rates[name] = {
            str(threads): round(statistics.median(_rate(fit_all, len(boxes), threads) for _ in range(3)))
            for threads in (1, 2)
        }
    return rates


def _rate(work: Callable[[], object], items: int, threads: int) -> float:
    """Items a second when ``threads`` threads each run ``work`` (``items`` items) at once."""
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: work(), range(threads)))
    return threads * items / (time.perf_counter() - start)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def default_videos() -> list[Path]:
    """The liveportrait clips in ../shared/faces/video beside the repository, if present."""
    folder = Path(__file__).resolve().parents[3] / "shared" / "faces" / "video"
    return sorted(folder.glob("liveportrait_*.mp4"))


def as_lines(figures: dict) -> list[str]:
    lines = [f"frames: {figures['frames']} (with a face: {figures['frames_with_face']})"]
    for name, summary in figures["stages"].items():
        lines.append(f"{name:14s} median {summary['median_ms']:7.2f} ms   p95 {summary['p95_ms']:7.2f} ms")
    ratios = figures["ratios_to_decode"]
    lines.append(f"ratio to JPEG decode: tracking path x{ratios['tracking_path']}, embed x{ratios['embed']}")
    lines.append(f"eye model ran on {figures['eye_model_frame_share']:.0%} of a session's frames (median)")
    rates = figures["throughput_fps"]
    lines.append(
        f"throughput: {rates['one_thread']} frames/s on 1 thread, {rates['two_threads']} on 2 "
        f"(x{figures['two_thread_speedup']})"
    )
    lines.append("landmark fits/s on 1 and 2 threads of one process: " + "; ".join(
        f"{name} {rates['1']} and {rates['2']}" for name, rates in figures["landmark_fits_per_s"].items()
    ))
    lines.append(
        f"memory: {figures['engine_rss_mb']} MB after models and a session; "
        f"{figures['peak_rss_mb']} MB peak with the benchmark's own frames"
    )
    lines.append("precision: " + ", ".join(f"{name} {value}" for name, value in figures["precision"].items())
                 + " (FACEAUTH_INFERENCE_PRECISION)")
    return lines

