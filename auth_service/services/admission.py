"""Admission control: refuse new sessions before the engine falls behind, so that the
sessions already admitted keep their frame latency.

Every server process measures its own engine: for each frame, the time from submission to
the engine pool until its result (queue wait plus work), and once a second the CPU the
whole process used and the frames it answered. It publishes these figures in the shared
cache (Redis in production, so every worker sees every other; process memory in the
zero-setup mode) at most once a second. A new session, or a socket that connects to one, is
refused with ``Overloaded`` (HTTP 503 with Retry-After, WebSocket close 4503) when

- the 95th percentile of the engine latency over the last few seconds is above
  FACEAUTH_ADMISSION_LATENCY_MS on any worker (the engine is already behind), or
- the CPU the workers use now, plus what the sessions about to start will need at
  FACEAUTH_MAX_FPS (each at the measured CPU per frame), would exceed
  FACEAUTH_ADMISSION_CPU_SHARE of the cores of the hosts the workers run on, less what
  other processes on those hosts use (a shared machine has fewer cores to give).

Until frames are measured (a cold start, or a quiet minute) a frame is assumed to cost
COLD_FRAME_CPU seconds of this host's cores, so that a crowd arriving at once is not all
admitted before the first measurement."""

from __future__ import annotations

import math
import os
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

WINDOW_SECONDS = 5.0  # recent frames that the latency percentile looks at
PUBLISH_INTERVAL = 1.0  # seconds between a worker's figures in the cache
REPORT_TTL = 5  # seconds: a worker that stopped publishing is forgotten after this
# A session created this recently that has not connected yet is about to add its load.
STARTING_SESSION_SECONDS = 30
# A session that connected this recently is not yet in the published CPU figures (measured
# over the last PUBLISH_INTERVAL, published up to PUBLISH_INTERVAL late): counted as starting,
# or a crowd arriving within a second would all be admitted against the same old figures.
JUST_STARTED_SECONDS = 2 * PUBLISH_INTERVAL
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
    latency_p95: float  # seconds, engine queue wait + work, over WINDOW_SECONDS
    frames_in_window: int


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class EngineLoad:
    """This process's measurements; ``record`` is called from engine threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latencies: deque[tuple[float, float]] = deque()  # (finished at, seconds)
        self._frames = 0
        self._published_at = 0.0
        self._published_cpu = 0.0
        self._published_frames = 0
        self._published_host = 0.0
        self._worker = f"{socket.gethostname()[:40]}:{os.getpid()}"

    def record(self, latency: float) -> None:
        """One frame left the engine ``latency`` seconds after it was submitted."""
        now = time.monotonic()
        report = None
        with self._lock:
            self._latencies.append((now, latency))
            self._frames += 1
            if now - self._published_at >= PUBLISH_INTERVAL:
                report = self._report(now)
        if report is not None:
            _publish(report)

    def _report(self, now: float) -> WorkerLoad:
        while self._latencies and self._latencies[0][0] < now - WINDOW_SECONDS:
            self._latencies.popleft()
        cpu = time.process_time()
        host = _host_busy_seconds()
        elapsed = now - self._published_at if self._published_at else WINDOW_SECONDS
        latencies = sorted(latency for _, latency in self._latencies)
        report = WorkerLoad(
            worker=self._worker,
            host=socket.gethostname(),
            cores=_cores(),
            cpu_per_second=(cpu - self._published_cpu) / elapsed if self._published_at else 0.0,
            host_cpu_per_second=(host - self._published_host) / elapsed if self._published_at else 0.0,
            frames_per_second=(self._frames - self._published_frames) / elapsed,
            latency_p95=latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else 0.0,
            frames_in_window=len(latencies),
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


def decide(*, starting_sessions: int) -> Decision:
    """Whether ``starting_sessions`` more sessions (already counted ones included) can
    start streaming now without pushing frame latency past the target."""
    target = settings.FACEAUTH_ADMISSION_LATENCY_MS / 1000
    if target <= 0:
        return Decision(True)
    loads = [load for load in worker_loads() if load.frames_in_window]
    if not loads:
        return _cpu_decision(used=0.0, cpu_per_frame=COLD_FRAME_CPU, cores=_cores(),
                             starting_sessions=starting_sessions)
    slowest = max(load.latency_p95 for load in loads)
    if slowest > target:
        return Decision(
            False,
            f"frame latency is {slowest * 1000:.0f} ms at the 95th percentile "
            f"(target {target * 1000:.0f} ms)",
            retry_after=max(1, math.ceil(WINDOW_SECONDS)),
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
        used=used,
        cpu_per_frame=used / frames if frames > 0 else COLD_FRAME_CPU,
        cores=sum(group[0].cores for group in hosts.values()),
        others=others,
        starting_sessions=starting_sessions,
    )


def _cpu_decision(
    *, used: float, cpu_per_frame: float, cores: int, starting_sessions: int, others: float = 0.0
) -> Decision:
    capacity = cores * settings.FACEAUTH_ADMISSION_CPU_SHARE - others
    demand = used + starting_sessions * settings.FACEAUTH_MAX_FPS * cpu_per_frame
    if demand > capacity:
        return Decision(
            False,
            f"the engine would need {demand:.2f} of {capacity:.2f} usable CPU cores",
            retry_after=max(1, math.ceil(PUBLISH_INTERVAL * 2)),
        )
    return Decision(True)


def _starting_sessions() -> int:
    """Sessions whose load the published figures do not show yet: created recently and not
    connected (they start streaming soon), or connected within the last two publications."""
    now = timezone.now()
    return AuthSession.objects.filter(
        Q(status=SessionStatus.PENDING, created_at__gte=now - timedelta(seconds=STARTING_SESSION_SECONDS))
        | Q(status=SessionStatus.ACTIVE, started_at__gte=now - timedelta(seconds=JUST_STARTED_SECONDS))
    ).count()


def admit_new_session() -> None:
    """Raises Overloaded when one more session cannot be served at the latency target."""
    _raise_unless(decide(starting_sessions=_starting_sessions() + 1))


def admit_connection() -> None:
    """Raises Overloaded when a created session should not start streaming now (its load
    is already counted among the starting sessions)."""
    _raise_unless(decide(starting_sessions=_starting_sessions()))


def _raise_unless(decision: Decision) -> None:
    if not decision.admit:
        raise Overloaded(
            f"The server is at capacity ({decision.reason}); retry in {decision.retry_after} s.",
            retry_after=decision.retry_after,
        )
