"""Tooling that measures the engine: synthesised attacks and live variations, the obeying-player
harness of the active mode, liveness evaluation (APCER/BPCER), match-level calibration and the
per-stage benchmark. The service never imports this package (tests/engine/test_layout.py checks
its import graph); the CLI and ``bench/`` do."""
