"""A picture of one clip's liveness signals, frame by frame, for an operator or a developer
asking "why was this clip (not) found live?" (``python -m face_engine liveness VIDEO --explain
OUT.png``).

It draws the trace of ``LivenessTracker(explain=True)`` as panels stacked on one time axis,
each with the thresholds that decide it: eye opening against the open level, eye appearance
change at a closure, head shift (aligned frame) against image motion, parallax residual, the
anti-spoofing score, identity checks, and a strip of how each frame's face was found. Vertical
markers label the evidence that counted (blink, 3D movement), the closures rejected and why,
failures and the live verdict. OpenCV only: matplotlib is not a dependency."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from face_engine.liveness.presentation import DEFAULT_PRESENTATION, PresentationConfig
from face_engine.types import LivenessConfig

WIDTH = 1500
LEFT = 150  # room for the axis labels
RIGHT = 150  # room for the threshold labels
PANEL_HEIGHT = 118
PANEL_GAP = 24  # the legend of the panel below sits in it
STRIP_HEIGHT = 26
FONT = cv2.FONT_HERSHEY_SIMPLEX

INK = (40, 40, 40)
GREY = (130, 130, 130)
GRID = (228, 228, 228)
PANEL_BACK = (250, 250, 250)
RIGHT_EYE = (190, 100, 20)  # blue (BGR)
LEFT_EYE = (20, 130, 235)  # orange
GREEN = (40, 150, 40)
RED = (40, 40, 210)
PURPLE = (150, 50, 150)
TEAL = (140, 140, 0)

# Short labels of the blink signal's rejections (docs/liveness.md says them in full).
REJECTION_LABELS = {
    "rejected:no_eye_change": "no eye change",
    "rejected:not_from_open": "not from open",
    "rejected:head_jump": "head jump",
    "rejected:too_long": "too long",
}
# How each frame's face was found, for the bottom strip.
FACE_STATES = {
    "no face": (70, 70, 70),
    "too small": (60, 170, 230),
    "cut off": (150, 120, 230),
    "detected": (200, 150, 60),
    "followed": (120, 200, 120),
}


@dataclass(frozen=True)
class Marker:
    """A vertical line across the panels at ``time`` with a short label."""

    time: float
    label: str
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class _Panel:
    top: int
    height: int
    low: float
    high: float
    ticks: tuple[float, ...]

    def y(self, value: float) -> int:
        share = (min(max(value, self.low), self.high) - self.low) / (self.high - self.low)
        return round(self.top + self.height - share * self.height)


def _text(image: np.ndarray, text: str, at: tuple[int, int], colour: tuple[int, int, int] = INK,
          scale: float = 0.45, thickness: int = 1) -> None:
    cv2.putText(image, text, at, FONT, scale, colour, thickness, cv2.LINE_AA)


def _text_width(text: str, scale: float = 0.45, thickness: int = 1) -> int:
    return cv2.getTextSize(text, FONT, scale, thickness)[0][0]


def _dashed(image: np.ndarray, x0: int, x1: int, y: int, colour: tuple[int, int, int], dash: int = 8) -> None:
    for x in range(x0, x1, dash * 2):
        cv2.line(image, (x, y), (min(x + dash, x1), y), colour, 1, cv2.LINE_AA)


def _vertical_dashed(image: np.ndarray, x: int, y0: int, y1: int, colour: tuple[int, int, int]) -> None:
    for y in range(y0, y1, 10):
        cv2.line(image, (x, y), (x, min(y + 5, y1)), colour, 1, cv2.LINE_AA)


def _pair(value: object, index: int) -> float | None:
    """One eye's value of a (right, left) pair, or None."""
    if value is None:
        return None
    return float(value[index])  # type: ignore[index]


def _number(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def face_state(entry: dict) -> str:
    """How a trace entry's face was found: no face, too small, cut off by the picture's edge
    (``partially_visible``, when the caller added it: no evidence either), detected or followed."""
    if not entry.get("face"):
        return "no face"
    if entry.get("too_small"):
        return "too small"
    if entry.get("partially_visible"):
        return "cut off"
    return "detected" if entry.get("detected", True) else "followed"


def markers(trace: Sequence[dict], config: LivenessConfig) -> list[Marker]:
    """Where evidence was counted or rejected, a failure came, and the session turned live.
    3D frames are marked up to the ``parallax_frames`` the verdict needs (a whole clip counted
    without stopping has dozens; the parallax panel marks them all). An entry's ``live`` (when
    the caller added it) says when the session was live; without it the passive rule is applied
    (a blink, head movement, the anti-spoofing "live", no failure). In the active mode the
    entries' ``challenge`` (the one shown) and ``challenges_passed`` mark prompts and passes."""
    found: list[Marker] = []
    blinks = parallax = passed = 0
    failure = shown = None
    live = False
    for entry in trace:
        now = float(entry["time"])
        if entry.get("challenge") and entry["challenge"] != shown:
            found.append(Marker(now, f"asked: {entry['challenge']}", INK))
        shown = entry.get("challenge")
        if entry.get("challenges_passed", 0) > passed:
            found.append(Marker(now, "passed", GREEN))
        passed = entry.get("challenges_passed", 0)
        event = entry.get("blink_event")
        if entry.get("blinks", 0) > blinks:
            found.append(Marker(now, "blink", GREEN))
        elif event in REJECTION_LABELS:
            found.append(Marker(now, REJECTION_LABELS[event], RED))
        if parallax < entry.get("parallax_frames", 0) and parallax < config.parallax_frames:
            found.append(Marker(now, "3D", TEAL))
        blinks, parallax = entry.get("blinks", 0), entry.get("parallax_frames", 0)
        if entry.get("failure") and failure is None:
            failure = entry["failure"]
            found.append(Marker(now, f"failed: {failure}", PURPLE))
        if "live" in entry:
            now_live = bool(entry["live"])
        else:
            now_live = (blinks > 0 and parallax >= config.parallax_frames and not entry.get("failure")
                        and entry.get("presentation") == "live")
        if now_live and not live:
            found.append(Marker(now, "LIVE", GREEN))
        live = now_live
    return found


def draw(
    trace: list[dict], config: LivenessConfig, presentation: PresentationConfig = DEFAULT_PRESENTATION, *,
    title: str,
) -> np.ndarray:
    """The trace of one clip as a BGR image: a title line, the event labels, seven panels on
    one time axis and the time axis itself. ``trace`` is ``LivenessTracker.trace`` (entries may
    carry ``detected``, from the face tracker, and ``live``, the session's verdict)."""
    times = [float(entry["time"]) for entry in trace]
    start = times[0] if times else 0.0
    end = max(times[-1] if times else 1.0, start + 0.5)
    step = end - start
    frame_width = (WIDTH - LEFT - RIGHT) / max(len(trace), 1)

    def x(time: float) -> int:
        return round(LEFT + (time - start) / step * (WIDTH - LEFT - RIGHT - frame_width) + frame_width / 2)

    found = markers(trace, config)
    label_rows = _label_rows(found, x)
    header = 100 + 18 * max(label_rows.values(), default=-1)  # the labels' rows, then a legend
    # Each panel: name lines, value range (values beyond it sit on its edge), y ticks, painter.
    specs: list[tuple[tuple[str, ...], _Panel, Callable[[np.ndarray, _Panel], None]]] = [
        (("eye opening", "/ open level"), _Panel(0, PANEL_HEIGHT, 0.0, 1.25, (0.0, 0.5, 1.0)),
         lambda img, p: _eye_ratios(img, p, trace, config, x)),
        (("eye look", "change", "(1 - NCC)"), _Panel(0, PANEL_HEIGHT, 0.0, 1.0, (0.0, 0.5, 1.0)),
         lambda img, p: _eye_changes(img, p, trace, config, x)),
        (("movement", "(eye distances", "per frame)"), _Panel(0, PANEL_HEIGHT, 0.0, 0.5, (0.0, 0.25, 0.5)),
         lambda img, p: _movement(img, p, trace, config, x)),
        (("parallax", "residual", "(eye distances)"), _Panel(0, PANEL_HEIGHT, 0.0, 0.2, (0.0, 0.1, 0.2)),
         lambda img, p: _parallax(img, p, trace, config, x)),
        (("anti-spoofing", "score (mean", "P(real))"), _Panel(0, PANEL_HEIGHT, 0.0, 1.05, (0.0, 0.5, 1.0)),
         lambda img, p: _presentation(img, p, trace, presentation, x)),
        (("identity", "(cosine)"), _Panel(0, PANEL_HEIGHT, -0.2, 1.05, (0.0, 0.5, 1.0)),
         lambda img, p: _identity(img, p, trace, config, x)),
    ]
    height = header + len(specs) * (PANEL_HEIGHT + PANEL_GAP) + STRIP_HEIGHT + 74
    image = np.full((height, WIDTH, 3), 255, np.uint8)
    _text(image, title, (16, 26), INK, 0.62, 2)
    _text(image, _counts(trace), (16, 50), GREY, 0.48)

    top = header
    panels: list[_Panel] = []
    for name, shape, paint in specs:
        panel = replace(shape, top=top)
        _frame(image, panel, name, x, start, end)
        paint(image, panel)
        panels.append(panel)
        top += PANEL_HEIGHT + PANEL_GAP
    strip_top = top
    _strip(image, strip_top, trace, x, frame_width)
    bottom = strip_top + STRIP_HEIGHT
    _time_axis(image, bottom, start, end, x)

    # Event markers over every panel, labelled at the top in rows that do not overlap.
    for marker in found:
        column = x(marker.time)
        row = label_rows[id(marker)]
        label_y = 58 + 18 * row + 12
        _vertical_dashed(image, column, label_y + 4, bottom, marker.colour)
        _text(image, marker.label, (_label_left(column, marker.label), label_y), marker.colour, 0.45, 1)
    return image


def write(path: str | Path, trace: list[dict], config: LivenessConfig,
          presentation: PresentationConfig = DEFAULT_PRESENTATION, *, title: str) -> Path:
    """Draw the trace and save it as a PNG at ``path``; returns the path."""
    path = Path(path)
    if not cv2.imwrite(str(path), draw(trace, config, presentation, title=title)):
        raise OSError(f"{path}: the picture could not be written")
    return path


def _counts(trace: Sequence[dict]) -> str:
    """The second title line: frames, how the face was found, and the final counts."""
    if not trace:
        return "no frames"
    states = [face_state(entry) for entry in trace]
    found = ", ".join(f"{name} {states.count(name)}" for name in FACE_STATES if states.count(name))
    last = trace[-1]
    score = last.get("presentation_score")
    return (f"{len(trace)} frames ({found}); blinks {last.get('blinks', 0)}, 3D frames "
            f"{last.get('parallax_frames', 0)}, anti-spoofing {last.get('presentation')}"
            + (f" ({score:.2f})" if score is not None else ""))


def _label_left(column: int, text: str, scale: float = 0.45) -> int:
    """Where a label of the line at ``column`` starts: right of it, or left of it when it
    would run off the picture."""
    width = _text_width(text, scale)
    return column + 3 if column + 3 + width < WIDTH - 4 else column - 3 - width


def _label_rows(found: Sequence[Marker], x: Callable[[float], int]) -> dict[int, int]:
    """A row for each marker's label so that labels on one row do not overlap."""
    ends: list[int] = []  # the right end of the last label on each row
    rows: dict[int, int] = {}
    for marker in sorted(found, key=lambda marker: _label_left(x(marker.time), marker.label)):
        left = _label_left(x(marker.time), marker.label)
        right = left + _text_width(marker.label) + 6
        for row, end in enumerate(ends):
            if left > end:
                ends[row] = right
                rows[id(marker)] = row
                break
        else:
            ends.append(right)
            rows[id(marker)] = len(ends) - 1
    return rows


def _frame(image: np.ndarray, panel: _Panel, name: Sequence[str], x: Callable[[float], int],
           start: float, end: float) -> None:
    """The panel's box, its name, its y ticks and the time grid."""
    bottom = panel.top + panel.height
    cv2.rectangle(image, (LEFT, panel.top), (WIDTH - RIGHT, bottom), PANEL_BACK, -1)
    for tick in _ticks(start, end):
        cv2.line(image, (x(tick), panel.top), (x(tick), bottom), GRID, 1)
    for value in panel.ticks:
        y = panel.y(value)
        cv2.line(image, (LEFT - 4, y), (LEFT, y), INK, 1)
        cv2.line(image, (LEFT, y), (WIDTH - RIGHT, y), GRID, 1)
        label = f"{value:g}"
        _text(image, label, (LEFT - 8 - _text_width(label, 0.4), y + 4), GREY, 0.4)
    cv2.rectangle(image, (LEFT, panel.top), (WIDTH - RIGHT, bottom), GREY, 1)
    for index, line in enumerate(name):
        _text(image, line, (10, panel.top + 16 + 17 * index), INK if index == 0 else GREY, 0.47, 1)


def _ticks(start: float, end: float) -> list[float]:
    span = end - start
    every = next(step for step in (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0) if span / step <= 16)
    first = np.ceil(start / every) * every
    return [float(value) for value in np.arange(first, end + 1e-9, every)]


def _threshold(image: np.ndarray, panel: _Panel, value: float, label: str,
               colour: tuple[int, int, int] = RED) -> None:
    y = panel.y(value)
    _dashed(image, LEFT, WIDTH - RIGHT, y, colour)
    _text(image, f"{label} {value:g}", (WIDTH - RIGHT + 6, y + 4), colour, 0.42)


def _legend(image: np.ndarray, panel: _Panel, items: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
    """Series names in their colours above the panel, clear of its data."""
    left = LEFT + 2
    for name, colour in items:
        _text(image, name, (left, panel.top - 6), colour, 0.42)
        left += _text_width(name, 0.42) + 18


def _series(image: np.ndarray, panel: _Panel, points: Sequence[tuple[float, float | None]],
            colour: tuple[int, int, int], x: Callable[[float], int], *, dots: bool = False,
            shift: int = 0) -> None:
    """A line through consecutive values (broken where a value is missing), or dots (``shift``
    pixels aside, so that two series' equal values both show)."""
    previous: tuple[int, int] | None = None
    for time, value in points:
        if value is None:
            previous = None
            continue
        point = (x(time) + shift, panel.y(value))
        if dots:
            cv2.circle(image, point, 4, colour, -1, cv2.LINE_AA)
        elif previous is not None:
            cv2.line(image, previous, point, colour, 2, cv2.LINE_AA)
        else:
            cv2.circle(image, point, 2, colour, -1, cv2.LINE_AA)
        previous = point


def _eye_ratios(image: np.ndarray, panel: _Panel, trace: Sequence[dict], config: LivenessConfig,
                x: Callable[[float], int]) -> None:
    _threshold(image, panel, config.close_ratio, "close")
    _threshold(image, panel, config.open_ratio, "open", GREEN)
    for index, colour in ((0, RIGHT_EYE), (1, LEFT_EYE)):
        _series(image, panel, [(e["time"], _pair(e.get("blink_ratios"), index)) for e in trace], colour, x)
    # Where the eyes went below their open level (the first "closing" frame): a ring on the
    # lower eye.
    previous = None
    for entry in trace:
        ratios, event = entry.get("blink_ratios"), entry.get("blink_event")
        if event == "closing" and previous != "closing" and ratios is not None:
            cv2.circle(image, (x(entry["time"]), panel.y(min(ratios))), 7, INK, 1, cv2.LINE_AA)
        previous = event
    _legend(image, panel, [("right eye", RIGHT_EYE), ("left eye", LEFT_EYE), ("o closure began", INK)])


def _eye_changes(image: np.ndarray, panel: _Panel, trace: Sequence[dict], config: LivenessConfig,
                 x: Callable[[float], int]) -> None:
    _threshold(image, panel, config.min_look_change, "floor")
    # What each judged dip needed (the floor, or more on a noisy stream): a grey dash.
    for entry in trace:
        needed = entry.get("blink_needed")
        if needed is not None:
            centre, level = x(entry["time"]), panel.y(needed[0])
            cv2.line(image, (centre - 7, level), (centre + 7, level), GREY, 2, cv2.LINE_AA)
    for index, colour in ((0, RIGHT_EYE), (1, LEFT_EYE)):
        _series(image, panel, [(e["time"], _pair(e.get("eye_changes"), index)) for e in trace], colour, x,
                dots=True, shift=4 * index - 2)
    _legend(image, panel, [("right eye", RIGHT_EYE), ("left eye", LEFT_EYE),
                           ("- needed (at dips only)", GREY)])


def _movement(image: np.ndarray, panel: _Panel, trace: Sequence[dict], config: LivenessConfig,
              x: Callable[[float], int]) -> None:
    _threshold(image, panel, config.max_blink_head_shift, "head jump")
    _series(image, panel, [(e["time"], _number(e.get("image_motion"))) for e in trace], GREY, x)
    _series(image, panel, [(e["time"], _number(e.get("head_shift"))) for e in trace], PURPLE, x, dots=True)
    _legend(image, panel, [("image motion (camera + head)", GREY),
                           ("head shift, aligned (at closures)", PURPLE)])


def _parallax(image: np.ndarray, panel: _Panel, trace: Sequence[dict], config: LivenessConfig,
              x: Callable[[float], int]) -> None:
    _threshold(image, panel, config.min_parallax, "min")
    _series(image, panel, [(e["time"], _number(e.get("parallax_residual"))) for e in trace], TEAL, x)
    counted = 0
    for entry in trace:
        if entry.get("parallax_frames", 0) > counted:
            value = _number(entry.get("parallax_residual"))
            point = (x(entry["time"]), panel.y(value if value is not None else config.min_parallax))
            cv2.drawMarker(image, point, GREEN, cv2.MARKER_DIAMOND, 14, 2, cv2.LINE_AA)
        counted = entry.get("parallax_frames", 0)
    _legend(image, panel, [("residual", TEAL), ("<> counted as 3D", GREEN), ("(top = 0.2 or more)", GREY)])


def _presentation(image: np.ndarray, panel: _Panel, trace: Sequence[dict], config: PresentationConfig,
                  x: Callable[[float], int]) -> None:
    _threshold(image, panel, config.threshold, "threshold")
    _series(image, panel, [(e["time"], _number(e.get("presentation_score"))) for e in trace], INK, x)
    verdict = trace[-1].get("presentation", "undecided") if trace else "undecided"
    colour = {"live": GREEN, "attack": RED}.get(verdict, GREY)
    _legend(image, panel, [("mean real-probability", INK), (f"verdict: {verdict}", colour)])
    decided = next((e for e in trace if e.get("presentation") in ("live", "attack")), None)
    if decided is not None:
        column = x(decided["time"])
        cv2.line(image, (column, panel.top), (column, panel.top + panel.height), colour, 2)
        label = f"decided: {verdict}"
        left = column + 4 if column + 4 + _text_width(label, 0.42) < WIDTH - RIGHT else \
            column - 4 - _text_width(label, 0.42)
        _text(image, label, (left, panel.top + panel.height - 8), colour, 0.42)


def _identity(image: np.ndarray, panel: _Panel, trace: Sequence[dict], config: LivenessConfig,
              x: Callable[[float], int]) -> None:
    _threshold(image, panel, config.same_person_min, "same person")
    checks = 0
    for entry in trace:
        value = _number(entry.get("identity"))
        if value is not None:
            checks += 1
            colour = GREEN if value >= config.same_person_min else RED
            cv2.circle(image, (x(entry["time"]), panel.y(value)), 5, colour, -1, cv2.LINE_AA)
    # The first check of a face has no one to compare with: only later checks are dots.
    note = (f"{checks} check{'s' if checks > 1 else ''}" if checks
            else "no check compared yet (the first one sets the person)")
    _legend(image, panel, [("checks against the person seen so far", INK), (note, GREY)])


def _strip(image: np.ndarray, top: int, trace: Sequence[dict], x: Callable[[float], int],
           frame_width: float) -> None:
    """One cell per frame: how its face was found."""
    half = max(frame_width / 2, 1.0)
    for entry in trace:
        column = x(entry["time"])
        colour = FACE_STATES[face_state(entry)]
        cv2.rectangle(image, (round(column - half), top), (round(column + half), top + STRIP_HEIGHT),
                      colour, -1)
    cv2.rectangle(image, (LEFT, top), (WIDTH - RIGHT, top + STRIP_HEIGHT), GREY, 1)
    _text(image, "face", (10, top + 18), INK, 0.47)
    left = WIDTH - RIGHT + 6
    for index, (name, colour) in enumerate(FACE_STATES.items()):
        row_y = top - 34 + 13 * index
        cv2.rectangle(image, (left, row_y - 8), (left + 10, row_y + 1), colour, -1)
        _text(image, name, (left + 14, row_y + 1), INK, 0.38)


def _time_axis(image: np.ndarray, top: int, start: float, end: float, x: Callable[[float], int]) -> None:
    for tick in _ticks(start, end):
        column = x(tick)
        cv2.line(image, (column, top), (column, top + 5), INK, 1)
        label = f"{tick:g}"
        _text(image, label, (column - _text_width(label, 0.42) // 2, top + 22), INK, 0.42)
    label = "time (s)"
    _text(image, label, ((LEFT + WIDTH - RIGHT - _text_width(label)) // 2, top + 44), INK, 0.5)
