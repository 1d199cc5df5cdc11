"""Admission control: refuse new sessions before the engine falls behind, so that the
sessions already admitted keep their frame latency, and admit them until the machine is full.

Every server process measures its own engine (``EngineLoad``): for each frame, how long it
waited for an engine thread, how long it took there, and the phase of its session (``PHASES``:
its first frames, seeking a blink, measuring parallax, collecting samples); the CPU of each
session's own work (its creation, connection and end, on the threads that do them); once a
second, the CPU the whole process used, the CPU of its event loop thread, and the host's busy
CPU. It publishes the sums over the last PHASE_WINDOW seconds and the sessions it streams now,
by phase, in the shared cache (Redis in production, so every worker sees every other;
process memory in the zero-setup mode). A new session, or a socket that connects to one, is
refused with ``Overloaded`` (HTTP 503 with Retry-After, WebSocket close 4503) when

- the 95th percentile of that wait over the last two seconds is above
  FACEAUTH_ADMISSION_LATENCY_MS on every worker (the engine is behind everywhere), or
- the expected CPU of every open session and the new one would be more than
  FACEAUTH_ADMISSION_CPU_SHARE of the cores of the hosts the workers run on, less what
  other processes on those hosts use (a shared machine has fewer cores to give).

The expected CPU is counted by phase, from what sessions in each phase were measured to cost
(``CostModel``): a session seeking a blink runs the eye model on every frame and gets more
detections, one collecting samples runs neither; counting every session at one average
refused sessions while the machine had room once the mix moved to cheaper phases, and would
admit too many when liveness adds work to one phase. Each phase's cost is its frames' rate
(measured: the gaps between a session's frames, at most FACEAUTH_MAX_FPS) times the CPU of
such a frame: the event loop's CPU per frame (the same in every phase), plus the rest of the
process's CPU (engine and OpenVINO threads, database) shared among the phases by the time
their frames spent in the engine. Per-thread CPU cannot be split per frame here: the networks
run on OpenVINO's threads while the engine thread waits, so the engine thread's own CPU saw a
tenth of an embedding. A streaming session is counted at what it is expected to take over the
next session's life (``CostModel.projected``): the rest of its phase, its later phases, then
its successor at a session's mean; its phase's cost right now would count a crowd in its
costliest phase, seeking blinks together, as if it stayed there. Open sessions that are not
streaming (created, connecting) and the new one are counted at what a session costs over its
life, less what remains of their setup (``CostModel.waiting``). A session's mean over its life
weighs each phase's cost by the time sessions spend in it, measured over FLOW_WINDOW (a
minute) rather than the last ten seconds, on the sessions that ended: after a quiet spell
those ten seconds hold only a crowd's first phase, and the sessions still streaming have not
shown how long they last (``CostModel.per_session``). Once those times are measured, each
phase's cost is the minute's too: every second's CPU is shared out among that second's frames
(``_Bucket.phase_cpu``), so that seconds of different load are not mixed, and the phase is
priced on all its frames of the minute. In the last ten seconds alone, a crowd that had just
arrived priced its blink-seeking frames by its first ones, which still carry most of a
session's anti-spoofing scores and its second identity check. A session's own work is taken out
of the frames' CPU and counted once a session, every session cycle
(``CostModel.session_work_rate``): a crowd's creations and connections all fall within its
arrival.

Why the model before this one refused sessions with the host about 60% busy (issue 19): it
counted every open session at FACEAUTH_MAX_FPS while sessions answer about 9 frames/s (they
connect and finish too: 117 frames/s for 13 users), at one CPU per frame for every phase, and
its latency rule refused on any one worker's backlog while gunicorn handed most sockets to one
worker (82 against 36 frames/s; in a baseline run here one worker used 31% of a core and the
other 4%, and 33 of 48 refusals came while one worker answered under half the other's
frames). scripts/serve-production.sh now gives each worker its own listening socket. Each
refusal is logged at WARNING with the rules' inputs (``admission refused: {...}``, JSON) so
that bench/load.py can say which rule refused and on what figures.

Refused clients are told to retry after 1 to 3 seconds, drawn at random: told the same
delay, a crowd refused together comes back together and meets the same verdict, while the
places freed meanwhile wait for it. The window of the latency rule is short so that a backlog
that has drained stops refusing within a couple of seconds, not five. Measured at 2.5x
capacity (30 simulated users, 3 runs each): admitted frames' p95 143-183 ms against 235-501
ms with a fixed delay and a 5 s window, at the same frames/s within noise.

Until frames are measured (a cold start, or a quiet minute) a frame is assumed to cost
COLD_FRAME_CPU seconds of this host's cores at FACEAUTH_MAX_FPS, so that a crowd arriving at
once is not all admitted before the first measurement."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import json
import logging
import os
import random
import socket
import statistics
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import psutil
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from auth_service.errors import Overloaded
from auth_service.models import AuthSession, SessionStatus
from face_engine.models import usable_cores

logger = logging.getLogger(__name__)
T = TypeVar("T")

WINDOW_SECONDS = 2.0  # recent frames that the latency percentile looks at
PHASE_WINDOW = 10.0  # seconds of per-phase figures: enough frames of the rarer phases
# Seconds over which the time sessions spend in each phase, and in their setup, is measured:
# longer than PHASE_WINDOW, because those times are the liveness flow's and change little
# with the load, while a short window after a quiet spell holds only the first phase of the
# sessions that just arrived (CostModel.per_session).
FLOW_WINDOW = 60.0
PUBLISH_INTERVAL = 1.0  # seconds between a worker's figures in the cache
RETRY_AFTER_SECONDS = (1, 3)  # a refused client's Retry-After is drawn from this range
REPORT_TTL = 5  # seconds: a worker that stopped publishing is forgotten after this
# A session created this recently that has not connected yet is about to add its load.
STARTING_SESSION_SECONDS = 30
# A stream without a frame for this long is no longer counted as streaming (it may be
# finishing, or its client stalled); while open it is counted at a new session's cost.
STREAM_IDLE_SECONDS = 1.0
# A phase's cost is its own once this many of its frames are in the window; before, the
# average of all frames (a few frames of a rare phase say little).
MIN_PHASE_FRAMES = 20
# The seconds a session spends in each phase are measured once this many ended (FLOW_WINDOW).
MIN_SESSIONS_ENDED = 5
_REGISTRY_KEY = "faceauth:admission:workers"
# A frame's CPU cost before any is measured: about twice what a 640x480 frame costs on a
# current x86 core, so a cold server admits somewhat fewer sessions than it could carry.
COLD_FRAME_CPU = 0.010

# A session's phases, in the order it goes through them: its start (the first START_FRAMES
# frames), then the liveness tracker seeks a blink (the eye model and detection on every frame
# while parallax is measured too), measures parallax (tracked points, detection where a window
# starts), then the evidence is in and frames only bring samples and the anti-spoofing
# verdict. Matching happens once, at the end, on a database thread: it is the session's own
# work (EngineLoad.session_work), not a phase of frames.
PHASES = ("start", "blink", "parallax", "samples")
# A session's first frames cost about twice a later one's: the face is sought on the whole
# frame, the identity signal takes its first embedding, the anti-spoofing model its first
# score, parallax its first points (one-thread replay of the generated hand-held clip: 24,
# 11, 11 and 16 ms against 8 ms a frame after). Counted in the blink phase, they made that
# phase look 15-35% dearer while a crowd arrived, when the cost window holds mostly such
# frames, and every session to come was counted at that price (issue 19). The start ends there,
# not at the anti-spoofing verdict (one frame in three scored until frame 12, 9.6 ms a frame
# on frames 4-12): a start that long filled an arriving crowd's cost window, the blink phase
# had too few frames of its own there and was priced at the window's mix, the start's cost.
START_FRAMES = 4
# Thread names (what `top -H` and bench/load.py's per-thread figures show).
ENGINE_THREAD_NAME = "fa-engine"
SYNC_THREAD_NAME = "fa-sync"


def session_phase(processor: Any) -> str:
    """The phase a frame pipeline (services.frames.FrameProcessor) is in before its next
    frame: ``start`` for its first START_FRAMES frames, then read from its liveness tracker
    (the passive one inside an active-mode tracker)."""
    if getattr(processor, "frames_processed", START_FRAMES) < START_FRAMES:
        return "start"
    tracker = getattr(processor, "tracker", None)
    liveness = getattr(tracker, "passive", tracker)
    if liveness is None or getattr(liveness, "measuring_blink", False):
        return "blink"
    if getattr(liveness, "measuring_parallax", False):
        return "parallax"
    return "samples"


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def name_thread(name: str) -> None:
    """Gives the calling thread an OS-level name (15 characters at most), so that per-thread
    CPU can be told apart (Python 3.11's thread names stay inside Python). Linux only."""
    libc = _libc()
    if libc is not None and hasattr(libc, "prctl"):
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


@dataclass(frozen=True)
class PhaseLoad:
    """One worker's figures for one phase over its window."""

    sessions: int = 0  # streaming in this phase now
    frames: int = 0
    engine_seconds: float = 0.0  # wall time those frames spent in the engine
    session_seconds: float = 0.0  # time sessions spent in this phase (the gaps between their frames)
    # Over FLOW_WINDOW, not the window of the figures above: sessions whose first frame was in
    # this phase, and the time that the sessions which ended spent in it over their whole life.
    started: int = 0
    flow_seconds: float = 0.0
    # Also over FLOW_WINDOW: this phase's frames, the CPU they took (each publication interval's
    # process CPU shared out among its phases there: ``_Bucket.phase_cpu``) and the time
    # sessions spent in the phase.
    flow_frames: int = 0
    flow_cpu_seconds: float = 0.0
    flow_session_seconds: float = 0.0


@dataclass(frozen=True)
class WorkerLoad:
    """One worker's published figures: sums over the last ``seconds`` (at most PHASE_WINDOW),
    and the sessions' flow (phases' ``started`` and ``flow_seconds``, ``ended``,
    ``setup_seconds``) over the last FLOW_WINDOW seconds."""

    worker: str
    host: str
    cores: int
    seconds: float
    cpu_seconds: float  # process CPU (all threads)
    serving_cpu_seconds: float  # the event loop thread's CPU (WebSocket, JSON, channel layer)
    host_busy_seconds: float  # the whole host's busy CPU
    frames: int
    wait_p95: float  # seconds frames waited for an engine thread, over WINDOW_SECONDS
    frames_in_window: int  # frames behind that percentile
    phases: dict[str, PhaseLoad] = field(default_factory=dict)
    # From creation to the first frame, summed over the sessions that started (FLOW_WINDOW).
    setup_seconds: float = 0.0
    ended: int = 0  # sessions that ended with a verdict (FLOW_WINDOW)
    # CPU of the sessions' own requests and database calls (created, connected, finished:
    # ``EngineLoad.session_work``), not of their frames: over the window of ``cpu_seconds``,
    # which includes it, and over FLOW_WINDOW, to be shared among the sessions that started.
    session_work_seconds: float = 0.0
    flow_session_work_seconds: float = 0.0

    def __post_init__(self) -> None:
        # From the cache the phases come back as plain dicts.
        phases = {name: p if isinstance(p, PhaseLoad) else PhaseLoad(**p) for name, p in self.phases.items()}
        object.__setattr__(self, "phases", phases)

    @property
    def cpu_per_second(self) -> float:
        return self.cpu_seconds / self.seconds if self.seconds else 0.0

    @property
    def host_cpu_per_second(self) -> float:
        return self.host_busy_seconds / self.seconds if self.seconds else 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def streaming(self) -> int:
        return sum(phase.sessions for phase in self.phases.values())


@dataclass
class _Bucket:
    """The figures of one publication interval."""

    at: float
    seconds: float
    cpu: float
    serving_cpu: float
    host_busy: float
    frames: int
    # phase -> [frames, engine seconds, session seconds, started, ended sessions' seconds]
    phases: dict[str, list[float]]
    setup_seconds: float
    session_work: float
    ended: int

    @functools.cached_property
    def phase_cpu(self) -> dict[str, float]:
        """The CPU of this interval's frames, by phase: the event loop's per frame, and the rest
        of the process's CPU, less the sessions' own work, by the phases' time in the engine.
        Shared out within the interval, whose frames met the same contention: the engine's wall
        time stretches when threads wait for a core, which a share taken across intervals of
        different load would count as CPU. Computed once: a closed interval's sums no longer
        change, and each publication reads the minute's intervals under the lock."""
        if not self.frames:
            return dict.fromkeys(self.phases, 0.0)
        serving = min(self.cpu, self.serving_cpu)
        engine_time = sum(sums[1] for sums in self.phases.values())
        rest = max(0.0, self.cpu - serving - self.session_work)
        return {
            phase: serving * sums[0] / self.frames + (rest * sums[1] / engine_time if engine_time else 0.0)
            for phase, sums in self.phases.items()
        }


@dataclass
class _Stream:
    phase: str
    last_frame_at: float
    seconds: dict[str, float]  # time spent in each phase so far


class EngineLoad:
    """This process's measurements; ``measured`` runs in engine threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waits: deque[tuple[float, float]] = deque()  # (started at, seconds waited)
        self._buckets: deque[_Bucket] = deque()
        self._open = self._new_phases()  # the current interval's per-phase sums
        self._open_setup = 0.0  # the current interval's sessions' seconds from creation to first frame
        self._open_work = 0.0  # the current interval's CPU seconds of session work
        self._open_ended = 0  # the current interval's sessions that ended
        # Frame pipeline -> its phase now; weak, so a pipeline whose socket went is dropped.
        self._streams: weakref.WeakKeyDictionary[Any, _Stream] = weakref.WeakKeyDictionary()
        self._published_at = 0.0
        self._published_cpu = 0.0
        self._published_serving = 0.0
        self._published_host = 0.0
        self._named: set[int] = set()
        self._worker = f"{socket.gethostname()[:40]}:{os.getpid()}"

    @staticmethod
    def _new_phases() -> dict[str, list[float]]:
        return {phase: [0, 0.0, 0.0, 0, 0.0] for phase in PHASES}

    def measured(self, wait: float, function: Callable[..., T], *args: Any) -> T:
        """Runs one frame (``function``, a frame pipeline's bound ``process``) that waited
        ``wait`` seconds for this engine thread, and counts it by its session's phase."""
        ident = threading.get_ident()
        if ident not in self._named:
            self._named.add(ident)
            name_thread(ENGINE_THREAD_NAME)
        owner = getattr(function, "__self__", None)
        phase = session_phase(owner) if owner is not None else None
        started = time.monotonic()
        finished = False
        try:
            result = function(*args)
            finished = getattr(result, "verdict", None) is not None
            return result
        finally:
            self._record(started, wait, phase, owner, finished=finished)

    @contextlib.contextmanager
    def session_work(self) -> Iterator[None]:
        """Counts the calling thread's CPU inside the block as a session's own work (creating,
        connecting, finishing it: matching, the result, the database), not its frames'."""
        started = time.thread_time()
        try:
            yield
        finally:
            spent = time.thread_time() - started
            with self._lock:
                self._open_work += spent

    def record(self, wait: float) -> None:
        """One frame without a session (its time in the engine not measured) started
        ``wait`` seconds after it was submitted."""
        self._record(time.monotonic(), wait, None, None, finished=False)

    def _record(self, started: float, wait: float, phase: str | None, owner: Any, *, finished: bool) -> None:
        ended = time.monotonic()
        report = None
        with self._lock:
            self._waits.append((started, wait))
            if phase is not None:
                sums = self._open[phase]
                sums[0] += 1
                sums[1] += ended - started
                stream = self._streams.get(owner)
                # The gap since the session's previous frame is time it spent in this phase;
                # its first frame counts one frame interval.
                gap = ended - stream.last_frame_at if stream is not None else 1 / settings.FACEAUTH_MAX_FPS
                gap = min(gap, STREAM_IDLE_SECONDS)
                sums[2] += gap
                seconds = stream.seconds if stream is not None else {}
                seconds[phase] = seconds.get(phase, 0.0) + gap
                if stream is None:
                    sums[3] += 1
                    created_at = getattr(owner, "created_at", None)
                    if created_at is not None:
                        self._open_setup += min(max(0.0, ended - created_at), STARTING_SESSION_SECONDS)
                if finished:
                    self._streams.pop(owner, None)
                    self._open_ended += 1
                    for name, spent in seconds.items():
                        self._open[name][4] += spent
                else:
                    self._streams[owner] = _Stream(session_phase(owner), ended, seconds)
            if ended - self._published_at >= PUBLISH_INTERVAL:
                report = self._report(ended)
        if report is not None:
            _publish(report)

    def _report(self, now: float) -> WorkerLoad:
        while self._waits and self._waits[0][0] < now - WINDOW_SECONDS:
            self._waits.popleft()
        cpu, serving, host = time.process_time(), _main_thread_cpu(), _host_busy_seconds()
        if self._published_at:
            self._buckets.append(_Bucket(
                at=now, seconds=now - self._published_at, cpu=cpu - self._published_cpu,
                serving_cpu=serving - self._published_serving, host_busy=host - self._published_host,
                frames=int(sum(sums[0] for sums in self._open.values())), phases=self._open,
                setup_seconds=self._open_setup, session_work=self._open_work, ended=self._open_ended,
            ))
        self._open, self._open_setup, self._open_work = self._new_phases(), 0.0, 0.0
        self._open_ended = 0
        while self._buckets and self._buckets[0].at - self._buckets[0].seconds < now - FLOW_WINDOW:
            self._buckets.popleft()
        streaming: dict[str, int] = dict.fromkeys(PHASES, 0)
        for key, stream in list(self._streams.items()):
            if now - stream.last_frame_at > STREAM_IDLE_SECONDS:
                del self._streams[key]  # gone (disconnected) or stalled
            else:
                streaming[stream.phase] += 1
        flow = list(self._buckets)
        buckets = [b for b in flow if b.at - b.seconds >= now - PHASE_WINDOW]
        waits = sorted(wait for _, wait in self._waits)
        report = WorkerLoad(
            worker=self._worker,
            host=socket.gethostname(),
            cores=usable_cores(),
            seconds=sum(b.seconds for b in buckets),
            cpu_seconds=sum(b.cpu for b in buckets),
            serving_cpu_seconds=sum(b.serving_cpu for b in buckets),
            host_busy_seconds=sum(b.host_busy for b in buckets),
            frames=sum(b.frames for b in buckets),
            wait_p95=waits[min(len(waits) - 1, int(0.95 * len(waits)))] if waits else 0.0,
            frames_in_window=len(waits),
            phases={
                phase: PhaseLoad(
                    sessions=streaming[phase],
                    frames=int(sum(b.phases[phase][0] for b in buckets)),
                    engine_seconds=sum(b.phases[phase][1] for b in buckets),
                    session_seconds=sum(b.phases[phase][2] for b in buckets),
                    started=int(sum(b.phases[phase][3] for b in flow)),
                    flow_seconds=sum(b.phases[phase][4] for b in flow),
                    flow_frames=int(sum(b.phases[phase][0] for b in flow)),
                    flow_cpu_seconds=sum(b.phase_cpu[phase] for b in flow),
                    flow_session_seconds=sum(b.phases[phase][2] for b in flow),
                )
                for phase in PHASES
            },
            setup_seconds=sum(b.setup_seconds for b in flow),
            ended=sum(b.ended for b in flow),
            session_work_seconds=sum(b.session_work for b in buckets),
            flow_session_work_seconds=sum(b.session_work for b in flow),
        )
        self._published_at, self._published_cpu = now, cpu
        self._published_serving, self._published_host = serving, host
        return report


def _main_thread_cpu() -> float:
    """CPU seconds of the main thread: the event loop of a uvicorn worker."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(threading.main_thread().ident))
    except (AttributeError, OSError):  # not Linux: the event loop is not told apart
        return 0.0


def _host_busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _publish(report: WorkerLoad) -> None:
    cache.set(f"{_REGISTRY_KEY}:{report.worker}", asdict(report), REPORT_TTL)
    # The registry of worker keys: a read-modify-write that may lose a concurrent worker's
    # entry for a second; it is rewritten at that worker's next publication.
    registry = cache.get(_REGISTRY_KEY) or {}
    deadline = time.time() + REPORT_TTL
    registry = {worker: until for worker, until in registry.items() if until > time.time()}
    registry[report.worker] = deadline
    cache.set(_REGISTRY_KEY, registry, REPORT_TTL * 4)


engine_load = EngineLoad()


def worker_loads() -> list[WorkerLoad]:
    """The figures of every worker that published in the last REPORT_TTL seconds."""
    registry = cache.get(_REGISTRY_KEY) or {}
    keys = [f"{_REGISTRY_KEY}:{worker}" for worker in registry]
    loads = []
    for figures in cache.get_many(keys).values():
        try:
            loads.append(WorkerLoad(**figures))
        except TypeError:
            # Another version's figures (a rolling restart): that worker publishes again in
            # this version's form within a second of its restart.
            continue
    return loads


@dataclass(frozen=True)
class CostModel:
    """CPU seconds per second of one session in each phase, from the workers' figures."""

    per_phase: dict[str, float]  # phases with enough frames measured
    average: float  # a session at the window's mix of frames, for phases without their own figure
    streaming: dict[str, int]  # sessions streaming now, by phase
    # Mean seconds a session spends in each phase (empty until enough sessions ended).
    durations: dict[str, float] = field(default_factory=dict)
    setup: float = 0.0  # mean seconds from a session's creation to its first frame (0 until measured)
    # CPU seconds of a session's own work (its creation, connection and end), counted once a
    # session rather than in its frames (0 until the durations are measured).
    session_work: float = 0.0

    @classmethod
    def from_loads(cls, loads: Iterable[WorkerLoad], max_fps: int) -> CostModel:
        loads = list(loads)
        frames = sum(load.frames for load in loads)
        cpu = sum(load.cpu_seconds for load in loads)
        serving = min(cpu, sum(load.serving_cpu_seconds for load in loads))
        phases = {phase: [load.phases.get(phase, PhaseLoad()) for load in loads] for phase in PHASES}
        engine_time = sum(p.engine_seconds for group in phases.values() for p in group)
        session_time = sum(p.session_seconds for group in phases.values() for p in group)
        streaming = {phase: sum(p.sessions for p in group) for phase, group in phases.items()}
        if not frames:
            cold = max_fps * COLD_FRAME_CPU
            return cls({}, cold, streaming)
        # A session's life is measured on the sessions that ended: counting those still
        # streaming at the time they have streamed so far made a crowd that had just arrived
        # look like short sessions spent mostly in their start (issue 19, a narrow-eyed clip:
        # 4.7 s with 2.1 s of start, where sessions last about 14 s). Sessions skip phases (head
        # movement often comes while the blink is sought): each phase's time is shared among
        # all the sessions that ended, not those that entered it.
        started = sum(p.started for group in phases.values() for p in group)
        ended = sum(load.ended for load in loads)
        durations, setup, session_work = {}, 0.0, 0.0
        if ended >= MIN_SESSIONS_ENDED and started:
            durations = {phase: sum(p.flow_seconds for p in group) / ended
                         for phase, group in phases.items()}
            setup = sum(load.setup_seconds for load in loads) / started
            # A session's own work is taken out of its frames' CPU and counted once a session:
            # a crowd's creations and connections, all within its arrival, made each of its
            # frames look dearer then (about 0.5 ms of the 2 ms a frame more at the refusals on
            # a hand-held clip, issue 19). Refused creations count with the sessions that started.
            session_work = sum(load.flow_session_work_seconds for load in loads) / started
            cpu = max(serving, cpu - sum(load.session_work_seconds for load in loads))
        serving_per_frame = serving / frames
        rate = min(max_fps, frames / session_time) if session_time else max_fps
        average = rate * cpu / frames
        per_phase = {}
        for phase, group in phases.items():
            # Once sessions' lives are measured, a phase is priced over the same minute: its
            # frames in the last ten seconds after a quiet spell are a crowd's first ones, and
            # a session's frames after its start still carry most of its anti-spoofing scores
            # and its second identity check (issue 19: the blink phase at 0.145-0.157 of a core
            # while 10 users arrived, 0.118-0.136 after; the last of them refused at 1.65 cores
            # counted for sessions that ran at 1.44).
            flow_count = sum(p.flow_frames for p in group)
            flow_seconds = sum(p.flow_session_seconds for p in group)
            if durations and flow_count >= MIN_PHASE_FRAMES and flow_seconds:
                flow_cpu = sum(p.flow_cpu_seconds for p in group)
                per_phase[phase] = min(max_fps, flow_count / flow_seconds) * flow_cpu / flow_count
                continue
            count = sum(p.frames for p in group)
            seconds = sum(p.session_seconds for p in group)
            if count < MIN_PHASE_FRAMES or not seconds or not engine_time:
                continue
            share = sum(p.engine_seconds for p in group) / engine_time
            per_frame = serving_per_frame + (cpu - serving) * share / count
            per_phase[phase] = min(max_fps, count / seconds) * per_frame
        return cls(per_phase, average, streaming, durations, setup, session_work)

    def session(self, phase: str) -> float:
        """CPU seconds per second of a session in ``phase`` while it stays there."""
        return self.per_phase.get(phase, self.average)

    @property
    def life(self) -> float:
        """Mean seconds a session streams (0 until measured)."""
        return sum(self.durations.values())

    @property
    def session_work_rate(self) -> float:
        """CPU seconds per second of one place's sessions' own work: a session's creation,
        connection and end once every cycle (setup and life)."""
        cycle = self.life + self.setup
        return self.session_work / cycle if cycle > 0 else 0.0

    @property
    def per_session(self) -> float:
        """CPU seconds per second of a session over its life: each phase at its cost for the
        time a session spends in it (the window's mix until the durations are measured). The
        window's mix alone is this in a steady stream, but after a quiet spell its frames are
        those of a crowd that has just arrived, nearly all seeking their blinks: it counted
        every session to come at the costliest phase's price (issue 19: the last user of an
        arriving crowd refused at 1.63 cores counted for 16 sessions that ran at 1.37)."""
        life = self.life
        if life <= 0:
            return self.average
        return sum(seconds * self.session(phase) for phase, seconds in self.durations.items()) / life

    def projected(self, phase: str) -> float:
        """CPU seconds per second that a session now in ``phase`` takes over the next ``life``
        seconds, the span that a session admitted now will stream: what remains of this phase
        (half a session's mean time in it), the later phases at their mean durations, and, once
        the session has ended and its successor has been set up (created and connected:
        ``setup``), the successor at a session's mean (``per_session``: a crowd that keeps
        coming back). Counting every streaming session at its phase's cost right now refused
        at the moments when most of them sought a blink at once: the costliest phase, with 6
        of 8.5 streaming sessions in it at the refusals against 57% of the frames overall
        (issue 19: refusals with the host 69% busy). Until the durations are measured, the
        phase's own cost."""
        horizon = self.life
        if horizon <= 0:
            return self.session(phase)
        left, spent = horizon, 0.0
        for index, later in enumerate(PHASES[PHASES.index(phase):]):
            stay = min(left, self.durations[later] / (2 if index == 0 else 1))
            spent += stay * self.session(later)
            left -= stay
        left -= min(left, self.setup)
        return (spent + left * self.per_session) / horizon

    @property
    def waiting(self) -> float:
        """CPU seconds per second that an open session not yet streaming takes over the next
        ``life`` seconds: nothing for what remains of its setup (half the mean), then a session's
        mean (``per_session``). The full mean would count the time between creation and first
        frame (0.13-0.17 s of a 2.5 s session in bench/load.py) as if the session streamed."""
        horizon = self.life
        if horizon <= 0:
            return self.average
        return self.per_session * max(0.0, horizon - self.setup / 2) / horizon

    def demand(self, open_sessions: int) -> float:
        """CPU seconds per second that ``open_sessions`` sessions need: those streaming at
        what their phase lets expect (``projected``), the others (created, connecting, the new
        one) at what a session costs over its life once set up (``waiting``). Admission
        commits to a whole session, and counting each new one at the costliest, first phase
        refused sessions with the host 70% busy whenever the sessions in sync (a crowd that
        arrived together) sought their blinks at once; the latency rule answers such seconds
        of backlog if they last.

        The streaming counts are each worker's last publication, up to PUBLISH_INTERVAL old,
        while ``open_sessions`` is the database's count now: counts above it are scaled down
        to it, phase by phase. Uncapped, sessions that had just ended were still counted, and
        their successors again as waiting (issue 19: 10.5 streaming counted for 9 open
        sessions with 3-second sessions, refusals with the host 64% busy).

        Every open session's place also takes its sessions' own work (``session_work_rate``)."""
        streaming = sum(self.streaming.values())
        scale = min(1.0, open_sessions / streaming) if streaming else 1.0
        waiting = max(0, open_sessions - streaming)
        return sum(scale * count * self.projected(phase) for phase, count in self.streaming.items()) + (
            waiting * self.waiting + open_sessions * self.session_work_rate
        )


@dataclass(frozen=True)
class Decision:
    admit: bool
    reason: str = ""
    retry_after: int = 0
    inputs: dict = field(default_factory=dict)  # what the rules saw (logged with a refusal)


def decide(*, sessions: int) -> Decision:
    """Whether ``sessions`` sessions (every open one and the one asking) can stream at once
    without frames falling behind."""
    target = settings.FACEAUTH_ADMISSION_LATENCY_MS / 1000
    if target <= 0:
        return Decision(True)
    loads = [load for load in worker_loads() if load.frames_in_window or load.frames]
    inputs: dict[str, Any] = {"sessions": sessions, "workers": [_summary(load) for load in loads]}
    if not loads:
        model = CostModel.from_loads([], settings.FACEAUTH_MAX_FPS)
        return _cpu_decision(model, cores=usable_cores(), sessions=sessions, inputs=inputs)
    waiting = [load.wait_p95 for load in loads if load.frames_in_window]
    # Behind everywhere, not on one worker: a busy worker beside an idle one is a matter of
    # spread (sockets go where the kernel hands them), and refusing then idled a core.
    least = min(waiting) if len(waiting) == len(loads) else 0.0
    if least > target:
        return Decision(
            False,
            f"frames wait {least * 1000:.0f} ms for the engine at the 95th percentile on every "
            f"worker (target {target * 1000:.0f} ms)",
            retry_after=_retry_after(),
            inputs={"rule": "latency", **inputs},
        )
    # Per host: its cores, and the CPU that processes other than our workers take there.
    hosts: dict[str, list[WorkerLoad]] = {}
    for load in loads:
        hosts.setdefault(load.host, []).append(load)
    # Each worker's figure of its host covers its own window (since its last quiet spell, up
    # to PHASE_WINDOW): when load steps, the workers' windows disagree (0.39 and 0.91 of a core
    # for the same host at one refusal), and the largest, less every worker's CPU, counted
    # 0.36 cores of other processes where 0.06 ran. Their mean is steadier.
    others = sum(
        max(0.0, statistics.fmean(w.host_cpu_per_second for w in group)
            - sum(w.cpu_per_second for w in group))
        for group in hosts.values()
    )
    return _cpu_decision(
        CostModel.from_loads(loads, settings.FACEAUTH_MAX_FPS),
        cores=sum(group[0].cores for group in hosts.values()),
        others=others,
        sessions=sessions,
        inputs=inputs,
    )


def _summary(load: WorkerLoad) -> dict[str, Any]:
    return {
        "worker": load.worker, "fps": round(load.frames_per_second, 1), "cpu": round(load.cpu_per_second, 3),
        "host_cpu": round(load.host_cpu_per_second, 3), "wait_p95_ms": round(load.wait_p95 * 1000, 1),
        "streaming": {phase: p.sessions for phase, p in load.phases.items()},
    }


def _cpu_decision(model: CostModel, *, cores: int, sessions: int, others: float = 0.0,
                  inputs: dict | None = None) -> Decision:
    capacity = cores * settings.FACEAUTH_ADMISSION_CPU_SHARE - others
    demand = model.demand(sessions)
    if demand > capacity:
        return Decision(
            False,
            f"the engine would need {demand:.2f} of {capacity:.2f} usable CPU cores",
            retry_after=_retry_after(),
            inputs={
                "rule": "cpu", **(inputs or {}), "demand": round(demand, 3), "capacity": round(capacity, 3),
                "others": round(others, 3), "cores": cores,
                "session_cpu": {phase: round(model.session(phase), 4) for phase in PHASES},
                "projected_cpu": {phase: round(model.projected(phase), 4) for phase in PHASES},
                "phase_seconds": {phase: round(seconds, 2) for phase, seconds in model.durations.items()},
                "setup_seconds": round(model.setup, 2), "waiting_cpu": round(model.waiting, 4),
                "session_work_cpu": round(model.session_work, 4),
                "streaming": model.streaming,
            },
        )
    return Decision(True)


def counted_as_session_work(function: Callable[..., T]) -> Callable[..., T]:
    """``function`` with its CPU counted as a session's own work (``EngineLoad.session_work``)."""

    @functools.wraps(function)
    def counted(*args: Any, **kwargs: Any) -> T:
        with engine_load.session_work():
            return function(*args, **kwargs)

    return counted


def _retry_after() -> int:
    return random.randint(*RETRY_AFTER_SECONDS)


def _open_sessions() -> int:
    """Sessions that stream or are about to: active ones, and pending ones created recently
    (older pending ones were abandoned)."""
    recent = timezone.now() - timedelta(seconds=STARTING_SESSION_SECONDS)
    return AuthSession.objects.filter(
        Q(status=SessionStatus.ACTIVE) | Q(status=SessionStatus.PENDING, created_at__gte=recent)
    ).count()


def admit_new_session() -> None:
    """Raises Overloaded when one more session cannot be served at the latency target."""
    _raise_unless(decide(sessions=_open_sessions() + 1), "session")


def admit_connection() -> None:
    """Raises Overloaded when a created session should not start streaming now (it is
    already counted among the open sessions)."""
    _raise_unless(decide(sessions=_open_sessions()), "connection")


_named_sync: set[int] = set()


def _raise_unless(decision: Decision, asked: str) -> None:
    # Admission runs on the thread that serves Django's synchronous code (ORM): named for
    # per-thread CPU figures.
    ident = threading.get_ident()
    if ident not in _named_sync and threading.current_thread() is not threading.main_thread():
        _named_sync.add(ident)
        name_thread(SYNC_THREAD_NAME)
    if not decision.admit:
        logger.warning("admission refused: %s", json.dumps({"asked": asked, "at": round(time.time(), 3),
                                                            **decision.inputs}))
        raise Overloaded(
            f"The server is at capacity ({decision.reason}); retry in {decision.retry_after} s.",
            retry_after=decision.retry_after,
        )
