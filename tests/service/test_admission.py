"""Admission control: session creation answers 503 + Retry-After + the JSON error when the
measured engine load says one more session would miss the latency target, and a socket that
connects anyway gets a clear error and close 4503 while its session stays usable."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from auth_service.errors import Overloaded
from auth_service.models import AuthSession, SessionStatus
from auth_service.services import admission, sessions
from auth_service.services.frames import FrameProcessor, ProcessingConfig
from config.asgi import application
from face_engine.models import usable_cores


@pytest.fixture(autouse=True)
def _admission_on(settings):
    settings.FACEAUTH_ADMISSION_LATENCY_MS = 100
    settings.FACEAUTH_ADMISSION_CPU_SHARE = 0.8
    settings.FACEAUTH_MAX_FPS = 10


def publish(*, wait_p95: float = 0.02, cpu_per_second: float = 0.5, frames_per_second: float = 100.0,
            worker: str = "host-a:1", host: str = "host-a", cores: int = 2,
            host_cpu_per_second: float | None = None, serving_cpu_per_second: float = 0.0,
            phases: dict[str, admission.PhaseLoad] | None = None, seconds: float = 10.0,
            setup_seconds: float = 0.0, session_work_seconds: float = 0.0,
            flow_session_work_seconds: float = 0.0, ended: int = 0) -> None:
    """What a worker publishes after measuring its engine (admission.EngineLoad), as rates
    over a window of ``seconds``; by default nothing else runs on its host."""
    host_cpu = cpu_per_second if host_cpu_per_second is None else host_cpu_per_second
    admission._publish(admission.WorkerLoad(
        worker=worker, host=host, cores=cores, seconds=seconds, cpu_seconds=cpu_per_second * seconds,
        serving_cpu_seconds=serving_cpu_per_second * seconds, host_busy_seconds=host_cpu * seconds,
        frames=round(frames_per_second * seconds), wait_p95=wait_p95, frames_in_window=500,
        phases=phases or {}, setup_seconds=setup_seconds, session_work_seconds=session_work_seconds,
        flow_session_work_seconds=flow_session_work_seconds, ended=ended,
    ))


def test_a_cold_server_assumes_a_frame_cost_until_it_measures_one(db, settings):
    # 2 cores x 0.8 at 10 frames/s and 10 ms a frame: 16 sessions may stream at once.
    settings.FACEAUTH_ADMISSION_CPU_SHARE = 0.8 * 2 / usable_cores()
    assert admission.decide(sessions=1).admit
    assert admission.decide(sessions=16).admit
    assert not admission.decide(sessions=17).admit


def test_measured_frames_are_published_for_every_worker_to_read(db):
    load = admission.EngineLoad()
    for _ in range(20):
        load.record(0.03)  # each frame waited 30 ms for an engine thread
    (published,) = [w for w in admission.worker_loads() if w.worker == load._worker]
    assert published.frames_in_window >= 1 and published.wait_p95 == pytest.approx(0.03)
    assert published.cores >= 1


def test_frames_waiting_for_the_engine_on_every_worker_refuse(db):
    publish(worker="host-a:1")
    assert admission.decide(sessions=1).admit
    # One worker behind while another keeps up: a matter of spread, not of capacity (refusing
    # then left a core idle).
    publish(worker="host-a:2", wait_p95=0.25)
    assert admission.decide(sessions=1).admit
    publish(worker="host-a:1", wait_p95=0.18)
    decision = admission.decide(sessions=1)
    assert not decision.admit and "180 ms" in decision.reason and decision.retry_after >= 1
    assert decision.inputs["rule"] == "latency"
    assert sorted(w["wait_p95_ms"] for w in decision.inputs["workers"]) == [180.0, 250.0]


def test_refused_clients_are_told_different_delays(db):
    # One delay for everyone brought the refused crowd back at the same second.
    publish(wait_p95=0.25)
    delays = {admission.decide(sessions=1).retry_after for _ in range(60)}
    low, high = admission.RETRY_AFTER_SECONDS
    assert delays <= set(range(low, high + 1)) and len(delays) > 1


def test_a_drained_backlog_stops_refusing_once_it_leaves_the_window(db, monkeypatch):
    clock = _fake_monotonic(monkeypatch)
    load = admission.EngineLoad()
    for _ in range(20):
        load.record(0.3)  # a backlog: each frame waited 300 ms
    assert not admission.decide(sessions=1).admit
    clock[0] += admission.WINDOW_SECONDS - 0.5
    load.record(0.005)  # the backlog has drained, but its frames are still in the window
    assert not admission.decide(sessions=1).admit
    clock[0] += 1.0
    load.record(0.005)
    assert admission.decide(sessions=1).admit


def test_every_session_is_counted_at_the_measured_cpu_per_frame(db):
    # 200 frames/s cost 1.0 CPU s/s: 5 ms a frame, so a session at 10 frames/s needs 0.05
    # of a core, and 1.6 usable cores carry 32 sessions, whatever the CPU in use right now.
    publish(cpu_per_second=1.0, frames_per_second=200.0, cores=2)
    assert admission.decide(sessions=32).admit
    assert not admission.decide(sessions=33).admit
    # A second host adds its cores.
    publish(worker="host-b:1", host="host-b", cpu_per_second=0.0, frames_per_second=0.0, cores=2)
    assert admission.decide(sessions=64).admit
    assert not admission.decide(sessions=65).admit


Phase = admission.PhaseLoad


def mix(blink: int, parallax: int, samples: int) -> dict[str, admission.PhaseLoad]:
    """Ten seconds of 100 frames/s (10 a session), where a blink-seeking frame spends 15 ms in
    the engine, a parallax frame 6.7 ms and a sample-collecting frame 3.3 ms; ``blink`` etc.
    are the sessions streaming in each phase now."""
    return {
        "blink": Phase(sessions=blink, frames=400, engine_seconds=6.0, session_seconds=40.0,
                       flow_seconds=40.0),
        "parallax": Phase(sessions=parallax, frames=300, engine_seconds=2.0, session_seconds=30.0,
                          flow_seconds=30.0),
        "samples": Phase(sessions=samples, frames=300, engine_seconds=1.0, session_seconds=30.0,
                         flow_seconds=30.0),
    }


def test_sessions_are_counted_at_the_cost_of_their_phase(db):
    # 1.0 CPU s/s for 100 frames/s, 0.1 of it the event loop (1 ms a frame, every phase);
    # the other 0.9 shared by the phases' time in the engine: a blink-seeking session costs
    # 0.16 of a core, one measuring parallax 0.077, one collecting samples 0.043.
    publish(cpu_per_second=1.0, frames_per_second=100.0, serving_cpu_per_second=0.1, phases=mix(4, 3, 3))
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    assert model.session("blink") == pytest.approx(0.16)
    assert model.session("parallax") == pytest.approx(0.0767, abs=1e-4)
    assert model.session("samples") == pytest.approx(0.0433, abs=1e-4)
    # The streaming sessions are counted at what they cost now (1.0 together), new ones at
    # what a session costs over its life, the measured mix (0.1): 6 more fit in 1.6 cores.
    assert model.average == pytest.approx(0.1)
    assert model.demand(10) == pytest.approx(1.0)
    assert admission.decide(sessions=16).admit
    refused = admission.decide(sessions=17)
    assert not refused.admit and refused.inputs["rule"] == "cpu"
    assert refused.inputs["streaming"] == {"start": 0, "blink": 4, "parallax": 3, "samples": 3}
    # The same sessions later, all collecting samples (0.43 together): room for 11 more,
    # where one average for every session would still see room for 6.
    publish(cpu_per_second=1.0, frames_per_second=100.0, serving_cpu_per_second=0.1, phases=mix(0, 0, 10))
    assert admission.decide(sessions=21).admit
    assert not admission.decide(sessions=22).admit
    # And all seeking a blink (1.6 together): no room at all.
    publish(cpu_per_second=1.0, frames_per_second=100.0, serving_cpu_per_second=0.1, phases=mix(10, 0, 0))
    assert admission.decide(sessions=10).admit
    assert not admission.decide(sessions=11).admit


def test_streaming_sessions_are_counted_at_what_their_phase_lets_expect_over_a_sessions_life(db):
    # The mix above, with 20 sessions starting in the window: a session spends 2 s seeking a
    # blink, 1.5 s measuring parallax and 1.5 s collecting samples (5 s in all).
    phases = mix(10, 0, 0)
    phases["blink"] = dataclasses.replace(phases["blink"], started=20)
    publish(cpu_per_second=1.0, frames_per_second=100.0, serving_cpu_per_second=0.1, phases=phases, ended=20)
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    assert model.durations == pytest.approx({"start": 0.0, "blink": 2.0, "parallax": 1.5, "samples": 1.5})
    # Over the next 5 s, a session seeking a blink now seeks it 1 s more (0.16), measures
    # parallax 1.5 s (0.077) and collects samples 1.5 s (0.043); for the last second the next
    # session takes its place at the average (0.1): 0.088 a second. One collecting samples now
    # ends within 0.75 s, and its successor costs the average: 0.0915.
    blink_then = 0.16 + 1.5 * 0.07667 + 1.5 * 0.04333 + 0.1
    assert model.projected("blink") == pytest.approx(blink_then / 5, abs=1e-4)
    assert model.projected("samples") == pytest.approx((0.75 * 0.04333 + 4.25 * 0.1) / 5, abs=1e-4)
    # Ten sessions that all seek a blink at once need 0.88 over the coming seconds, not the
    # 1.6 they take right now: 7 more fit in 1.6 cores.
    assert model.demand(10) == pytest.approx(0.88, abs=1e-3)
    assert admission.decide(sessions=17).admit
    assert not admission.decide(sessions=18).admit


def test_the_time_sessions_take_to_be_set_up_is_not_counted_as_streaming(db):
    # The mix above; the 20 sessions took 0.5 s each from creation to their first frame.
    phases = mix(10, 0, 0)
    phases["blink"] = dataclasses.replace(phases["blink"], started=20)
    publish(cpu_per_second=1.0, frames_per_second=100.0, serving_cpu_per_second=0.1, phases=phases, ended=20,
            setup_seconds=20 * 0.5)
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    assert model.setup == pytest.approx(0.5)
    # A session collecting samples ends within 0.75 s; its successor streams 0.5 s later.
    assert model.projected("samples") == pytest.approx((0.75 * 0.04333 + 3.75 * 0.1) / 5, abs=1e-4)
    # A created session not streaming yet is half way through its setup, on average.
    assert model.waiting == pytest.approx(0.1 * 4.75 / 5)
    assert model.demand(12) == pytest.approx(10 * model.projected("blink") + 2 * model.waiting)
    assert model.demand(12) < admission.CostModel(
        model.per_phase, model.average, model.streaming, model.durations).demand(12)


def test_after_a_quiet_spell_sessions_to_come_are_counted_over_their_whole_life(db):
    # A crowd has just arrived: ten seconds of frames are nearly all blink-seeking ones, so
    # the window's mix costs about what a blink-seeking session does (0.15 here). The last
    # minute's sessions spent 2 s seeking a blink, 1.5 s measuring parallax and 1.5 s
    # collecting samples: over its life a session costs 0.1 (2 x 0.16 + 1.5 x 0.077 +
    # 1.5 x 0.043, over 5 s), which is what successors and waiting sessions are counted at.
    phases = {
        "blink": Phase(sessions=10, frames=900, engine_seconds=13.5, session_seconds=90.0,
                       started=20, flow_seconds=40.0),
        "parallax": Phase(frames=50, engine_seconds=1 / 3, session_seconds=5.0, flow_seconds=30.0),
        "samples": Phase(frames=50, engine_seconds=1 / 6, session_seconds=5.0, flow_seconds=30.0),
    }
    publish(cpu_per_second=1.5, frames_per_second=100.0, serving_cpu_per_second=0.1, phases=phases,
            ended=20)
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    assert model.average == pytest.approx(0.15)
    assert model.durations == pytest.approx({"start": 0.0, "blink": 2.0, "parallax": 1.5, "samples": 1.5})
    life_cost = (2 * model.session("blink") + 1.5 * model.session("parallax")
                 + 1.5 * model.session("samples")) / 5
    assert model.per_session == pytest.approx(life_cost) and model.per_session < 0.11
    assert model.waiting == pytest.approx(model.per_session)
    assert model.projected("samples") == pytest.approx(
        (0.75 * model.session("samples") + 4.25 * model.per_session) / 5)
    # Five more sessions waiting to stream: counted at 0.1 each, not at the crowd's 0.15.
    assert model.demand(15) - model.demand(10) == pytest.approx(5 * model.per_session)


def test_a_crowd_s_first_frames_do_not_price_every_session_to_come(db):
    # A crowd arrived 1.4 s ago: twenty sessions streamed their first frames (20 ms each in the
    # engine) and a second of seeking a blink (10 ms a frame); the minute before saw sessions
    # spend 0.4 s in their first frames, 2 s seeking a blink, 1.5 s measuring parallax and 1.5
    # s collecting samples. Counted in the blink phase, the first frames would price a blink
    # frame at 13.3 ms and a session over its life at 0.080 of a core; measured apart, each
    # phase keeps its own cost and a session costs 0.0727 (0.4 x 0.2 + 2 x 0.1 + 1.5 x 0.05
    # + 1.5 x 0.025, over 5.4 s).
    phases = {
        "start": Phase(sessions=0, frames=80, engine_seconds=1.6, session_seconds=8.0, started=20,
                       flow_seconds=8.0),
        "blink": Phase(sessions=20, frames=160, engine_seconds=1.6, session_seconds=16.0, flow_seconds=40.0),
        "parallax": Phase(frames=100, engine_seconds=0.5, session_seconds=10.0, flow_seconds=30.0),
        "samples": Phase(frames=100, engine_seconds=0.25, session_seconds=10.0, flow_seconds=30.0),
    }
    publish(cpu_per_second=0.395, frames_per_second=44.0, phases=phases, ended=20)
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    assert model.session("start") == pytest.approx(0.2)
    assert model.session("blink") == pytest.approx(0.1)
    assert model.per_session == pytest.approx(0.3925 / 5.4)
    assert model.demand(25) - model.demand(20) == pytest.approx(5 * model.waiting)


def test_once_sessions_lives_are_measured_a_phase_is_priced_over_the_minute(db):
    # A crowd arrived 4 s ago after a quiet spell: the last ten seconds hold its sessions'
    # first blink-seeking frames, which carry their anti-spoofing scores and second identity
    # check (25 ms of CPU a frame: 6/9 of 15 s over 400 frames). Over the minute, which holds
    # the sessions before the spell too, a blink-seeking frame took 11 ms.
    phases = mix(10, 0, 0)
    phases["blink"] = dataclasses.replace(
        phases["blink"], started=20, flow_frames=3000, flow_cpu_seconds=33.0, flow_session_seconds=300.0)
    publish(cpu_per_second=1.5, frames_per_second=100.0, phases=phases, ended=20)
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    assert model.session("blink") == pytest.approx(0.11)
    # The other phases have too few frames over the minute: the last ten seconds price them.
    assert model.session("parallax") == pytest.approx(10 * 1.5 * 10 * (2 / 9) / 300)
    # Until five sessions have ended, the last ten seconds price every phase.
    publish(cpu_per_second=1.5, frames_per_second=100.0, phases=phases, ended=4)
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    assert model.session("blink") == pytest.approx(10 * 1.5 * 10 * (6 / 9) / 400)


def test_an_interval_s_cpu_is_shared_among_its_own_frames(db):
    # One second: 1.2 s of process CPU, 0.1 of it the event loop's and 0.1 sessions' own work;
    # 8 blink-seeking frames spent 0.12 s in the engine, 2 sample frames 0.03 s.
    interval = admission._Bucket(
        at=1000.0, seconds=1.0, cpu=1.2, serving_cpu=0.1, host_busy=1.3, frames=10,
        phases={"start": [0, 0.0, 0.0, 0, 0.0], "blink": [8, 0.12, 0.8, 0, 0.0],
                "parallax": [0, 0.0, 0.0, 0, 0.0], "samples": [2, 0.03, 0.2, 0, 0.0]},
        setup_seconds=0.0, session_work=0.1, ended=0,
    )
    assert interval.phase_cpu["blink"] == pytest.approx(0.1 * 8 / 10 + 1.0 * 0.12 / 0.15)
    assert interval.phase_cpu["samples"] == pytest.approx(0.1 * 2 / 10 + 1.0 * 0.03 / 0.15)
    assert interval.phase_cpu["parallax"] == 0.0


def test_a_session_s_own_work_is_counted_once_a_session_not_in_its_frames(db):
    # The mix above, 20 sessions started in the minute; each took 50 ms of CPU to be created,
    # connected and ended, 0.5 s of it in the cost window. The frames' CPU is the other 9.5 s:
    # a blink-seeking frame 15.2 ms (1 ms event loop + 6/9 of 8.5 s over 400 frames).
    phases = mix(10, 0, 0)
    phases["blink"] = dataclasses.replace(phases["blink"], started=20)
    publish(cpu_per_second=1.0, frames_per_second=100.0, serving_cpu_per_second=0.1, phases=phases, ended=20,
            session_work_seconds=0.5, flow_session_work_seconds=20 * 0.05)
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    assert model.session_work == pytest.approx(0.05)
    assert model.session("blink") == pytest.approx(10 * (0.001 + 8.5 * 6 / 9 / 400))
    assert model.average == pytest.approx(0.095)
    # A place runs a session every 5 s: 0.01 of a core for its creations, connections, ends.
    assert model.session_work_rate == pytest.approx(0.01)
    assert model.demand(12) - model.demand(10) == pytest.approx(2 * (model.waiting + 0.01))
    assert model.demand(10) == pytest.approx(10 * (model.projected("blink") + 0.01))


def _burn_cpu(seconds: float) -> float:
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        sum(range(1000))
    return time.thread_time() - started


def test_a_session_s_own_work_is_the_cpu_of_the_thread_doing_it(db, monkeypatch):
    clock = _fake_monotonic(monkeypatch)
    load = admission.EngineLoad()
    load.measured(0.001, FakePipeline().process, clock, 0.01)  # starts the measurements
    with load.session_work():
        spent = _burn_cpu(0.02)
    clock[0] += 1.0
    load.measured(0.001, FakePipeline().process, clock, 0.01)
    published = load._report(clock[0])
    assert spent <= published.session_work_seconds < spent + 0.01
    assert published.flow_session_work_seconds == published.session_work_seconds
    clock[0] += admission.PHASE_WINDOW + 1  # out of the cost window, still in the flow's
    load.measured(0.001, FakePipeline().process, clock, 0.01)
    published = load._report(clock[0])
    assert published.session_work_seconds == 0 and published.flow_session_work_seconds >= spent


def test_creating_a_session_is_counted_as_its_own_work(api, monkeypatch):
    load = admission.EngineLoad()
    monkeypatch.setattr(admission, "engine_load", load)
    assert api.post("/api/auth/enrollment/", {"user_id": "user123"}, format="json").status_code == 201
    assert load._open_work > 0


def test_the_time_sessions_spend_in_each_phase_outlasts_the_cost_window(db, monkeypatch):
    clock = _fake_monotonic(monkeypatch)
    load = admission.EngineLoad()
    load.measured(0.001, FakePipeline().process, clock, 0.01)  # starts the measurements
    for _ in range(6):  # six sessions, each 1 s seeking a blink then ending
        session = FakePipeline()
        for frame in range(10):
            session.ends = frame == 9
            load.measured(0.001, session.process, clock, 0.01)
            clock[0] += 0.09
    clock[0] += admission.PHASE_WINDOW + 1  # a quiet spell
    arriving = FakePipeline()
    load.measured(0.001, arriving.process, clock, 0.01)
    clock[0] += 0.09
    load.measured(0.001, arriving.process, clock, 0.01)
    published = load._report(clock[0])
    # The costs are the last ten seconds' (no more than the newcomer's frames); the flow is
    # the minute's: the sessions that started, and the six that ended with their whole life.
    assert published.frames <= 2 and published.phases["blink"].session_seconds <= 0.2 + 1e-9
    assert published.phases["blink"].started == 7 and published.ended == 6
    assert published.phases["blink"].flow_seconds == pytest.approx(6 * 1.0, abs=0.01)
    # The minute's frames and CPU by phase: every frame since the measurements started.
    assert published.phases["blink"].flow_frames == 6 * 10 + 2
    assert published.phases["blink"].flow_cpu_seconds > 0
    clock[0] += admission.FLOW_WINDOW
    load.measured(0.001, arriving.process, clock, 0.01)
    published = load._report(clock[0])
    assert published.phases["blink"].started == 0 and published.ended == 0  # a minute later, gone too


def test_a_session_s_life_is_measured_on_the_sessions_that_ended(db, monkeypatch):
    clock = _fake_monotonic(monkeypatch)
    load = admission.EngineLoad()
    load.measured(0.001, FakePipeline().process, clock, 0.01)  # starts the measurements
    for _ in range(6):  # six sessions of 3 s each, one after the other
        session = FakePipeline()
        for frame in range(30):
            session.ends = frame == 29
            load.measured(0.001, session.process, clock, 0.01)
            clock[0] += 0.09
    crowd = [FakePipeline() for _ in range(10)]  # then a crowd arrives and streams for 1 s
    for _ in range(10):
        for session in crowd:
            load.measured(0.001, session.process, clock, 0.001)
        clock[0] += 0.09
    admission._publish(load._report(clock[0]))
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    # Not (18 + 10) s over 16 sessions that started (1.75 s): the crowd's sessions have not
    # shown how long they last.
    assert model.life == pytest.approx(3.0, abs=0.01)


def test_until_enough_sessions_ended_a_streaming_session_costs_what_its_phase_costs_now(db):
    phases = mix(4, 3, 3)
    phases["blink"] = dataclasses.replace(phases["blink"], started=20)
    publish(cpu_per_second=1.0, frames_per_second=100.0, serving_cpu_per_second=0.1, phases=phases,
            ended=admission.MIN_SESSIONS_ENDED - 1)
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    assert model.durations == {} and model.life == 0
    assert model.projected("blink") == pytest.approx(0.16)
    assert model.projected("samples") == pytest.approx(0.0433, abs=1e-4)
    assert model.demand(10) == pytest.approx(1.0)


def test_streaming_counts_above_the_open_sessions_are_scaled_down_to_them(db):
    # Publications are up to a second old: sessions that ended since are still counted as
    # streaming. The database's count of open sessions is now's: 5 open sessions of this mix
    # cost half of the 10 published (1.0), not 1.0 plus 0 waiting.
    publish(cpu_per_second=1.0, frames_per_second=100.0, serving_cpu_per_second=0.1, phases=mix(4, 3, 3))
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    assert model.demand(5) == pytest.approx(0.5)
    assert model.demand(12) == pytest.approx(1.0 + 2 * 0.1)


def test_sessions_are_counted_at_the_frame_rate_they_send(db):
    # 90 frames/s over 100 session-seconds: 9 frames/s a session, not FACEAUTH_MAX_FPS.
    phases = {"blink": Phase(sessions=10, frames=900, engine_seconds=9.0, session_seconds=100.0)}
    publish(cpu_per_second=0.9, frames_per_second=90.0, phases=phases)
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    assert model.session("blink") == pytest.approx(0.09)
    # Never above the rate limit, whatever a short window measured.
    phases = {"blink": Phase(sessions=10, frames=900, engine_seconds=9.0, session_seconds=60.0)}
    publish(cpu_per_second=0.9, frames_per_second=90.0, phases=phases)
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    assert model.session("blink") == pytest.approx(0.10)


def test_a_phase_with_few_frames_measured_costs_the_average(db):
    phases = {"blink": Phase(sessions=1, frames=5, engine_seconds=0.5, session_seconds=0.5),
              "samples": Phase(sessions=9, frames=995, engine_seconds=9.5, session_seconds=99.5)}
    publish(cpu_per_second=1.0, frames_per_second=100.0, phases=phases)
    model = admission.CostModel.from_loads(admission.worker_loads(), max_fps=10)
    assert "blink" not in model.per_phase and model.session("blink") == pytest.approx(model.average)
    assert model.average == pytest.approx(0.1)


class FakeTracker:
    def __init__(self, blink: bool, parallax: bool) -> None:
        self.measuring_blink, self.measuring_parallax = blink, parallax


class FakePipeline:
    """What admission reads of a frame pipeline: its liveness tracker; ``process`` returns a
    report whose verdict ends the stream."""

    def __init__(self, blink: bool = True, parallax: bool = True) -> None:
        self.tracker = FakeTracker(blink, parallax)
        self.ends = False

    def process(self, clock: list[float], cost: float) -> SimpleNamespace:
        clock[0] += cost
        return SimpleNamespace(verdict="done" if self.ends else None)


def test_frames_are_measured_by_the_phase_of_their_session(db, monkeypatch):
    clock = _fake_monotonic(monkeypatch)
    load = admission.EngineLoad()
    seeking, moving = FakePipeline(), FakePipeline(blink=False)
    done = FakePipeline(blink=False, parallax=False)
    for _ in range(25):  # 2.5 s of three sessions at 10 frames/s
        load.measured(0.001, seeking.process, clock, 0.012)
        load.measured(0.001, moving.process, clock, 0.006)
        load.measured(0.001, done.process, clock, 0.003)
        clock[0] += 0.1 - 0.021
    seeking.tracker.measuring_blink = False  # the blink is in: the next frames measure parallax
    load.measured(0.001, seeking.process, clock, 0.006)
    done.ends = True  # its verdict: no longer streaming
    load.measured(0.001, done.process, clock, 0.003)
    clock[0] += 0.5
    load.measured(0.001, moving.process, clock, 0.006)
    published = load._report(clock[0])  # what it would publish now
    assert {phase: p.sessions for phase, p in published.phases.items()} == {
        "start": 0, "blink": 0, "parallax": 2, "samples": 0}
    blink, samples = published.phases["blink"], published.phases["samples"]
    assert blink.frames >= 20 and blink.engine_seconds / blink.frames == pytest.approx(0.012)
    assert samples.engine_seconds / samples.frames == pytest.approx(0.003)
    assert blink.frames / blink.session_seconds == pytest.approx(10, rel=0.05)
    # Each session started once, in its first frame's phase; the very first frame, which starts
    # the measurements (the CPU clocks), is in no window.
    assert {phase: p.started for phase, p in published.phases.items()} == {
        "start": 0, "blink": 0, "parallax": 1, "samples": 1}


class CountingPipeline(FakePipeline):
    """A frame pipeline that counts the frames it processed, as FrameProcessor does."""

    def __init__(self) -> None:
        super().__init__()
        self.frames_processed = 0

    def process(self, clock: list[float], cost: float) -> SimpleNamespace:
        self.frames_processed += 1
        return super().process(clock, cost)


def test_a_session_s_first_frames_are_measured_apart_from_the_phases_after(db, monkeypatch):
    clock = _fake_monotonic(monkeypatch)
    load = admission.EngineLoad()
    load.measured(0.001, FakePipeline().process, clock, 0.01)  # starts the measurements
    session = CountingPipeline()
    for frame in range(10):  # its first frames cost twice the later ones
        load.measured(0.001, session.process, clock, 0.02 if frame < admission.START_FRAMES else 0.01)
        clock[0] += 0.09
    published = load._report(clock[0])
    start, blink = published.phases["start"], published.phases["blink"]
    assert (start.frames, blink.frames) == (admission.START_FRAMES, 10 - admission.START_FRAMES)
    assert start.engine_seconds / start.frames == pytest.approx(0.02)
    assert blink.engine_seconds / blink.frames == pytest.approx(0.01)
    assert start.started == 1 and start.sessions == 0 and blink.sessions == 1


def test_a_session_s_setup_is_measured_from_its_creation_to_its_first_frame(db, monkeypatch):
    clock = _fake_monotonic(monkeypatch)
    load = admission.EngineLoad()
    load.measured(0.001, FakePipeline().process, clock, 0.01)  # starts the measurements
    created = FakePipeline()
    created.created_at = clock[0]
    clock[0] += 0.4  # created, then connected: its first frame 0.4 s later
    for _ in range(3):
        load.measured(0.001, created.process, clock, 0.01)
        clock[0] += 0.09
    published = load._report(clock[0])
    assert published.setup_seconds == pytest.approx(0.41)  # to the end of its first frame
    assert sum(p.started for p in published.phases.values()) == 1


def test_the_phase_is_read_from_the_frame_pipelines_liveness_tracker(settings):
    processor = FrameProcessor(ProcessingConfig.from_settings(samples_needed=3))
    assert admission.session_phase(processor) == "start"
    processor.frames_processed = admission.START_FRAMES
    assert admission.session_phase(processor) == "blink"
    processor.tracker._blinks = 1  # a blink is in: the eye model no longer runs
    assert admission.session_phase(processor) == "parallax"
    processor.tracker._parallax_frames = processor.tracker.config.parallax_frames
    assert admission.session_phase(processor) == "samples"
    active = FrameProcessor(ProcessingConfig.from_settings(samples_needed=3, liveness_mode="active"))
    assert admission.session_phase(active) in admission.PHASES  # the passive tracker inside


def test_a_refusal_is_logged_with_the_rules_inputs(db, monkeypatch):
    logged: list[str] = []
    monkeypatch.setattr(admission.logger, "warning", lambda message, *args: logged.append(message % args))
    publish(cpu_per_second=1.0, frames_per_second=100.0, serving_cpu_per_second=0.1, phases=mix(4, 3, 3))
    monkeypatch.setattr(admission, "_open_sessions", lambda: 20)
    with pytest.raises(Overloaded):
        admission.admit_new_session()
    (line,) = logged
    assert line.startswith("admission refused: ")
    inputs = json.loads(line.removeprefix("admission refused: "))
    assert inputs["asked"] == "session" and inputs["rule"] == "cpu" and inputs["sessions"] == 21
    assert inputs["demand"] > inputs["capacity"] and inputs["workers"][0]["fps"] == 100.0


def test_open_sessions_are_the_active_ones_and_those_about_to_connect(credentials):
    def create() -> AuthSession:
        return sessions.enrollment_session_create(
            client=credentials.client, user_id="user123", target_samples=3
        ).session

    waiting, just_connected, streaming, old_pending, ended = create(), create(), create(), create(), create()
    sessions.transition(just_connected, SessionStatus.ACTIVE, started_at=timezone.now())
    sessions.transition(streaming, SessionStatus.ACTIVE, started_at=timezone.now() - timedelta(seconds=60))
    # Created long ago and never connected: abandoned, not about to start.
    AuthSession.objects.filter(pk=old_pending.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    sessions.session_abort(session_id=ended.id, reason="disconnected")
    assert waiting.status == SessionStatus.PENDING
    # Each counted once, however long it has streamed (the measured CPU is per frame).
    assert admission._open_sessions() == 3  # waiting, just_connected and streaming


def test_cpu_taken_by_other_processes_on_the_host_is_not_offered(db):
    # Two workers on one host use 0.25 each; the host is busy 1.5 as the two saw it over their
    # windows (1.6 and 1.4): 1.0 goes to others.
    publish(worker="host-a:1", cpu_per_second=0.25, frames_per_second=50.0, host_cpu_per_second=1.6)
    publish(worker="host-a:2", cpu_per_second=0.25, frames_per_second=50.0, host_cpu_per_second=1.4)
    # 1.6 usable - 1.0 for others leaves 0.6: twelve sessions at 0.05 each.
    assert admission.decide(sessions=12).admit
    assert not admission.decide(sessions=13).admit


def test_figures_in_another_versions_form_are_skipped(db):
    # During a rolling restart a worker of the previous version may still have figures in the cache.
    publish(worker="host-a:1", cpu_per_second=1.0, frames_per_second=200.0)
    old = {"worker": "host-a:2", "host": "host-a", "cores": 2, "cpu_per_second": 1.0,
           "frames_per_second": 1.0, "host_cpu_per_second": 1.0, "wait_p95": 9.0, "frames_in_window": 500}
    admission.cache.set(f"{admission._REGISTRY_KEY}:host-a:2", old, admission.REPORT_TTL)
    registry = admission.cache.get(admission._REGISTRY_KEY)
    admission.cache.set(admission._REGISTRY_KEY, {**registry, "host-a:2": time.time() + 5}, 20)
    assert [load.worker for load in admission.worker_loads()] == ["host-a:1"]
    assert admission.decide(sessions=1).admit


def test_a_target_of_zero_turns_admission_control_off(db, settings):
    settings.FACEAUTH_ADMISSION_LATENCY_MS = 0
    publish(wait_p95=5.0)
    assert admission.decide(sessions=100).admit


def test_session_creation_answers_503_with_retry_after_and_a_json_error(api):
    publish(wait_p95=0.4)
    response = api.post("/api/auth/enrollment/", {"user_id": "user123"}, format="json")
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "overloaded" and "capacity" in error["message"]
    assert set(response.json()) == {"error"}


def test_the_error_is_in_the_catalogue():
    assert Overloaded.http_status == 503 and Overloaded.close_code == 4503 and Overloaded.fatal


@pytest.mark.django_db(transaction=True)
async def test_a_socket_that_connects_anyway_gets_a_clear_error_and_its_session_waits(credentials):
    created = await _create(credentials)
    await _publish_async(wait_p95=0.4)
    communicator = WebsocketCommunicator(application, f"/ws/auth/process-image/{created.token}/")
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    error = await communicator.receive_json_from(timeout=10)
    assert error["type"] == "error" and error["code"] == "overloaded" and error["fatal"] is True
    assert "retry in" in error["message"]
    assert (await communicator.receive_output(timeout=10))["code"] == 4503
    await communicator.wait(timeout=10)
    assert await _status(created.session.id) == SessionStatus.PENDING  # usable once load drops

    await _publish_async(wait_p95=0.02)
    communicator = WebsocketCommunicator(application, f"/ws/auth/process-image/{created.token}/")
    await communicator.connect(timeout=10)
    assert (await communicator.receive_json_from(timeout=10))["type"] == "connection_established"
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_connecting_a_socket_is_counted_as_its_session_s_own_work(credentials, monkeypatch):
    created = await _create(credentials)
    load = admission.EngineLoad()
    monkeypatch.setattr(admission, "engine_load", load)
    communicator = WebsocketCommunicator(application, f"/ws/auth/process-image/{created.token}/")
    await communicator.connect(timeout=10)
    assert (await communicator.receive_json_from(timeout=10))["type"] == "connection_established"
    assert load._open_work > 0  # the admission decision and the session's claim
    await communicator.disconnect()


async def _create(credentials):
    return await database_sync_to_async(sessions.enrollment_session_create)(
        client=credentials.client, user_id="user123", target_samples=3
    )


async def _publish_async(**figures) -> None:
    await database_sync_to_async(publish)(**figures)


async def _status(session_id) -> str:
    return await database_sync_to_async(lambda: AuthSession.objects.get(pk=session_id).status)()


def _fake_monotonic(monkeypatch) -> list[float]:
    """Admission's monotonic clock, read from the returned one-element list (the rest of ``time``
    unchanged)."""
    clock = [1000.0]
    monkeypatch.setattr(admission, "time", SimpleNamespace(
        monotonic=lambda: clock[0], process_time=time.process_time, thread_time=time.thread_time,
        time=time.time, clock_gettime=time.clock_gettime, pthread_getcpuclockid=time.pthread_getcpuclockid))
    return clock
