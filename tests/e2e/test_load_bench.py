"""The load benchmark's short mode, as CI runs it: it starts its own server, streams real
frames from two simulated users and prints its figures. No timing is asserted (CI machines
differ); only that it ran and that its last line has the documented form."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.bench_scripts import load_bench_script
from tests.live_server import REPO, clean_environment

LAST_LINE = re.compile(
    r"users=(\d+) fps=(\d+\.\d) p50_ms=(\d+) p95_ms=(\d+) errors=(\d+) completed=(\d+)"
)


def test_the_short_load_run_prints_its_figures_and_a_well_formed_last_line(faces_dir):
    run = subprocess.run([sys.executable, "bench/load.py", "--short"], cwd=REPO, env=clean_environment(),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    match = LAST_LINE.fullmatch(lines[-1])
    assert match, lines[-1]
    users, fps, _, _, _, _ = match.groups()
    assert int(users) == 2 and float(fps) > 0
    for heading in ("round trip ms: p50", "frames/s answered", "sessions completed", "errors:",
                    "server process", "by thread, ms a frame:", "admission refusals logged:",
                    "once every user had arrived",
                    "per-frame budget", "eye model", "anti-spoofing", "Python serving", "sizing:",
                    "engine CPU per frame", "floor (decode + detection + landmarks"):
        assert heading in run.stdout, run.stdout


def test_the_refusal_report_says_when_in_the_run_the_refusals_came():
    report = load_bench_script("load.py", "load_bench").refusal_report(
        [{"rule": "latency", "asked": "session", "at": 1000.0 + seconds} for seconds in (2.5, 3.0, 30.0)],
        started_at=1000.0, arrival=5.0,
    )
    assert report[0] == "admission refusals logged: 3 (latency rule at session 3)"
    assert "  seconds into the run at the refusals: first 2.5, median 3.0, last 30.0" in report


def test_the_refusal_report_tells_an_uneven_spread_during_the_arrival_from_one_after_it():
    def refusal(seconds: float, fps: tuple[float, float]) -> dict:
        return {"rule": "latency", "asked": "session", "at": 1000.0 + seconds,
                "workers": [{"fps": f, "host_cpu": 1.6 + f / 100} for f in fps]}

    report = load_bench_script("load.py", "load_bench").refusal_report(
        [refusal(1.0, (0.0, 20.0)), refusal(2.0, (5.0, 30.0)), refusal(12.0, (10.0, 40.0)),
         refusal(20.0, (38.0, 40.0))],
        started_at=1000.0, arrival=5.0,
    )
    assert report[-2].endswith("refusals while a worker ran under half the busiest's frames: 3"), report
    assert report[-1] == ("    1 of them after every user had arrived: the quieter worker at 10.0-10.0 "
                          "frames/s, the host busy 1.85-1.85 cores"), report
