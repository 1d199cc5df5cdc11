"""Blink-event bench: the unit is the blink, not the clip (issue 17 part 3).

    .venv/bin/python bench/blink_bench.py [--faces ../shared/faces] [--seed 0] [--quick] [--workers 1]
        [--json]

Every shared single-person clip goes at 10 frames/s through the service's path: each frame as
the browser sends it (640x480, JPEG 80), ``FaceTracker(watch_liveness=False)`` following the
face while the liveness tracker does not need the detector, and a ``LivenessTracker`` that
counts every blink (``stop_at_evidence=False``). A blink is counted on the frame where
``state.blinks`` rises. Counts are matched to the blinks annotated in bench/blink_events.csv
(how they were checked is in its header): a count matches an event when it falls between the
event's start and its end + 0.5 s, one count per event.

Figures: event recall per clip and overall, every missed event named; false blinks (counts
matching no event) per minute of live footage, each placed in the annotated no_blink stretch
it falls in (looking down, wink, talking, head turn...) or "elsewhere"; false blinks on every
synthesised photo attack (face_engine/evaluation/attacks.py) per kind, total and per minute;
for information, the same with recall on screen replays and live variations (their frames
follow the source clip's 10 frames/s timing for the first 120 frames). ``--json`` gives the
same figures and, for every annotated event, whether it matched, the frame it was counted on,
and what the blink signal made of the frames in its window, to derive thresholds from."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from face_engine.evaluation import attacks, processes
from face_engine.liveness import LivenessTracker
from face_engine.pipeline import FaceTracker
from face_engine.video import video_frames

SHARED_FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
EVENTS_FILE = Path(__file__).resolve().parent / "blink_events.csv"
FPS = 10.0
# A blink is counted when the eyes reopen, after the closure the annotation covers: a count up
# to this long after an event's last closed frame still belongs to it.
MATCH_TOLERANCE = 0.5
KINDS = ("blink", "no_blink")
NO_BLINK_NOTES = ("looking_down", "looking_side", "wink", "talking", "head_turn", "squint", "smile",
                  "eyes_shut_long", "closing_at_end")
QUICK_EVERY = 4  # --quick runs every 4th synthesised presentation of each kind


@dataclass(frozen=True)
class Event:
    """One row of blink_events.csv: native frames, inclusive, 0-based."""

    clip: str
    start_frame: int
    end_frame: int
    kind: str
    note: str

    @property
    def label(self) -> str:
        """The no_blink stretch's situation: the note up to its first colon."""
        return self.note.split(":", 1)[0].strip()


def read_events(path: Path = EVENTS_FILE) -> list[Event]:
    """The annotation rows (comment lines start with #; the header row is skipped). Raises
    ValueError on a malformed row."""
    with path.open(newline="") as handle:
        lines = [line for line in handle if line.strip() and not line.startswith("#")]
    events = []
    for number, row in enumerate(csv.DictReader(lines), start=1):
        try:
            event = Event(row["clip"].strip(), int(row["start_frame"]), int(row["end_frame"]),
                          row["kind"].strip(), (row["note"] or "").strip())
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: data row {number} is malformed: {row}") from exc
        events.append(event)
    return events


@dataclass(frozen=True)
class Matching:
    """``matched[i]``: the count that matched event i (None when missed); ``false``: counts
    matching no event."""

    matched: list[float | None]
    false: list[float]


def match_counts(counts: Sequence[float], windows: Sequence[tuple[float, float]],
                 tolerance: float = MATCH_TOLERANCE) -> Matching:
    """Match blink counts (seconds) to events (start, end seconds): a count matches an event
    when start <= count <= end + tolerance, one count per event; extra counts are false.

    Counts are taken in time order. Where the windows of two blinks overlap (blinks under
    0.5 s apart: sadtalker_katiehill at 1 s and 1.3 s), a count goes to the blink that began
    last: a blink is counted as the eyes reopen, after its own closure, so a count during the
    second closure is the second blink's, and the first one, if not counted, is missed."""
    matched: list[float | None] = [None] * len(windows)
    false = []
    for count in sorted(counts):
        open_events = [index for index, (start, end) in enumerate(windows)
                       if matched[index] is None and start <= count <= end + tolerance]
        if open_events:
            matched[max(open_events, key=lambda index: (windows[index][0], -index))] = count
        else:
            false.append(count)
    return Matching(matched, false)


def stretch_of(count: float, stretches: Sequence[tuple[float, float]],
               tolerance: float = MATCH_TOLERANCE) -> int | None:
    """Index of the first no_blink stretch (start, end seconds) a false count falls in, with
    the same tolerance after its end as for blinks (the count comes as the eyes reopen)."""
    for index, (start, end) in enumerate(stretches):
        if start <= count <= end + tolerance:
            return index
    return None


@dataclass
class Run:
    """One stream through the tracker: frames fed, the frame indices where a blink was counted,
    and per frame what the blink signal made of it (when it says: its eyes' opening against
    the open level and its event, e.g. ``closing``, ``rejected:too_long``)."""

    frames: int = 0
    counts: list[int] = field(default_factory=list)
    ratios: list[float | None] = field(default_factory=list)
    signal_events: list[str | None] = field(default_factory=list)


def count_blinks(frames: Iterable[np.ndarray]) -> Run:
    """Feed ``frames`` (as the server receives them) at 10 frames/s through the service's
    tracking path, counting every blink."""
    faces = FaceTracker(watch_liveness=False)
    # Every blink counted (no stop at the first), and without the anti-spoofing check, whose
    # verdict on a real face (liveportrait_d19) would end the measuring: blinks are what counts.
    liveness = LivenessTracker(stop_at_evidence=False, presentation=None, explain=True)
    run, blinks = Run(), 0
    for index, frame in enumerate(frames):
        tracked = faces.analyze(frame, follow=not liveness.needs_detection)
        state = liveness.update(tracked.image, tracked.analysis, index / FPS, gray=tracked.gray,
                                continued=tracked.continued)
        run.counts.extend([index] * (state.blinks - blinks))
        blinks = state.blinks
        # What the blink signal made of the frame (the tracker's trace): the more closed eye's
        # opening against its open level, and its event (closing, blink, rejected:REASON).
        traced = liveness.trace[-1]
        ratios = traced.get("blink_ratios")
        run.ratios.append(round(float(min(ratios)), 3) if ratios else None)
        run.signal_events.append(traced.get("blink_event"))
        liveness.trace.clear()  # one frame at a time is all it reads
        run.frames += 1
    return run


@dataclass(frozen=True)
class Clip:
    """A shared clip: native fps and frame count, and the times (s) of its 10 frames/s samples."""

    path: Path
    fps: float
    frame_count: int
    sample_times: list[float]

    @property
    def name(self) -> str:
        return self.path.name

    def seconds_of(self, frame: int) -> float:
        return frame / self.fps

    def frame_of(self, seconds: float) -> int:
        return round(seconds * self.fps)


def open_clip(path: Path) -> Clip:
    capture = cv2.VideoCapture(str(path))
    try:
        fps, count = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    return Clip(path, fps, count, [t for t, _ in _timed_frames(path)])


def _timed_frames(path: Path) -> Iterator[tuple[float, np.ndarray]]:
    return video_frames(path, fps=FPS)


def score(clip: Clip, events: list[Event], run: Run, times: list[float], variant: str = "") -> dict:
    """Match one run's counts (frame indices, at ``times`` in the source clip) to the clip's
    events that the run covers; the figures and, per event, the data to derive thresholds."""
    covered = times[run.frames - 1] if run.frames else 0.0
    blinks = [event for event in events
              if event.kind == "blink" and clip.seconds_of(event.end_frame) <= covered]
    stretches = [event for event in events if event.kind == "no_blink"
                 and clip.seconds_of(event.start_frame) <= covered]
    counts = [times[index] for index in run.counts]
    windows = [(clip.seconds_of(event.start_frame), clip.seconds_of(event.end_frame)) for event in blinks]
    matching = match_counts(counts, windows)
    sampled = [clip.frame_of(t) for t in times[:run.frames]]
    per_event = []
    for event, (start, end), count in zip(blinks, windows, matching.matched, strict=True):
        inside = [index for index in range(len(sampled)) if start <= times[index] <= end + MATCH_TOLERANCE]
        closed = [index for index in inside if event.start_frame <= sampled[index] <= event.end_frame]
        ratios = [run.ratios[index] for index in closed if run.ratios[index] is not None]
        per_event.append({
            "clip": clip.name, "variant": variant, "start_frame": event.start_frame,
            "end_frame": event.end_frame, "start_s": round(start, 3), "end_s": round(end, 3),
            "note": event.note, "matched": count is not None,
            "counted_s": None if count is None else round(count, 3),
            "counted_frame": None if count is None else clip.frame_of(count),
            # A blink of one native frame at 30 fps is seen at 10 frames/s only if sampled.
            "sampled_frames": len(closed),
            "deepest_ratio": min(ratios) if ratios else None,
            "signal_events": [[round(times[index], 3), run.signal_events[index]] for index in inside
                              if run.signal_events[index]],
        })
    false = []
    for count in matching.false:
        where = stretch_of(count, [(clip.seconds_of(s.start_frame), clip.seconds_of(s.end_frame))
                                   for s in stretches])
        stretch = None if where is None else stretches[where]
        false.append({
            "clip": clip.name, "variant": variant, "counted_s": round(count, 3),
            "counted_frame": clip.frame_of(count),
            "stretch": "elsewhere" if stretch is None else stretch.label,
            "stretch_frames": None if stretch is None else [stretch.start_frame, stretch.end_frame],
            "note": "" if stretch is None else stretch.note,
        })
    return {
        "clip": clip.name, "variant": variant, "frames": run.frames, "minutes": run.frames / FPS / 60,
        "events": len(blinks), "matched": sum(item["matched"] for item in per_event),
        "counts": len(counts), "false": false, "per_event": per_event,
    }


def recall(results: list[dict]) -> dict:
    """Recall over the events of ``results``, and over those a 10 frames/s stream samples."""
    events = [item for result in results for item in result["per_event"]]
    seen = [item for item in events if item["sampled_frames"]]
    matched = sum(item["matched"] for item in events)
    figures = {"events": len(events), "matched": matched,
               "recall": round(matched / len(events), 4) if events else None,
               "sampled_events": len(seen), "sampled_matched": sum(item["matched"] for item in seen)}
    figures["sampled_recall"] = (round(figures["sampled_matched"] / len(seen), 4) if seen else None)
    return figures


def false_rate(results: list[dict]) -> dict:
    """False blinks overall and per minute, and per no_blink situation."""
    minutes = sum(result["minutes"] for result in results)
    false = [item for result in results for item in result["false"]]
    by_stretch: dict[str, int] = {}
    for item in false:
        by_stretch[item["stretch"]] = by_stretch.get(item["stretch"], 0) + 1
    return {"minutes": round(minutes, 3), "false": len(false),
            "per_minute": round(len(false) / minutes, 3) if minutes else None,
            "by_stretch": dict(sorted(by_stretch.items()))}


def run_live(clips: list[Clip], events: list[Event]) -> list[dict]:
    results = []
    for clip in clips:
        run = count_blinks(attacks.browser_frame(frame) for _, frame in _timed_frames(clip.path))
        results.append(score(clip, [e for e in events if e.clip == clip.name], run, clip.sample_times))
        print(f"  {clip.name}: {results[-1]['matched']}/{results[-1]['events']} blinks, "
              f"{len(results[-1]['false'])} false", file=sys.stderr, flush=True)
    return results


def _presentation_run(presentation: attacks.Presentation) -> Run:
    return count_blinks(presentation.stream())


def run_presentations(presentations: list[attacks.Presentation], clips: dict[str, Clip],
                      events: list[Event], workers: int = 1) -> list[dict]:
    """Each presentation's counts; replays and live variations of a clip are scored against its
    events (their n-th frame is the clip's n-th 10 frames/s sample), photo attacks count only."""
    results = []
    runs = processes.map_in_processes(_presentation_run, presentations, workers)
    for number, (presentation, run) in enumerate(zip(presentations, runs, strict=True), start=1):
        clip = clips.get(presentation.source.name) if presentation.at is None else None
        if clip is not None:
            result = score(clip, [e for e in events if e.clip == clip.name], run, clip.sample_times,
                           variant=presentation.kind)
        else:
            result = {"clip": presentation.name, "variant": presentation.kind, "frames": run.frames,
                      "minutes": run.frames / FPS / 60, "events": 0, "matched": 0, "counts": len(run.counts),
                      "false": [{"clip": presentation.name, "variant": presentation.kind,
                                 "counted_s": round(index / FPS, 3), "counted_frame": index,
                                 "stretch": "elsewhere", "stretch_frames": None, "note": ""}
                                for index in run.counts],
                      "per_event": []}
        result["name"] = presentation.name
        results.append(result)
        if number % 25 == 0:
            print(f"  {number}/{len(presentations)}", file=sys.stderr, flush=True)
    return results


def by_kind(results: list[dict]) -> dict:
    """False blinks per attack kind, naming the presentations that had any."""
    return {kind: {"clips": len(group), **false_rate(group),
                   "with_false": sorted(r["name"] for r in group if r["false"])}
            for kind, group in _grouped(results).items()}


def every_nth_per_kind(presentations: list[attacks.Presentation], step: int) -> list[attacks.Presentation]:
    """Every ``step``-th presentation of each kind, in the set's order: a plain slice of a list
    ordered by source then kind would keep only some kinds."""
    seen: dict[str, int] = {}
    chosen = []
    for presentation in presentations:
        if seen.get(presentation.kind, 0) % step == 0:
            chosen.append(presentation)
        seen[presentation.kind] = seen.get(presentation.kind, 0) + 1
    return chosen


def measure(faces: Path, seed: int, quick: bool, workers: int = 1) -> dict:
    events = read_events()
    started = time.perf_counter()
    clips = {path.name: open_clip(path) for path in attacks.live_clips(faces)}
    print(f"live clips ({len(clips)})", file=sys.stderr, flush=True)
    live = run_live(list(clips.values()), events)
    live_seconds = time.perf_counter() - started
    step = QUICK_EVERY if quick else 1
    presentations = attacks.attack_set(faces, seed)
    photo = every_nth_per_kind([p for p in presentations if p.kind in attacks.PHOTO_KINDS], step)
    replays = every_nth_per_kind([p for p in presentations if p.kind in attacks.REPLAY_KINDS], step)
    variations = every_nth_per_kind(attacks.live_set(faces, seed), step)
    sections: dict[str, list[dict]] = {}
    groups = (("photo_attacks", photo), ("screen_replays", replays), ("live_variations", variations))
    for name, group in groups:
        print(f"{name} ({len(group)})", file=sys.stderr, flush=True)
        sections[name] = run_presentations(group, clips, events, workers)
    total = time.perf_counter() - started
    frames = sum(r["frames"] for r in live) + sum(r["frames"] for group in sections.values() for r in group)
    return {
        "quick": quick, "seed": seed, "workers": workers,
        "live": {
            "recall": recall(live), "false": false_rate(live),
            "clips": [{"clip": r["clip"], "events": r["events"], "matched": r["matched"],
                       "counts": r["counts"], "false": len(r["false"]), "minutes": round(r["minutes"], 3)}
                      for r in live],
            "missed": [e for r in live for e in r["per_event"] if not e["matched"]],
            "false_blinks": [f for r in live for f in r["false"]],
            "events": [e for r in live for e in r["per_event"]],
        },
        "photo_attacks": {"presentations": len(photo), **false_rate(sections["photo_attacks"]),
                          "by_kind": by_kind(sections["photo_attacks"])},
        "screen_replays": {"presentations": len(replays), "recall": recall(sections["screen_replays"]),
                           **false_rate(sections["screen_replays"]),
                           "events": [e for r in sections["screen_replays"] for e in r["per_event"]]},
        "live_variations": {
            "presentations": len(variations), "recall": recall(sections["live_variations"]),
            **false_rate(sections["live_variations"]),
            "by_kind": {kind: {"recall": recall(group), **false_rate(group)}
                        for kind, group in _grouped(sections["live_variations"]).items()},
            "missed": [e for r in sections["live_variations"] for e in r["per_event"] if not e["matched"]],
            "false_blinks": [f for r in sections["live_variations"] for f in r["false"]],
            "events": [e for r in sections["live_variations"] for e in r["per_event"]],
        },
        "timing": {"seconds": round(total, 1), "live_seconds": round(live_seconds, 1), "frames": frames,
                   "ms_per_frame": round(1000 * total / max(frames, 1), 2)},
    }


def _grouped(results: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for result in results:
        groups.setdefault(result["variant"], []).append(result)
    return dict(sorted(groups.items()))


def _recall_text(figures: dict) -> str:
    if not figures["events"]:
        return "no events"
    return (f"{figures['matched']}/{figures['events']} = {figures['recall']:.1%} (events with a frame "
            f"sampled at 10 fps: {figures['sampled_matched']}/{figures['sampled_events']})")


def report(figures: dict) -> list[str]:
    live = figures["live"]
    lines = ["live clips: blink events",
             f"{'clip':28s} {'events':>6s} {'found':>5s} {'counts':>6s} {'false':>5s}"]
    for clip in live["clips"]:
        lines.append(f"{clip['clip']:28s} {clip['events']:6d} {clip['matched']:5d} {clip['counts']:6d} "
                     f"{clip['false']:5d}")
    lines.append(f"recall {_recall_text(live['recall'])}")
    lines.append("missed:")
    for event in live["missed"]:
        ratio = "-" if event["deepest_ratio"] is None else f"{event['deepest_ratio']:.2f}"
        lines.append(f"  {event['clip']} frames {event['start_frame']}-{event['end_frame']} "
                     f"({event['start_s']:.2f}-{event['end_s']:.2f} s) sampled {event['sampled_frames']} "
                     f"deepest {ratio} signal {[e for _, e in event['signal_events']]} {event['note']}")
    false = live["false"]
    lines.append(f"false blinks: {false['false']} in {false['minutes']:.2f} min = {false['per_minute']}/min "
                 f"{false['by_stretch']}")
    for item in live["false_blinks"]:
        where = item["stretch"] if item["stretch_frames"] is None else (
            f"{item['stretch']} {item['stretch_frames'][0]}-{item['stretch_frames'][1]}")
        lines.append(f"  {item['clip']} at {item['counted_s']:.2f} s (frame {item['counted_frame']}): "
                     f"{where}")
    photo = figures["photo_attacks"]
    lines.append(f"photo attacks: {photo['presentations']} presentations, {photo['false']} false blinks in "
                 f"{photo['minutes']:.1f} min = {photo['per_minute']}/min")
    for kind, group in photo["by_kind"].items():
        lines.append(f"  {kind:16s} {group['clips']:3d} clips {group['false']:3d} false "
                     f"{group['with_false']}")
    for name in ("screen_replays", "live_variations"):
        section = figures[name]
        lines.append(f"{name.replace('_', ' ')} (information): {section['presentations']} presentations, "
                     f"recall {_recall_text(section['recall'])}, false {section['false']} = "
                     f"{section['per_minute']}/min {section['by_stretch']}")
    for kind, group in figures["live_variations"]["by_kind"].items():
        lines.append(f"  {kind:16s} recall {_recall_text(group['recall'])}, false {group['false']} "
                     f"{group['by_stretch']}")
    timing = figures["timing"]
    lines.append(f"run time {timing['seconds']} s ({timing['frames']} frames, {timing['ms_per_frame']} ms "
                 f"a frame; live clips {timing['live_seconds']} s)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", default=str(SHARED_FACES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help=f"every {QUICK_EVERY}th synthesised presentation only")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for the synthesised presentations (the machine may be shared)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    faces = Path(args.faces)
    if not (faces / "video").is_dir():
        print(f"{faces}/video is absent: nothing to measure", file=sys.stderr)
        return 2
    figures = measure(faces, args.seed, args.quick, args.workers)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print("\n".join(report(figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
