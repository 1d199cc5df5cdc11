"""Admission control: refuse new sessions before the engine falls behind, so that the
sessions already admitted keep their frame latency.

Every server process measures its own engine: for each frame, how long it waited for an
engine thread (the backlog), and once a second the CPU the whole process used and the
frames it answered. It publishes these figures in the shared cache (Redis in production,
so every worker sees every other; process memory in the zero-setup mode) at most once a
second. A new session, or a socket that connects to one, is refused with ``Overloaded``
(HTTP 503 with Retry-After, WebSocket close 4503) when

- the 95th percentile of that wait over the last two seconds is above
  FACEAUTH_ADMISSION_LATENCY_MS on any worker (the engine is already behind), or
- every open session (streaming, or created recently and about to connect) and the new
  one, each at FACEAUTH_MAX_FPS and the measured CPU per frame, would need more than
  FACEAUTH_ADMISSION_CPU_SHARE of the cores of the hosts the workers run on, less what
  other processes on those hosts use (a shared machine has fewer cores to give).

The wait, not the whole time in the engine: one frame a second also computes an embedding
and takes several times an ordinary frame's work, so a percentile of the whole time says
how long those frames are, not whether frames queue up. The demand counts sessions, not
the CPU in use plus the newest ones: a session that connected within the last second is
partly in the measured CPU already, and counting it again refused sessions the machine
could carry (measured: refusals at 4 simulated users while 8 ran at p95 91 ms).

Refused clients are told to retry after 1 to 3 seconds, drawn at random: told the same
delay, a crowd refused together comes back together and meets the same verdict, while the
places freed meanwhile wait for it. The window of the latency rule is short so that a backlog
that has drained stops refusing within a couple of seconds, not five. Measured at 2.5x
capacity (30 simulated users, 3 runs each): admitted frames' p95 143-183 ms against 235-501
ms with a fixed delay and a 5 s window, at the same frames/s within noise (one pair of runs
at 2x capacity went the other way: 164 against 102 ms).

Until frames are measured (a cold start, or a quiet minute) a frame is assumed to cost
COLD_FRAME_CPU seconds of this host's cores, so that a crowd arriving at once is not all
admitted before the first measurement."""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from datetime import timedelta

import psutil
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from auth_service.errors import Overloaded
from auth_service.models import AuthSession, SessionStatus
from face_engine.models import usable_cores

WINDOW_SECONDS = 2.0  # recent frames that the latency percentile looks at
PUBLISH_INTERVAL = 1.0  # seconds between a worker's figures in the cache
RETRY_AFTER_SECONDS = (1, 3)  # a refused client's Retry-After is drawn from this range
REPORT_TTL = 5  # seconds: a worker that stopped publishing is forgotten after this
# A session created this recently that has not connected yet is about to add its load.
STARTING_SESSION_SECONDS = 30
_REGISTRY_KEY = "faceauth:admission:workers"
# A frame's CPU cost before any is measured: about twice what a 640x480 frame costs on a
# current x86 core, so a cold server admits somewhat fewer sessions than it could carry.
COLD_FRAME_CPU = 0.010


@dataclass(frozen=True)
class WorkerLoad:
    """One worker's published figures."""

    worker: str
    host: str
    cores: int
    cpu_per_second: float  # process CPU seconds per second (all threads)
    host_cpu_per_second: float  # the whole host's busy CPU seconds per second
    frames_per_second: float
    wait_p95: float  # seconds frames waited for an engine thread, over WINDOW_SECONDS
    frames_in_window: int


class EngineLoad:
    """This process's measurements; ``record`` is called from engine threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waits: deque[tuple[float, float]] = deque()  # (started at, seconds waited)
        self._frames = 0
        self._published_at = 0.0
        self._published_cpu = 0.0
        self._published_frames = 0
        self._published_host = 0.0
        self._worker = f"{socket.gethostname()[:40]}:{os.getpid()}"

    def record(self, wait: float) -> None:
        """One frame started in the engine ``wait`` seconds after it was submitted."""
        now = time.monotonic()
        report = None
        with self._lock:
            self._waits.append((now, wait))
            self._frames += 1
            if now - self._published_at >= PUBLISH_INTERVAL:
                report = self._report(now)
        if report is not None:
            _publish(report)

    def _report(self, now: float) -> WorkerLoad:
        while self._waits and self._waits[0][0] < now - WINDOW_SECONDS:
            self._waits.popleft()
        cpu = time.process_time()
        host = _host_busy_seconds()
        elapsed = now - self._published_at if self._published_at else WINDOW_SECONDS
        waits = sorted(wait for _, wait in self._waits)
        report = WorkerLoad(
            worker=self._worker,
            host=socket.gethostname(),
            cores=usable_cores(),
            cpu_per_second=(cpu - self._published_cpu) / elapsed if self._published_at else 0.0,
            host_cpu_per_second=(host - self._published_host) / elapsed if self._published_at else 0.0,
            frames_per_second=(self._frames - self._published_frames) / elapsed,
            wait_p95=waits[min(len(waits) - 1, int(0.95 * len(waits)))] if waits else 0.0,
            frames_in_window=len(waits),
        )
        self._published_at, self._published_cpu, self._published_frames = now, cpu, self._frames
        self._published_host = host
        return report


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
    return [WorkerLoad(**figures) for figures in cache.get_many(keys).values()]


@dataclass(frozen=True)
class Decision:
    admit: bool
    reason: str = ""
    retry_after: int = 0


def decide(*, sessions: int) -> Decision:
    """Whether ``sessions`` sessions (every open one and the one asking) can stream at once
    without frames falling behind."""
    target = settings.FACEAUTH_ADMISSION_LATENCY_MS / 1000
    if target <= 0:
        return Decision(True)
    loads = [load for load in worker_loads() if load.frames_in_window]
    if not loads:
        return _cpu_decision(cpu_per_frame=COLD_FRAME_CPU, cores=usable_cores(), sessions=sessions)
    slowest = max(load.wait_p95 for load in loads)
    if slowest > target:
        return Decision(
            False,
            f"frames wait {slowest * 1000:.0f} ms for the engine at the 95th percentile "
            f"(target {target * 1000:.0f} ms)",
            retry_after=_retry_after(),
        )
    frames = sum(load.frames_per_second for load in loads)
    used = sum(load.cpu_per_second for load in loads)
    # Per host: its cores, and the CPU that processes other than our workers take there.
    hosts: dict[str, list[WorkerLoad]] = {}
    for load in loads:
        hosts.setdefault(load.host, []).append(load)
    others = sum(
        max(0.0, max(w.host_cpu_per_second for w in group) - sum(w.cpu_per_second for w in group))
        for group in hosts.values()
    )
    return _cpu_decision(
        cpu_per_frame=used / frames if frames > 0 else COLD_FRAME_CPU,
        cores=sum(group[0].cores for group in hosts.values()),
        others=others,
        sessions=sessions,
    )


def _cpu_decision(*, cpu_per_frame: float, cores: int, sessions: int, others: float = 0.0) -> Decision:
    capacity = cores * settings.FACEAUTH_ADMISSION_CPU_SHARE - others
    demand = sessions * settings.FACEAUTH_MAX_FPS * cpu_per_frame
    if demand > capacity:
        return Decision(
            False,
            f"the engine would need {demand:.2f} of {capacity:.2f} usable CPU cores",
            retry_after=_retry_after(),
        )
    return Decision(True)


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
    _raise_unless(decide(sessions=_open_sessions() + 1))


def admit_connection() -> None:
    """Raises Overloaded when a created session should not start streaming now (it is
    already counted among the open sessions)."""
    _raise_unless(decide(sessions=_open_sessions()))


def _raise_unless(decision: Decision) -> None:
    if not decision.admit:
        raise Overloaded(
            f"The server is at capacity ({decision.reason}); retry in {decision.retry_after} s.",
            retry_after=decision.retry_after,
        )
