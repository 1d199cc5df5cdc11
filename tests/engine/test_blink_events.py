"""The blink-event annotations (bench/blink_events.csv) and the bench's matching of counted
blinks to them (bench/blink_bench.py). No recall threshold here: the detector is changing, the
bench prints its figures."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import pytest

from tests.bench_scripts import load_bench_script

bench = load_bench_script("blink_bench.py", "blink_bench")
EVENTS = bench.read_events()


def test_rows_are_well_formed() -> None:
    assert EVENTS, "no annotation rows"
    for event in EVENTS:
        assert event.clip.endswith(".mp4") and "hamilton" not in event.clip, event
        assert event.kind in bench.KINDS, event
        assert 0 <= event.start_frame <= event.end_frame, event
        if event.kind == "no_blink":
            assert event.label in bench.NO_BLINK_NOTES, f"say what happens in {event}"


def test_rows_of_a_clip_do_not_overlap() -> None:
    by_clip: dict[str, list] = defaultdict(list)
    for event in EVENTS:
        by_clip[event.clip].append(event)
    for clip, events in by_clip.items():
        ordered = sorted(events, key=lambda event: event.start_frame)
        for before, after in zip(ordered, ordered[1:], strict=False):
            assert before.end_frame < after.start_frame, f"{clip}: {before} overlaps {after}"


def test_every_clip_exists_and_every_range_is_inside_it(faces_dir: Path) -> None:
    video = faces_dir / "video"
    counts = {}
    for name in sorted({event.clip for event in EVENTS}):
        path = video / name
        assert path.is_file(), f"{name} is not in {video}"
        capture = cv2.VideoCapture(str(path))
        counts[name] = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
    for event in EVENTS:
        assert event.end_frame < counts[event.clip], f"{event} ends past frame {counts[event.clip] - 1}"
    # Every single-person clip is annotated (the Hamilton clip shows several actors).
    single = {path.name for path in video.glob("*.mp4") if "hamilton" not in path.name}
    assert single <= set(counts), f"clips without annotation: {sorted(single - set(counts))}"


def test_counts_match_inside_the_window_and_its_tolerance() -> None:
    windows = [(1.0, 1.2), (5.0, 5.3)]
    matching = bench.match_counts([0.9, 1.1, 5.8, 9.0], windows)
    assert matching.matched == [1.1, 5.8]  # 5.8 = end + 0.5: still the event's
    assert matching.false == [0.9, 9.0]  # before the start; long after the end


def test_counts_just_past_the_tolerance_are_false() -> None:
    matching = bench.match_counts([1.75], [(1.0, 1.2)])
    assert matching.matched == [None]
    assert matching.false == [1.75]


def test_one_count_per_event_extra_counts_are_false() -> None:
    matching = bench.match_counts([1.3, 1.1, 1.5], [(1.0, 1.2)])  # order of the counts does not matter
    assert matching.matched == [1.1]
    assert matching.false == [1.3, 1.5]


def test_a_count_in_overlapping_windows_goes_to_the_blink_that_began_last() -> None:
    # Two blinks 0.3 s apart: one count during the second closure is the second blink's.
    matching = bench.match_counts([1.45], [(1.0, 1.1), (1.3, 1.4)])
    assert matching.matched == [None, 1.45]
    assert matching.false == []
    # Two counts: each blink gets one.
    matching = bench.match_counts([1.15, 1.45], [(1.0, 1.1), (1.3, 1.4)])
    assert matching.matched == [1.15, 1.45]


def test_no_events_makes_every_count_false() -> None:
    assert bench.match_counts([0.5, 2.0], []).false == [0.5, 2.0]
    assert bench.match_counts([], [(1.0, 1.2)]).matched == [None]


def test_false_counts_are_placed_in_the_no_blink_stretch_they_fall_in() -> None:
    stretches = [(2.0, 3.0), (6.0, 6.5)]
    assert bench.stretch_of(2.5, stretches) == 0
    assert bench.stretch_of(3.4, stretches) == 0  # the eyes reopen just after the stretch
    assert bench.stretch_of(6.1, stretches) == 1
    assert bench.stretch_of(4.0, stretches) is None


def test_score_on_a_synthetic_sequence() -> None:
    """A 30 fps clip sampled at 10 frames/s: blinks at frames 30-33 and 90-92, a look down at
    frames 150-210; counts at samples 11 (blink 1), 12 (a double count), 55 (the look down)
    and 80 (elsewhere); blink 2 is missed. Frames 30 and 33 of blink 1 are sampled."""
    clip = bench.Clip(Path("synthetic.mp4"), 30.0, 300, [index / 10 for index in range(100)])
    events = [
        bench.Event("synthetic.mp4", 30, 33, "blink", ""),
        bench.Event("synthetic.mp4", 90, 92, "blink", "new"),
        bench.Event("synthetic.mp4", 150, 210, "no_blink", "looking_down: lids lowered"),
    ]
    run = bench.Run(frames=100, counts=[11, 12, 55, 80], ratios=[None] * 100, signal_events=[None] * 100)
    result = bench.score(clip, events, run, clip.sample_times)
    assert (result["events"], result["matched"], result["counts"]) == (2, 1, 4)
    first, second = result["per_event"]
    assert first["matched"] and first["counted_frame"] == 33 and first["sampled_frames"] == 2
    assert not second["matched"] and second["counted_frame"] is None
    assert [(item["counted_frame"], item["stretch"]) for item in result["false"]] == [
        (36, "elsewhere"), (165, "looking_down"), (240, "elsewhere"),
    ]
    assert bench.recall([result])["recall"] == 0.5
    assert bench.false_rate([result])["by_stretch"] == {"elsewhere": 2, "looking_down": 1}


def test_a_malformed_row_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("# comment\nclip,start_frame,end_frame,kind,note\nx.mp4,ten,12,blink,\n")
    with pytest.raises(ValueError, match="malformed"):
        bench.read_events(path)
