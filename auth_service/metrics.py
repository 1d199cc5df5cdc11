"""Prometheus metrics of the service, and the /metrics endpoint that exposes them.

Names (docs/operations.md documents each):
    faceauth_sessions_created_total{kind, mode}
    faceauth_sessions_finished_total{kind, mode, status, reason}
    faceauth_liveness_failures_total{reason}
    faceauth_frame_round_trip_seconds          histogram: frame received -> answer sent
    faceauth_frame_engine_seconds              histogram: time in the engine thread per frame
    faceauth_engine_backlog                    gauge: frames queued or running in the engine pool
    faceauth_websockets_open                   gauge: open capture WebSockets
    faceauth_websocket_errors_total{code}      error messages sent on capture WebSockets
    faceauth_webhook_attempts_total{outcome}   delivered / retry / failed

Several worker processes: set PROMETHEUS_MULTIPROC_DIR (an empty directory, the same for
every worker, emptied at each start) and prometheus_client writes per-process files that
/metrics adds up on any worker; gauges count live processes only. Without it each process
reports its own figures (a scrape reaches one worker). Counters and histograms of workers
that exited stay in the totals (as Prometheus expects of counters); the live gauges of
dead workers are dropped at each scrape."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

import psutil
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from auth_service.api.errors import page_not_found
from auth_service.errors import BEARER_CHALLENGE

# Frames take milliseconds on an idle server and seconds when it is overloaded.
_FRAME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

SESSIONS_CREATED = Counter(
    "faceauth_sessions_created_total", "Capture sessions created.", ["kind", "mode"]
)
SESSIONS_FINISHED = Counter(
    "faceauth_sessions_finished_total",
    "Capture sessions that reached a final state, by outcome reason ('' for success).",
    ["kind", "mode", "status", "reason"],
)
LIVENESS_FAILURES = Counter(
    "faceauth_liveness_failures_total",
    "Sessions that ended with liveness_failed or presentation_attack, by the liveness tracker's failure.",
    ["reason"],
)
FRAME_ROUND_TRIP = Histogram(
    "faceauth_frame_round_trip_seconds",
    "From a frame message received to its frame_processed or error answer sent.",
    buckets=_FRAME_BUCKETS,
)
ENGINE_TIME = Histogram(
    "faceauth_frame_engine_seconds",
    "Time one frame spent running in the face engine (decode, analysis, liveness, samples).",
    buckets=_FRAME_BUCKETS,
)
ENGINE_BACKLOG = Gauge(
    "faceauth_engine_backlog",
    "Frames submitted to the engine thread pool and not finished yet.",
    multiprocess_mode="livesum",
)
WEBSOCKETS_OPEN = Gauge(
    "faceauth_websockets_open", "Open capture WebSockets.", multiprocess_mode="livesum"
)
WEBSOCKET_ERRORS = Counter(
    "faceauth_websocket_errors_total", "Error messages sent on capture WebSockets.", ["code"]
)
WEBHOOK_ATTEMPTS = Counter(
    "faceauth_webhook_attempts_total",
    "Webhook delivery attempts: delivered, retry (will be tried again) or failed (gave up).",
    ["outcome"],
)


def session_finished(*, kind: str, mode: str, status: str, reason: str, liveness: dict) -> None:
    """Counts a session that reached a final state."""
    SESSIONS_FINISHED.labels(kind=kind, mode=mode, status=status, reason=reason).inc()
    if reason in ("liveness_failed", "presentation_attack"):
        LIVENESS_FAILURES.labels(reason=(liveness or {}).get("failure") or "not_confirmed").inc()


def _forget_dead_processes(directory: Path) -> None:
    """Drops the live-gauge files of worker processes that are gone (killed, restarted by
    their manager), so open sockets and backlog count live workers only."""
    for path in directory.glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if not psutil.pid_exists(pid):
            multiprocess.mark_process_dead(pid, str(directory))


def _registry() -> CollectorRegistry:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        _forget_dead_processes(Path(directory))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: the Prometheus text format. Answers 404 when metrics are disabled
    (FACEAUTH_METRICS_ENABLED) and 401 without the FACEAUTH_METRICS_TOKEN bearer token."""
    if not settings.FACEAUTH_METRICS_ENABLED:
        return page_not_found(request)
    token = settings.FACEAUTH_METRICS_TOKEN
    if token:
        shown = request.headers.get("Authorization", "")
        if not hmac.compare_digest(shown.encode(), f"Bearer {token}".encode()):
            response = HttpResponse("metrics need 'Authorization: Bearer <FACEAUTH_METRICS_TOKEN>'\n",
                                    status=401, content_type="text/plain")
            response["WWW-Authenticate"] = BEARER_CHALLENGE
            return response
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
