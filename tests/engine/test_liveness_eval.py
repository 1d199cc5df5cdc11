"""liveness-eval: a manifest of clips in, one JSON line per clip and APCER/BPCER out."""

import json

from face_engine.cli import main
from face_engine.evaluation.attacks import Presentation, write_set
from face_engine.evaluation.liveness_eval import ClipResult, summary


def result(label, note, live):
    return ClipResult(f"{label}-{note}", label, note, live, int(live), live, 3 * live, None, 10)


def test_summary_counts_apcer_and_bpcer_per_kind():
    figures = summary([
        result("attack", "tilt", False), result("attack", "tilt", True), result("attack", "still", False),
        result("live", "original", True), result("live", "original", False), result("live", "dark", True),
    ])
    assert figures["attacks"] == 3 and figures["attacks_accepted"] == 1 and figures["apcer"] == 0.3333
    assert figures["live"] == 3 and figures["live_refused"] == 1 and figures["bpcer"] == 0.3333
    assert figures["by_kind"]["attack:tilt"]["apcer"] == 0.5
    assert figures["by_kind"]["attack:still"]["apcer"] == 0.0
    assert figures["max_apcer_per_kind"] == 0.5


def test_the_cli_scores_a_manifest(faces_dir, tmp_path, capsys):
    attack = Presentation("attack", "jitter_fast", faces_dir / "obama" / "obama.jpg", 0, frames=20)
    manifest = write_set([attack], tmp_path, [faces_dir / "video" / "liveportrait_d0.mp4"])
    assert main(["liveness-eval", str(manifest)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3
    live, spoof, figures = lines
    assert live["label"] == "live" and live["live"] is True and live["blinks"] >= 1 and live["frames"] <= 31
    assert spoof["label"] == "attack" and spoof["live"] is False and spoof["blinks"] == 0
    assert figures["summary"] is True and figures["apcer"] == 0.0 and figures["bpcer"] == 0.0


def test_a_bad_manifest_row_is_refused(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("clip.mp4,genuine\n")
    assert main(["liveness-eval", str(manifest)]) == 2
    assert "live|attack" in capsys.readouterr().err
