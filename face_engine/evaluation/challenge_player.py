"""Recordings played against the active liveness mode: a person who obeys the prompts, and
replays that cannot. Used by the tests and by ``bench/active_liveness_bench.py``.

- ``index_clip`` cuts a live clip (at 10 frames/s, as a browser sends it), as recorded and
  mirrored left-right (a mirrored real head is still a real 3D head; it gives the opposite
  turns), into rests and action stretches. A rest is a run of at least NEUTRAL_FRAMES frames
  with the head still (the pose within the frame-to-frame wobble of a still head); the person
  holds it between prompts. It need not face the camera: the clips look up only from a head
  tilted down (coming back from looking down, or resting with the eyes on the phone below the
  camera), e.g. liveportrait_d9 holding its head down (pitch +11) at 11.8-12.3 s and coming
  back up 12 degrees at 12.3-12.4 s. For each rest, the stretches of either footage that
  start at its pose and show an action: a turn or look found from the engine's head pose (it
  ends where the movement has held past the challenge threshold without going further in
  another direction), a blink where the passive tracker counted one when the footage is
  played straight; each with a lead-in of the clip before it, so the passive signals follow
  the clip into the action.
- A stretch counts for a rest (``Rest.stretches``) when, played after the rest frames into a
  fresh tracker, its challenge passes for every reaction delay the player may draw, with the
  evidence the challenge needs (a blink, or 3D movement) not made by the cut into it: seen
  while resting after the prompt or CUT_FRAMES or more frames into the stretch.
- ``play_obeying``: one clip and one of its rests for the whole run (the same identity, one
  resting pose), from which the clip shows every drawn action (the most versatile such rest,
  ``Rest.rank``): the harness casts a person able to do what the sequence asks, the player
  sees each prompt only when it is shown. It plays
  the rest frames (back and forth), and after each new prompt a reaction delay of 0.5-1 s, then
  a stretch showing the requested action, held until the challenge passes (at most 1.5 s),
  then the rest again.
- ``play_straight``: the clip from its start regardless of prompts, looped within the
  120-frame budget, as a replay on a laptop or phone would run.
- ``screen_replay_frames``: the clip on a simulated phone screen held up to the camera
  (``face_engine.evaluation.attacks``), played once."""

from __future__ import annotations

import copy
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from face_engine.challenge import (
    CHALLENGE_CODES,
    DEFAULT_CHALLENGE_CONFIG,
    MOVEMENTS,
    ActiveLivenessState,
    ChallengeConfig,
    ChallengeTracker,
    median_pose,
)
from face_engine.evaluation.attacks import Presentation, browser_frame
from face_engine.liveness import LivenessTracker
from face_engine.pipeline import analyze
from face_engine.types import FrameAnalysis
from face_engine.video import video_frames

FPS = 10.0
MAX_FRAMES = 120  # a session's frame budget (FACEAUTH_MAX_FRAMES)
# Degrees from a rest pose that still count as "at rest": a still head's pose wobbles by up to
# +-4 degrees from frame to frame (ChallengeConfig).
NEUTRAL_TOLERANCE = 5.0
# A rest is at least as long as the tracker's reference (0.5 s): the pose it takes when a
# prompt is shown is then the rest's own.
NEUTRAL_FRAMES = DEFAULT_CHALLENGE_CONFIG.reference_frames
ACTION_MARGIN = 1.0  # an indexed movement exceeds the challenge threshold by this much
MAX_ACTION_FRAMES = 8  # a movement reaches its threshold within 0.8 s of leaving rest
# Footage played before an action, so the passive signals (tracked points, the eyes' open
# level) follow the clip continuously into it, as they would a person; it starts at the rest
# pose, so the cut from the rest frames into it does not move the head by itself.
LEAD_IN_FRAMES = 8
BLINK_FRAMES = 4  # a blink's closure and reopening, up to the frame the passive tracker counts it
REACTION_SECONDS = (0.5, 1.0)
HOLD_SECONDS = 1.5  # how long the player holds a finished movement waiting for the pass
# A cut between footage can itself look like 3D movement or an eye change to the passive
# signals, for as long as their window reaches back across it (the parallax window).
CUT_FRAMES = DEFAULT_CHALLENGE_CONFIG.parallax_window_frames
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
class Footage:
    """The clip played one way round: as recorded, or mirrored left-right."""

    name: str  # the file name, plus " mirrored"
    frames: list[Frame]
    blinks: tuple[int, ...]  # frames at which the passive tracker, played straight, counted a blink
    closed: frozenset[int]  # frames of those blinks' dips, from their first frame to the count


@dataclass(frozen=True, eq=False)
class Stretch:
    """Consecutive frames showing one action; ``where`` names them for people."""

    action: str
    frames: tuple[Frame, ...]
    where: str
    held_from: int = 0  # first frame of the action's peak (past the threshold), held after it


@dataclass(eq=False)
class Rest:
    """The head at rest, and the stretches of the clip that start at its pose and show each
    action (``found``); those that register after it (``stretches``) are checked on first use,
    each check plays the stretch a few times through a tracker."""

    frames: tuple[Frame, ...]
    pose: YawPitch
    where: str
    found: dict[str, list[Stretch]]
    config: ChallengeConfig = DEFAULT_CHALLENGE_CONFIG
    _registering: dict[str, list[Stretch]] = field(default_factory=dict, repr=False)

    def stretches(self, code: str) -> list[Stretch]:
        if code not in self._registering:
            self._registering[code] = [s for s in self.found.get(code, []) if _registers(self, s)]
        return self._registering[code]

    def covers(self, codes: Sequence[str]) -> bool:
        return all(self.stretches(code) for code in codes)

    @property
    def rank(self) -> tuple[int, int, float]:
        """Sorts the most versatile rest first: most actions with a stretch that registers, most
        stretches found, nearest facing the camera. (Counting stretches found instead, a cheap
        guess, ranked a rest first whose looks up and down all came too weak once the blink
        detector found more blinks: liveportrait_d9 at 6.2 s.)"""
        registering = sum(bool(self.stretches(code)) for code in CHALLENGE_CODES)
        return (-registering, -sum(map(len, self.found.values())), abs(self.pose[0]))

    def summary(self) -> dict:
        return {
            "rest": self.where,
            "pose": [round(value, 1) for value in self.pose],
            **{code: {"registers": [stretch.where for stretch in self.stretches(code)],
                      "too_weak": [stretch.where for stretch in self.found.get(code, [])
                                   if stretch not in self.stretches(code)]}
               for code in CHALLENGE_CODES},
        }


@dataclass
class ClipIndex:
    """A clip cut into rests, each with the action stretches that start at it; first the rest
    from which the most actions were found."""

    path: Path
    frames: list[Frame]  # as recorded
    rests: list[Rest]

    def covering(self, codes: Sequence[str]) -> list[Rest]:
        """The rests from which the clip shows every action in ``codes``."""
        return [rest for rest in self.rests if rest.covers(codes)]

    def covers(self, codes: Sequence[str]) -> bool:
        return any(rest.covers(codes) for rest in self.rests)

    def summary(self) -> dict:
        return {"clip": self.path.name, "rests": [rest.summary() for rest in self.rests]}


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
    """The clip played once on a simulated phone screen (face_engine.evaluation.attacks), analysed."""
    stream = Presentation("attack", "screen_replay", path, seed, None, frames).stream()
    return [Frame(image, analyze(image)) for image in stream]


def index_clip(
    path: Path, *, fps: float = FPS, mirror: bool = True, config: ChallengeConfig = DEFAULT_CHALLENGE_CONFIG
) -> ClipIndex:
    """Find the rests of ``path`` (and of its mirror image when ``mirror``) and, for each, the
    stretches of either footage that start at its pose and show each action (see module doc)."""
    footages = [_footage(path.name, clip_frames(path, fps=fps))]
    if mirror:
        footages.append(_footage(f"{path.name} mirrored", clip_frames(path, fps=fps, mirror=True)))
    rests = []
    for footage in footages:
        for pose, start, end in _rests(footage.frames):
            # The rest is played back and forth: without a blink's frames, or a person resting
            # there would blink again and again, as nobody does.
            held = tuple(footage.frames[number] for number in range(start, end)
                         if number not in footage.closed)
            if len(held) < 2:
                continue
            found = {code: [s for source in footages for s in _movements(source, code, pose, config)]
                     for code in MOVEMENTS}
            found["blink"] = [s for source in footages for s in _blinks(source, pose, config)]
            where = f"{footage.name} {start / FPS:.1f}-{end / FPS:.1f} s"
            rests.append(Rest(held, pose, where, found, config))
    rests.sort(key=lambda rest: rest.rank)  # stable: as recorded before mirrored
    return ClipIndex(path, footages[0].frames, rests)


def _footage(name: str, frames: list[Frame]) -> Footage:
    tracker = LivenessTracker(presentation=None)  # blinks are all it counts
    blinks, closed, before = [], set(), 0
    for number, frame in enumerate(frames):
        state = tracker.update(frame.image, frame.analysis, number / FPS)
        if state.blinks > before:
            blinks.append(number)
            closed.update(range(round(tracker.last_blink_began * FPS), number + 1))
        before = state.blinks
    return Footage(name, frames, tuple(blinks), frozenset(closed))


def _registers(rest: Rest, stretch: Stretch) -> bool:
    """Whether ``stretch`` passes its challenge on a fresh tracker after the rest frames,
    for each reaction delay the player may draw (the tracker's state at the cut differs)."""
    shortest, longest = (round(seconds * FPS) for seconds in REACTION_SECONDS)
    cycle = _back_and_forth(rest.frames)
    # The challenge's own evidence decides; the anti-spoofing verdict, which needs about 1.3 s
    # of frames, is a whole session's (play_obeying runs it).
    tracker = ChallengeTracker(LivenessTracker(presentation=None), [stretch.action], rest.config)
    number, state = 0, tracker.update(*_unpack(cycle[0]), 0.0)
    while state.challenge is None:
        number += 1
        if number == MAX_FRAMES:
            return False
        state = tracker.update(*_unpack(cycle[number % len(cycle)]), number / FPS)
    at_issue = _evidence(stretch.action, state)
    for reaction in range(longest + 1):
        # The tracker after ``reaction`` frames of rest, copied to play the stretch from there.
        risen = _evidence(stretch.action, state) > at_issue  # while resting after the prompt
        if reaction >= shortest and not _passes(copy.deepcopy(tracker), stretch, number + 1, risen):
            return False
        number += 1
        state = tracker.update(*_unpack(cycle[number % len(cycle)]), number / FPS)
    return True


def _evidence(action: str, state: ActiveLivenessState) -> int:
    """The passive count a challenge needs to rise: blinks, or frames of 3D head movement."""
    return state.blinks if action == "blink" else state.parallax_frames


def _passes(tracker: ChallengeTracker, stretch: Stretch, first: int, evidence_seen: bool) -> bool:
    """Whether ``tracker`` goes live on ``stretch`` (its first frame numbered ``first``) with
    evidence not made by the cut into it: a rise of the count the challenge needs while resting
    after the prompt (``evidence_seen``) or CUT_FRAMES or more frames into the stretch."""
    before = None
    for offset, frame in enumerate(stretch.frames):
        state = tracker.update(*_unpack(frame), (first + offset) / FPS)
        now = _evidence(stretch.action, state)
        evidence_seen |= before is not None and now > before and offset >= CUT_FRAMES
        before = now
        if state.live or state.failure is not None:
            return state.live and evidence_seen
    return False


def _unpack(frame: Frame) -> tuple[np.ndarray, FrameAnalysis]:
    return frame.image, frame.analysis


def _rests(frames: list[Frame]) -> list[tuple[YawPitch, int, int]]:
    """The head at rest: runs of at least NEUTRAL_FRAMES usable frames whose yaw and pitch each
    stay within a 2 x NEUTRAL_TOLERANCE band, taken from the start of the footage, each as long
    as it goes; returns each run's median pose, first frame and end."""
    poses = [frame.pose for frame in frames]
    found = []
    start = 0
    while start < len(poses):
        end = start
        while end < len(poses) and poses[end] is not None:
            window = poses[start:end + 1]
            if any(max(p[axis] for p in window) - min(p[axis] for p in window) > 2 * NEUTRAL_TOLERANCE
                   for axis in (0, 1)):
                break
            end += 1
        if end - start < NEUTRAL_FRAMES:
            start += 1
            continue
        found.append((median_pose(poses[start:end]), start, end))
        start = end
    return found


def _shares(pose: YawPitch, centre: YawPitch, config: ChallengeConfig) -> dict[str, float]:
    """Movement from ``centre`` in each direction as a share of that direction's threshold."""
    shares = {}
    for code, (axis, sign) in MOVEMENTS.items():
        index = 0 if axis == "yaw" else 1
        shares[code] = sign * (pose[index] - centre[index]) / config.threshold(axis)
    return shares


def _movements(footage: Footage, code: str, centre: YawPitch, config: ChallengeConfig) -> list[Stretch]:
    """Stretches where the head leaves rest and moves in ``code``'s direction past the
    threshold (plus ACTION_MARGIN) for two frames without moving further another way: from up to
    MAX_ACTION_FRAMES frames of rest before, through the frames it stays past the threshold;
    with up to LEAD_IN_FRAMES of the clip before that which move no other way and start at rest."""
    frames = footage.frames
    needed = (config.threshold(MOVEMENTS[code][0]) + ACTION_MARGIN) / config.threshold(MOVEMENTS[code][0])

    def share(k: int) -> float:
        pose = frames[k].pose
        return -1.0 if pose is None else _shares(pose, centre, config)[code]

    def at_rest(k: int) -> bool:
        return _at_rest(frames[k].pose, centre)

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
        lead_in = start
        while lead_in - 1 >= max(j - MAX_ACTION_FRAMES - LEAD_IN_FRAMES, after) and leads_in(lead_in - 1):
            lead_in -= 1
        while not at_rest(lead_in):
            lead_in += 1
        start = lead_in
        end = j + 1
        # Then the clip as it goes on while the head stays at least half way there (a person
        # holding the pose keeps moving a little; a frozen pose would hide the parallax).
        while (end + 1 < len(frames) and end - j < HOLD_SECONDS * FPS and share(end + 1) >= 0.5
               and not _wrong(frames[end + 1].pose, centre, config, code)):
            end += 1
        if any(_wrong(frames[k].pose, centre, config, code) for k in range(start, end + 1)):
            continue
        where = f"{footage.name} {start / FPS:.1f}-{end / FPS:.1f} s"
        found.append(Stretch(code, tuple(frames[start:end + 1]), where, held_from=j - start))
        after = end + 1
    return found


def _at_rest(pose: YawPitch | None, centre: YawPitch) -> bool:
    return pose is not None and max(abs(pose[0] - centre[0]), abs(pose[1] - centre[1])) <= NEUTRAL_TOLERANCE


def _wrong(pose: YawPitch | None, centre: YawPitch, config: ChallengeConfig, code: str) -> bool:
    """Whether ``pose`` moved past a threshold in a direction other than ``code``'s."""
    if pose is None:
        return False
    shares = _shares(pose, centre, config)
    asked = shares.get(code, 0.0)
    return any(value >= 0.8 and value > asked for other, value in shares.items() if other != code)


def _blinks(footage: Footage, centre: YawPitch, config: ChallengeConfig) -> list[Stretch]:
    """The closure and reopening (BLINK_FRAMES) of each blink the footage shows, with a lead-in
    that starts at rest, none of it a head movement."""
    frames = footage.frames
    found = []
    for i in footage.blinks:
        start = max(0, i - BLINK_FRAMES - LEAD_IN_FRAMES)
        last = min(i + 2, len(frames))
        while start < i and (any(_wrong(f.pose, centre, config, "blink") for f in frames[start:last])
                             or not _at_rest(frames[start].pose, centre)):
            start += 1
        if i - start >= BLINK_FRAMES:
            where = f"{footage.name} {start / FPS:.1f}-{(i + 1) / FPS:.1f} s"
            found.append(Stretch("blink", tuple(frames[start:i + 2]), where, held_from=i - start))
    return found


def _back_and_forth(frames: Sequence[Frame]) -> list[Frame]:
    """One cycle of frames[0], ..., frames[-1], frames[-2], ..., frames[1], to be repeated;
    never the same frame twice in a row (that would look like a frozen picture)."""
    if len(frames) < 2:
        raise ValueError("need at least two frames to play back and forth")
    return list(frames) + list(frames[-2:0:-1])


def play_obeying(
    index: ClipIndex, challenges: Sequence[str], *, seed: int, rest: Rest | None = None,
    config: ChallengeConfig = DEFAULT_CHALLENGE_CONFIG, max_frames: int = MAX_FRAMES,
) -> RunResult:
    """A person who follows each prompt with frames of ``index``'s clip, resting at ``rest``
    or else at the clip's most versatile rest that covers ``challenges``."""
    if rest is None:
        rests = index.covering(challenges)
        if not rests:
            raise ValueError(f"{index.path.name} shows not all of {', '.join(challenges)} from one rest")
        rest = rests[0]
    elif not rest.covers(challenges):
        raise ValueError(f"{rest.where} is not followed by all of {', '.join(challenges)}")
    tracker = ChallengeTracker(LivenessTracker(), challenges, config)
    state = obey(index, lambda frame, t: tracker.update(frame.image, frame.analysis, t),
                 seed=seed, rest=rest, max_frames=max_frames)
    return _result(tracker, state)


def obey(
    index: ClipIndex, update: Callable[[Frame, float], ActiveLivenessState], *, seed: int,
    rest: Rest | None = None, max_frames: int = MAX_FRAMES,
    finished: Callable[[ActiveLivenessState], bool] = lambda state: state.live or state.failure is not None,
) -> ActiveLivenessState | None:
    """Plays the obeying person into ``update`` (a frame and its time in seconds -> the active
    state after it), resting at ``rest`` (by default the clip's first, the most versatile),
    reacting to each newly shown challenge, until ``finished`` or ``max_frames``;
    returns the last state. ``update`` may be a service's frame processor."""
    if rest is None:
        if not index.rests:
            raise ValueError(f"{index.path.name} has no rest")
        rest = index.rests[0]
    rng = random.Random(seed)
    resting = itertools.cycle(_back_and_forth(rest.frames))
    queue: list[Frame] = []
    shown = -1  # index of the challenge the player is answering
    state = None
    for number in range(max_frames):
        state = update(queue.pop(0) if queue else next(resting), number / FPS)
        if finished(state):
            break
        challenge = state.challenge
        if challenge is None:
            queue = []  # passed: back to rest
        elif challenge.index != shown:
            shown = challenge.index
            stretch = rng.choice(rest.stretches(challenge.code))
            reaction = round(rng.uniform(*REACTION_SECONDS) * FPS)
            queue = [next(resting) for _ in range(reaction)] + list(stretch.frames)
            held = stretch.frames[stretch.held_from:]
            if len(held) >= 2:
                holding = itertools.cycle(_back_and_forth(held))
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
