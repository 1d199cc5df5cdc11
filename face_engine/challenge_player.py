"""Recordings played against the active liveness mode: a person who obeys the prompts, and
replays that cannot. Used by the tests and by ``bench/active_liveness_bench.py``.

- ``index_clip`` cuts a live clip (at 10 frames/s, as a browser sends it) into stretches
  showing each action: a turn or look found from the engine's head pose (it starts near the
  clip's neutral pose and ends where the movement has held past the challenge threshold
  without going further in another direction), a blink where the passive tracker counted one
  when the clip is played straight; and the longest neutral stretch (head still, near the
  clip's median pose). A mirrored copy of the clip gives the opposite turns: a mirrored real
  head is still a real 3D head.
- ``play_obeying``: neutral frames (played back and forth), and after each new prompt a
  reaction delay of 0.5-1 s, then a stretch showing the requested action, held until the
  challenge passes (at most 1.5 s), then neutral again. One clip per run, so the identity
  stays the same.
- ``play_straight``: the clip from its start regardless of prompts, looped within the
  120-frame budget, as a replay on a laptop or phone would run.
- ``screen_replay_frames``: the clip on a simulated phone screen held up to the camera
  (``face_engine.attacks``), played once."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from face_engine.attacks import Presentation, browser_frame
from face_engine.challenge import (
    DEFAULT_CHALLENGE_CONFIG,
    MOVEMENTS,
    ActiveLivenessState,
    ChallengeConfig,
    ChallengeTracker,
)
from face_engine.liveness import LivenessTracker
from face_engine.pipeline import analyze
from face_engine.types import FrameAnalysis
from face_engine.video import video_frames

FPS = 10.0
MAX_FRAMES = 120  # a session's frame budget (FACEAUTH_MAX_FRAMES)
NEUTRAL_TOLERANCE = 5.0  # degrees from the neutral pose that still count as "at rest"
NEUTRAL_FRAMES = 8  # the rest stretch lasts at least 0.8 s
ACTION_MARGIN = 1.0  # an indexed movement exceeds the challenge threshold by this much
MAX_ACTION_FRAMES = 8  # a movement reaches its threshold within 0.8 s of leaving neutral
# Footage played before an action, so the passive signals (tracked points, the eyes' open
# level) follow the clip continuously into it, as they would a person.
LEAD_IN_FRAMES = 8
REACTION_SECONDS = (0.5, 1.0)
MIRROR_MAX_YAW = 5.0  # degrees from frontal of a clip's rest pose for mirrored turns
HOLD_SECONDS = 1.5  # how long the player holds a finished movement waiting for the pass
_UNRELIABLE_POSE = frozenset({"partially_visible", "too_small"})
YawPitch = tuple[float, float]  # head pose in degrees


@dataclass(frozen=True, eq=False)
class Frame:
    """A frame as the server receives it and its analysis (computed once, reused by every run)."""

    image: np.ndarray
    analysis: FrameAnalysis

    @property
    def pose(self) -> YawPitch | None:
        marks = self.analysis.landmarks
        if marks is None or self.analysis.face is None or _UNRELIABLE_POSE & set(self.analysis.quality.codes):
            return None
        return (marks.pose.yaw, marks.pose.pitch)


@dataclass(frozen=True, eq=False)
class Stretch:
    """Consecutive frames showing one action; ``where`` names them for people."""

    action: str
    frames: tuple[Frame, ...]
    where: str
    held_from: int = 0  # first frame of the action's peak (past the threshold), held after it


@dataclass
class ClipIndex:
    """A clip cut into a neutral stretch and stretches per action."""

    path: Path
    frames: list[Frame]
    neutral: tuple[Frame, ...]
    neutral_pose: YawPitch
    stretches: dict[str, list[Stretch]] = field(default_factory=dict)  # those that register
    found: dict[str, list[Stretch]] = field(default_factory=dict)

    def covers(self, codes: Sequence[str]) -> bool:
        return bool(self.neutral) and all(self.stretches.get(code) for code in codes)

    def summary(self) -> dict:
        return {
            "clip": self.path.name,
            "neutral": f"{len(self.neutral)} frames",
            "neutral_pose": [round(value, 1) for value in self.neutral_pose],
            **{code: {"registers": [stretch.where for stretch in self.stretches.get(code, [])],
                      "too_weak": [stretch.where for stretch in self.found.get(code, [])
                                   if stretch not in self.stretches.get(code, [])]}
               for code in (*MOVEMENTS, "blink")},
        }


@dataclass(frozen=True)
class RunResult:
    """How one played session ended."""

    drawn: tuple[str, ...]
    passed: tuple[str, ...]
    live: bool
    failure: str | None  # the tracker's failure, or "ended" when the frames ran out first
    frames: int


def clip_frames(path: Path, *, fps: float = FPS, mirror: bool = False) -> list[Frame]:
    """Every frame of ``path`` at ``fps`` as the browser would send it (640x480 JPEG),
    mirrored left-right if asked, with its analysis."""
    frames = []
    for _, image in video_frames(path, fps=fps):
        sent = browser_frame(cv2.flip(image, 1) if mirror else image)
        frames.append(Frame(sent, analyze(sent)))
    return frames


def screen_replay_frames(path: Path, *, seed: int = 0, frames: int = MAX_FRAMES) -> list[Frame]:
    """The clip played once on a simulated phone screen (face_engine.attacks), analysed."""
    stream = Presentation("attack", "screen_replay", path, seed, None, frames).stream()
    return [Frame(image, analyze(image)) for image in stream]


def index_clip(
    path: Path, *, fps: float = FPS, mirror: bool = True, config: ChallengeConfig = DEFAULT_CHALLENGE_CONFIG
) -> ClipIndex:
    """Find the neutral stretch and the stretches showing each action in ``path`` (and in
    its mirror image for the opposite turns when ``mirror`` and the clip's rest pose is within
    MIRROR_MAX_YAW of frontal: a mirrored stretch starts from the mirrored rest pose, so the
    player's cut from the unmirrored rest frames into it would otherwise be a turn by itself).

    ``found`` keeps every stretch the pose shows; ``stretches`` only those that register on
    their own: played after the rest frames into a fresh tracker, with every reaction delay
    the player may draw, their challenge passes (a turn of 12-17 degrees often leaves too little
    parallax at 10 frames/s to count, see the bench)."""
    frames = clip_frames(path, fps=fps)
    neutral_pose, neutral = _neutral(frames)
    index = ClipIndex(path, frames, neutral, neutral_pose)
    for code in MOVEMENTS:
        index.found[code] = _movements(frames, code, neutral_pose, config, path.name)
    index.found["blink"] = _blinks(frames, neutral_pose, config, path.name)
    if mirror and abs(neutral_pose[0]) <= MIRROR_MAX_YAW:
        # Measured from the unmirrored neutral pose: that is where a run's reference will be.
        mirrored = clip_frames(path, fps=fps, mirror=True)
        for code in ("turn_left", "turn_right"):
            index.found[code] += _movements(mirrored, code, neutral_pose, config, f"{path.name} mirrored")
    if neutral:
        index.stretches = {
            code: [stretch for stretch in found if _registers(index, stretch, config)]
            for code, found in index.found.items()
        }
    return index


def _registers(index: ClipIndex, stretch: Stretch, config: ChallengeConfig) -> bool:
    """Whether ``stretch`` passes its challenge on a fresh tracker after the rest frames,
    for each reaction delay the player may draw (the tracker's state at the cut differs)."""
    shortest, longest = (round(seconds * FPS) for seconds in REACTION_SECONDS)
    return all(_passes_alone(index, stretch, config, reaction) for reaction in range(shortest, longest + 1))


def _passes_alone(index: ClipIndex, stretch: Stretch, config: ChallengeConfig, reaction: int) -> bool:
    tracker = ChallengeTracker(LivenessTracker(), [stretch.action], config)
    frames = _back_and_forth(index.neutral)
    state = None
    for number in range(MAX_FRAMES):
        state = tracker.update(*_unpack(next(frames)), number / FPS)
        if state.challenge is not None:
            break
    played = [next(frames) for _ in range(reaction)] + list(stretch.frames)
    for offset, frame in enumerate(played, start=number + 1):
        state = tracker.update(*_unpack(frame), offset / FPS)
        if state.live or state.failure is not None:
            break
    return state is not None and state.live


def _unpack(frame: Frame) -> tuple[np.ndarray, FrameAnalysis]:
    return frame.image, frame.analysis


def _neutral(frames: list[Frame]) -> tuple[YawPitch, tuple[Frame, ...]]:
    """The head at rest, looking at the camera: of the runs of at least NEUTRAL_FRAMES usable
    frames whose yaw and pitch each stay within a 2 x NEUTRAL_TOLERANCE band, the one with the
    smallest median yaw; returns its median pose and frames."""
    poses = [frame.pose for frame in frames]
    runs = []
    for start in range(len(poses)):
        end = start
        while end < len(poses) and poses[end] is not None:
            window = poses[start:end + 1]
            if any(max(p[axis] for p in window) - min(p[axis] for p in window) > 2 * NEUTRAL_TOLERANCE
                   for axis in (0, 1)):
                break
            end += 1
        if end - start >= NEUTRAL_FRAMES:
            rest = poses[start:end]
            centre = (float(np.median([p[0] for p in rest])), float(np.median([p[1] for p in rest])))
            runs.append((abs(centre[0]), -(end - start), centre, start, end))
    if not runs:
        return (0.0, 0.0), ()
    _, _, centre, start, end = min(runs)
    return centre, tuple(frames[start:end])


def _shares(pose: YawPitch, centre: YawPitch, config: ChallengeConfig) -> dict[str, float]:
    """Movement from ``centre`` in each direction as a share of that direction's threshold."""
    shares = {}
    for code, (axis, sign) in MOVEMENTS.items():
        index = 0 if axis == "yaw" else 1
        shares[code] = sign * (pose[index] - centre[index]) / config.threshold(axis)
    return shares


def _movements(
    frames: list[Frame], code: str, centre: YawPitch, config: ChallengeConfig, name: str
) -> list[Stretch]:
    """Stretches where the head leaves rest and moves in ``code``'s direction past the
    threshold (plus ACTION_MARGIN) for two frames without moving further another way: from up to
    MAX_ACTION_FRAMES frames of rest before, through the frames it stays past the threshold;
    with up to LEAD_IN_FRAMES of the clip before that which move no other way."""
    needed = (config.threshold(MOVEMENTS[code][0]) + ACTION_MARGIN) / config.threshold(MOVEMENTS[code][0])

    def share(k: int) -> float:
        pose = frames[k].pose
        return -1.0 if pose is None else _shares(pose, centre, config)[code]

    def at_rest(k: int) -> bool:
        pose = frames[k].pose
        return pose is not None and _distance(pose, centre) <= NEUTRAL_TOLERANCE

    def leads_in(k: int) -> bool:
        pose = frames[k].pose
        return pose is not None and not _wrong(pose, centre, config, code) and share(k) < 1.0

    found: list[Stretch] = []
    after = 0
    for j in range(len(frames) - 1):
        if j < after or min(share(j), share(j + 1)) < needed:
            continue
        start = next((k for k in range(j - 1, max(j - MAX_ACTION_FRAMES, after) - 1, -1) if at_rest(k)), None)
        if start is None:
            continue
        while start - 1 >= max(j - MAX_ACTION_FRAMES, after) and at_rest(start - 1):
            start -= 1
        while start - 1 >= max(j - MAX_ACTION_FRAMES - LEAD_IN_FRAMES, after) and leads_in(start - 1):
            start -= 1
        end = j + 1
        # Then the clip as it goes on while the head stays at least half way there (a person
        # holding the pose keeps moving a little; a frozen pose would hide the parallax).
        while (end + 1 < len(frames) and end - j < HOLD_SECONDS * FPS and share(end + 1) >= 0.5
               and not _wrong(frames[end + 1].pose, centre, config, code)):
            end += 1
        if any(_wrong(frames[k].pose, centre, config, code) for k in range(start, end + 1)):
            continue
        where = f"{name} {start / FPS:.1f}-{end / FPS:.1f} s"
        found.append(Stretch(code, tuple(frames[start:end + 1]), where, held_from=j - start))
        after = end + 1
    return found


def _distance(pose: YawPitch, centre: YawPitch) -> float:
    return max(abs(pose[0] - centre[0]), abs(pose[1] - centre[1]))


def _wrong(pose: YawPitch | None, centre: YawPitch, config: ChallengeConfig, code: str) -> bool:
    """Whether ``pose`` moved past a threshold in a direction other than ``code``'s."""
    if pose is None:
        return False
    shares = _shares(pose, centre, config)
    asked = shares.get(code, 0.0)
    return any(value >= 0.8 and value > asked for other, value in shares.items() if other != code)


def _blinks(frames: list[Frame], centre: YawPitch, config: ChallengeConfig, name: str) -> list[Stretch]:
    tracker = LivenessTracker()
    found = []
    before = 0
    for i, frame in enumerate(frames):
        state = tracker.update(frame.image, frame.analysis, i / FPS)
        if state.blinks > before:
            # The closure and reopening (4 frames) with a lead-in, none of it a head movement.
            start = max(0, i - 4 - LEAD_IN_FRAMES)
            last = min(i + 2, len(frames))
            while start < i and any(_wrong(f.pose, centre, config, "blink") for f in frames[start:last]):
                start += 1
            if i - start >= 4:
                found.append(Stretch("blink", tuple(frames[start:i + 2]),
                                     f"{name} {start / FPS:.1f}-{(i + 1) / FPS:.1f} s", held_from=i - start))
        before = state.blinks
    return found


def _back_and_forth(frames: Sequence[Frame]) -> Iterator[Frame]:
    """frames[0], ..., frames[-1], frames[-2], ..., frames[1], frames[0], ... forever; never
    the same frame twice in a row (that would look like a frozen picture)."""
    if len(frames) == 1:
        raise ValueError("need at least two frames to play back and forth")
    cycle = list(frames) + list(frames[-2:0:-1])
    while True:
        yield from cycle


def play_obeying(
    index: ClipIndex, challenges: Sequence[str], *, seed: int,
    config: ChallengeConfig = DEFAULT_CHALLENGE_CONFIG, max_frames: int = MAX_FRAMES,
) -> RunResult:
    """A person who follows each prompt with frames of ``index``'s clip (see module doc)."""
    if not index.covers(challenges):
        raise ValueError(f"{index.path.name} has no stretch for some of {', '.join(challenges)}")
    tracker = ChallengeTracker(LivenessTracker(), challenges, config)
    state = obey(index, lambda frame, t: tracker.update(frame.image, frame.analysis, t),
                 seed=seed, max_frames=max_frames)
    return _result(tracker, state)


def obey(
    index: ClipIndex, update: Callable[[Frame, float], ActiveLivenessState], *, seed: int,
    max_frames: int = MAX_FRAMES,
    finished: Callable[[ActiveLivenessState], bool] = lambda state: state.live or state.failure is not None,
) -> ActiveLivenessState | None:
    """Plays the obeying person into ``update`` (a frame and its time in seconds -> the active
    state after it), reacting to each newly shown challenge, until ``finished`` or
    ``max_frames``; returns the last state. ``update`` may be a service's frame processor."""
    rng = random.Random(seed)
    neutral = _back_and_forth(index.neutral)
    queue: list[Frame] = []
    shown = -1  # index of the challenge the player is answering
    state = None
    for number in range(max_frames):
        state = update(queue.pop(0) if queue else next(neutral), number / FPS)
        if finished(state):
            break
        challenge = state.challenge
        if challenge is None:
            queue = []  # passed: look straight again
        elif challenge.index != shown:
            shown = challenge.index
            stretch = rng.choice(index.stretches[challenge.code])
            reaction = round(rng.uniform(*REACTION_SECONDS) * FPS)
            queue = [next(neutral) for _ in range(reaction)] + list(stretch.frames)
            held = stretch.frames[stretch.held_from:]
            if len(held) >= 2:
                holding = _back_and_forth(held)
                queue += [next(holding) for _ in range(round(HOLD_SECONDS * FPS))]
    return state


def play_straight(
    frames: Sequence[Frame], challenges: Sequence[str], *, config: ChallengeConfig = DEFAULT_CHALLENGE_CONFIG,
    max_frames: int = MAX_FRAMES, loop: bool = True,
) -> RunResult:
    """The frames in order, regardless of prompts (looped up to ``max_frames`` if ``loop``)."""
    tracker = ChallengeTracker(LivenessTracker(), challenges, config)
    state = None
    for number in range(max_frames if loop else min(max_frames, len(frames))):
        frame = frames[number % len(frames)]
        state = tracker.update(frame.image, frame.analysis, number / FPS)
        if state.live or state.failure is not None:
            break
    return _result(tracker, state)


def _result(tracker: ChallengeTracker, state: ActiveLivenessState | None) -> RunResult:
    if state is None:
        return RunResult(tracker.challenges, (), False, "ended", 0)
    return RunResult(
        drawn=tracker.challenges,
        passed=state.passed,
        live=state.live,
        failure=state.failure or (None if state.live else "ended"),
        frames=state.frames,
    )
