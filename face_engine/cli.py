"""Command line: ``python -m face_engine COMMAND`` (detect, compare, liveness, liveness-eval,
attacks, pairs, calibrate, bench, pad-eval).

Output is JSON on stdout. Exit codes: 0 done (whatever the verdict), 2 an input could not
be used (message on stderr)."""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from itertools import islice
from pathlib import Path

import numpy as np

from face_engine.challenge import ActiveLivenessState, ChallengeTracker, draw_challenges
from face_engine.decode import ALL_FORMATS, FILE_LIMITS, decode
from face_engine.detect import detect, landmarks
from face_engine.embed import embed, similarity
from face_engine.errors import FaceEngineError, ImageError, NoFaceError
from face_engine.evaluation import attacks, benchmark, explain, liveness_eval, pad_eval
from face_engine.evaluation.calibration import calibrate_levels, pair_scores, shared_faces_samples
from face_engine.liveness import LivenessTracker
from face_engine.matching import DEFAULT_LEVEL, LEVELS
from face_engine.quality import quality
from face_engine.types import LivenessState

SHARED_FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"


def load_image(path: str | Path) -> np.ndarray:
    """Read and decode an image file (raises ImageError)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: {exc.strerror or exc}") from exc
    try:
        # An operator's own files: every format OpenCV reads safely (WebP, BMP, TIFF too).
        return decode(data, limits=FILE_LIMITS, formats=ALL_FORMATS)
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


def _threshold(args: argparse.Namespace) -> float:
    """--threshold when given, else the threshold of --level."""
    return LEVELS[args.level].threshold if args.threshold is None else args.threshold


def command_compare(args: argparse.Namespace) -> dict:
    score = similarity(embed_file(args.image_a), embed_file(args.image_b))
    threshold = _threshold(args)
    return {"similarity": round(score, 4), "match": score >= threshold, "threshold": threshold,
            "level": None if args.threshold is not None else args.level}


def _verdict_line(state: LivenessState | ActiveLivenessState, passive: LivenessTracker,
                  live_at: int | None) -> str:
    """The verdict in words, for the explanation's title."""
    if state.live:
        return "LIVE" if live_at == state.frames else f"LIVE (from frame {live_at})"
    if state.failure:
        why = state.failure
    elif state.missing:
        why = "missing " + ", ".join(state.missing)
    else:
        why = f"anti-spoofing {passive.presentation_verdict}"
    return f"not live ({why})" + (f", was live at frame {live_at}" if live_at else "")


def _frame_count(text: str) -> int:
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return count


def command_liveness(args: argparse.Namespace) -> dict:
    # The service's path (liveness_eval.session_frames): the face followed between detections,
    # stop_at_evidence in passive mode, and the session's verdict at the first live or failed frame.
    # --challenge SEED: the active mode, the clip played straight against the drawn prompts.
    if args.explain is not None and not Path(args.explain).resolve().parent.is_dir():
        raise ImageError(f"{args.explain}: no such folder for the picture")  # before the clip's work
    drawn = draw_challenges(random.Random(args.challenge)) if args.challenge is not None else None
    passive = LivenessTracker(stop_at_evidence=drawn is None and not args.whole_clip,
                              explain=args.explain is not None)
    tracker = ChallengeTracker(passive, drawn) if drawn else passive
    frames = liveness_eval.file_frames(Path(args.video), args.fps)
    if args.max_frames is not None:
        frames = islice(frames, args.max_frames)
    state, live_at = None, None
    for step in liveness_eval.session_frames(frames, tracker, fps=args.fps,
                                             face_tracking=not args.detect_every_frame):
        state = step.state
        if passive.trace is not None:
            # How the face was found, which the tracker does not know, and the session's verdict.
            passive.trace[-1].update(
                detected=step.tracked.detected, live=state.live,
                partially_visible="partially_visible" in step.tracked.analysis.quality.codes,
            )
            if isinstance(state, ActiveLivenessState):  # the prompts, and a challenge's failure
                passive.trace[-1].update(challenge=state.challenge.code if state.challenge else None,
                                         challenges_passed=len(state.passed), failure=state.failure)
        if state.live and live_at is None:
            live_at = state.frames
        if (state.live or state.failure) and not args.whole_clip:
            break  # the session's verdict: the service ends it here (a live one once its samples are in)
    if state is None:
        raise ImageError(f"{args.video}: no frames could be read")
    result = {
        "live": state.live,
        "blinks": state.blinks,
        "head_motion": state.head_motion,
        "frames": state.frames,
        "same_person": state.same_person,
        "failure": state.failure,
        "presentation": passive.presentation_verdict,
        "live_at_frame": live_at,
    }
    if drawn:
        result["mode"] = "active"
        result["challenges"] = {"seed": args.challenge, "drawn": drawn, "passed": list(state.passed),
                                "failure": state.failure}
    if args.explain is not None:
        passive_state = state.passive if isinstance(state, ActiveLivenessState) else state
        # The active mode's verdict and failure (a challenge's) are the session's.
        result["explanation"] = {**passive.explanation.as_dict(passive_state),
                                 "live": state.live, "failure": state.failure}
        title = f"{Path(args.video).name} at {args.fps:g} fps: {_verdict_line(state, passive, live_at)}"
        if drawn:
            title += f"; challenges {', '.join(drawn)}: {len(state.passed)} passed"
        if args.whole_clip:
            title += "; whole clip, every blink counted"
        try:
            explain.write(args.explain, passive.trace or [], passive.config, title=title)
        except OSError as exc:
            raise ImageError(str(exc)) from exc
        result["picture"] = str(args.explain)
    return result


def command_liveness_eval(args: argparse.Namespace) -> None:
    try:
        rows = liveness_eval.read_manifest(Path(args.manifest))
    except (OSError, ValueError) as exc:
        raise ImageError(str(exc)) from exc
    results = []
    for path, label, note in rows:
        result = liveness_eval.evaluate(str(path), label, note, liveness_eval.file_frames(path, args.fps),
                                        fps=args.fps, max_frames=args.max_frames)
        results.append(result)
        print(json.dumps(result.as_dict()), flush=True)
    print(json.dumps(liveness_eval.summary(results)))


def command_pad_eval(args: argparse.Namespace) -> None:
    models = pad_eval.MODEL_CHOICES[args.models]
    try:
        frames = pad_eval.read_labels(Path(args.labels), Path(args.root) if args.root else None)
    except (OSError, KeyError, ValueError) as exc:
        raise ImageError(f"{args.labels}: {exc}") from exc
    threshold = pad_eval.default_threshold(args.models, judged_only=args.judgeable) \
        if args.threshold is None else args.threshold
    calibrating = args.calibrate_bpcer is not None
    results = []
    for frame in frames:
        result = pad_eval.score_frame(frame, models)
        results.append(result)
        if not calibrating:  # with calibration the threshold is known only at the end
            print(json.dumps(result.as_dict(threshold, models)), flush=True)
    if calibrating:
        judged = [r for r in results if r.judgeable] if args.judgeable else results
        try:
            threshold = pad_eval.calibrate(judged, args.calibrate_bpcer, models)
        except ValueError as exc:
            raise ImageError(str(exc)) from exc
        for result in results:
            print(json.dumps(result.as_dict(threshold, models)))
        print(json.dumps({"calibration": True, "target_bpcer": args.calibrate_bpcer, "models": args.models,
                          "threshold": threshold, "auc": pad_eval.auc(judged, models),
                          "auc_by_type": {kind: pad_eval.auc(judged, models, kind)
                                          for kind in pad_eval.ATTACK_TYPES}}))
    print(json.dumps(pad_eval.summary(results, threshold, models, judged_only=args.judgeable)))


def command_attacks(args: argparse.Namespace) -> dict:
    faces = Path(args.faces)
    if not (faces / "video").is_dir():
        raise ImageError(f"{faces} has no video/ folder of live clips")
    presentations = attacks.attack_set(faces, args.seed, args.frames)
    presentations += attacks.live_set(faces, args.seed, args.frames)
    originals = attacks.live_clips(faces)
    manifest = attacks.write_set(presentations, Path(args.out_dir), originals)
    return {"manifest": str(manifest), "clips": len(presentations) + len(originals)}


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

    threshold = _threshold(args)
    counts = {"pairs": 0, "errors": 0, "labelled": 0, "correct": 0,
              "same": 0, "false_non_match": 0, "different": 0, "false_match": 0}
    labelled: dict[bool, list[float]] = {True: [], False: []}
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
            matched = score >= threshold
            line.update(similarity=round(score, 4), match=matched)
            if len(row) > 2 and row[2].strip() in ("0", "1"):
                same = row[2].strip() == "1"
                line["same"] = same
                labelled[same].append(score)
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
            "threshold": threshold,
            "pairs": counts["pairs"],
            "errors": counts["errors"],
            "accuracy": round(counts["correct"] / counts["labelled"], 4),
            "false_match_rate": round(counts["false_match"] / counts["different"], 4)
            if counts["different"] else None,
            "false_non_match_rate": round(counts["false_non_match"] / counts["same"], 4)
            if counts["same"] else None,
            # Each level's threshold recalibrated on these pairs (needs different-person pairs).
            "levels": [row.as_dict() for row in calibrate_levels(
                np.array(labelled[True]), np.array(labelled[False])
            )] if len(labelled[False]) > 1 else None,
        }))


def command_calibrate(args: argparse.Namespace) -> dict:
    faces = Path(args.faces)
    if not (faces / "README.md").is_file():
        raise ImageError(f"{faces} is not the shared faces folder (no README.md)")
    samples = shared_faces_samples(faces, variations=not args.no_variations, clip_fps=args.clip_fps)
    genuine, impostor = pair_scores(np.stack([s.embedding for s in samples]), [s.identity for s in samples])
    kinds = {kind: sum(s.kind == kind for s in samples) for kind in ("photo", "variation", "video")}
    return {
        "data": {"samples": len(samples), "identities": len({s.identity for s in samples}), **kinds,
                 "same_identity_pairs": len(genuine), "different_identity_pairs": len(impostor),
                 "different_identity_mean": round(float(impostor.mean()), 4),
                 "different_identity_std": round(float(impostor.std()), 4),
                 "different_identity_max": round(float(impostor.max()), 4)},
        "levels": [row.as_dict() for row in calibrate_levels(genuine, impostor)],
    }


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
    compare_parser.add_argument("--level", choices=list(LEVELS), default=DEFAULT_LEVEL,
                                help="security level whose threshold decides (default %(default)s)")
    compare_parser.add_argument("--threshold", type=float, help="a cosine threshold instead of --level")
    compare_parser.set_defaults(handler=command_compare)

    liveness_parser = commands.add_parser(
        "liveness", help="liveness of a video, fed as a browser would and judged as the service does",
        description="Liveness of a video clip, played as a browser sends it (640x480 JPEG frames at --fps) "
        "through the service's per-frame path: the face followed between detections, passive sessions "
        "stopping each signal once its evidence is in. The clip stops at the first live verdict, where "
        "the service settles it (it keeps taking frames for samples only; with every signal's evidence "
        "in, later frames would show identity and anti-spoofing checks alone), or at a failure, which "
        "ends the session; a clip with neither plays to its end (or --max-frames). Prints JSON: live, "
        "blinks, head_motion, frames (used), same_person, failure, presentation (the anti-spoofing "
        "verdict), live_at_frame, with --challenge the mode and challenges, with --explain the "
        "explanation and picture.",
    )
    liveness_parser.add_argument("video")
    liveness_parser.add_argument("--fps", type=float, default=10.0)
    liveness_parser.add_argument("--challenge", type=int, metavar="SEED",
                                 help="active mode: play the clip against the challenges drawn from SEED")
    liveness_parser.add_argument("--max-frames", type=_frame_count, metavar="N",
                                 help="stop after N frames, as a session's frame budget does "
                                 "(FACEAUTH_MAX_FRAMES, 120 by default; default here: the whole clip)")
    liveness_parser.add_argument("--whole-clip", action="store_true",
                                 help="play on after the verdict with every blink and 3D frame counted "
                                 "(not the service's path: for looking at a whole clip's signals; the "
                                 "JSON then holds the end's state and live_at_frame the first live frame)")
    liveness_parser.add_argument("--detect-every-frame", action="store_true",
                                 help="run the detector on every frame, as FACEAUTH_FACE_TRACKING=false does")
    liveness_parser.add_argument("--explain", metavar="OUT.png",
                                 help="draw the per-frame signals into this PNG and add the reason codes "
                                 "under \"explanation\"")
    liveness_parser.set_defaults(handler=command_liveness)

    eval_parser = commands.add_parser(
        "liveness-eval", help="APCER/BPCER of passive liveness over a manifest (path,label[,note])"
    )
    eval_parser.add_argument("manifest")
    eval_parser.add_argument("--fps", type=float, default=10.0)
    eval_parser.add_argument("--max-frames", type=int, default=attacks.MAX_FRAMES,
                             help="the session's frame budget (default %(default)s)")
    eval_parser.set_defaults(handler=command_liveness_eval)

    pad_parser = commands.add_parser(
        "pad-eval", help="per-frame APCER/BPCER of the anti-spoofing score over Replay-Attack style labels"
    )
    pad_parser.add_argument("labels", help="CSV: path,split,client,label,attack_type,support,medium,light")
    pad_parser.add_argument("--root", help="folder the paths are relative to (default: the CSV's folder)")
    pad_parser.add_argument("--models", choices=list(pad_eval.MODEL_CHOICES), default=pad_eval.DEFAULT_CHOICE,
                            help="networks whose real-probabilities are averaged (default %(default)s)")
    pad_parser.add_argument("--threshold", type=float,
                            help="accept at this mean real-probability (default: the calibrated one)")
    pad_parser.add_argument("--calibrate-bpcer", type=float, metavar="RATE",
                            help="derive the threshold that refuses at most RATE of the live frames")
    pad_parser.add_argument("--judgeable", action="store_true",
                            help="leave out frames too dark or blurred for the presentation signal")
    pad_parser.set_defaults(handler=command_pad_eval)

    attacks_parser = commands.add_parser(
        "attacks", help="write the synthetic attacks and live variations with a manifest for liveness-eval"
    )
    attacks_parser.add_argument("out_dir")
    attacks_parser.add_argument("--seed", type=int, default=0)
    attacks_parser.add_argument("--faces", default=str(SHARED_FACES),
                                help="the shared faces folder (default: %(default)s)")
    attacks_parser.add_argument("--frames", type=int, default=attacks.MAX_FRAMES, help="frames per clip")
    attacks_parser.set_defaults(handler=command_attacks)

    pairs_parser = commands.add_parser(
        "pairs", help="score image pairs from a CSV (image_a,image_b[,same]) to calibrate the threshold"
    )
    pairs_parser.add_argument("pairs")
    pairs_parser.add_argument("--level", choices=list(LEVELS), default=DEFAULT_LEVEL,
                              help="security level whose threshold decides (default %(default)s)")
    pairs_parser.add_argument("--threshold", type=float, help="a cosine threshold instead of --level")
    pairs_parser.set_defaults(handler=command_pairs)

    calibrate_parser = commands.add_parser(
        "calibrate", help="every labelled pair of the shared faces: thresholds and error rates per level"
    )
    calibrate_parser.add_argument("--faces", default=str(SHARED_FACES),
                                  help="the shared faces folder (default: %(default)s)")
    calibrate_parser.add_argument("--clip-fps", type=float, default=2.0,
                                  help="frames taken per second of video")
    calibrate_parser.add_argument("--no-variations", action="store_true",
                                  help="photos as they are, without generated variations")
    calibrate_parser.set_defaults(handler=command_calibrate)

    bench_parser = commands.add_parser("bench", help="per-stage timings on real frames")
    bench_parser.add_argument("videos", nargs="*", help="video files (default: ../shared/faces/video)")
    bench_parser.add_argument("--frames", type=int, default=60, help="frames taken from each video")
    bench_parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench_parser.set_defaults(handler=command_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("liveness", "liveness-eval") and not 0 < args.fps <= 30:
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
