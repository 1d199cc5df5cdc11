import json
import subprocess
import sys

import pytest

from face_engine.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "face_engine", *args], capture_output=True, text=True, timeout=300
    )


def test_detect_prints_faces_with_quality(faces_dir, capsys):
    assert main(["detect", str(faces_dir / "group" / "obama_and_biden.jpg")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 3 and len(result["faces"]) == 3
    first = result["faces"][0]
    assert set(first["box"]) == {"x", "y", "width", "height"}
    assert 0 < first["score"] <= 1
    assert first["quality"]["ok"] is False
    assert first["quality"]["issues"][0]["code"] == "multiple_faces"


def test_compare_prints_the_verdict_and_exits_0_either_way(faces_dir, capsys):
    same = [str(faces_dir / "obama" / "obama.jpg"), str(faces_dir / "obama" / "obama2.jpg")]
    assert main(["compare", *same]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["match"] is True and result["similarity"] > result["threshold"]
    assert main(["compare", same[0], str(faces_dir / "biden" / "biden.jpg")]) == 0
    assert json.loads(capsys.readouterr().out)["match"] is False


def test_compare_exits_2_with_a_message_for_unusable_images(faces_dir, tmp_path):
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    result = run("compare", str(faces_dir / "obama" / "obama.jpg"), str(not_image))
    assert result.returncode == 2 and result.stdout == ""
    assert "notes.jpg" in result.stderr and "invalid_image" in result.stderr
    import cv2
    import numpy as np

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 90, np.uint8))
    result = run("compare", str(blank), str(faces_dir / "obama" / "obama.jpg"))
    assert result.returncode == 2 and "no face" in result.stderr
    result = run("compare", str(tmp_path / "missing.jpg"), str(blank))
    assert result.returncode == 2 and "missing.jpg" in result.stderr


def test_liveness_reports_a_live_clip(faces_dir, capsys):
    assert main(["liveness", str(faces_dir / "video" / "liveportrait_d0.mp4"), "--fps", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["live"] is True and result["blinks"] >= 1 and result["head_motion"] is True
    assert result["same_person"] is True and 28 <= result["frames"] <= 33


def test_liveness_refuses_a_file_that_is_not_a_video(tmp_path):
    bogus = tmp_path / "clip.mp4"
    bogus.write_bytes(b"not a video")
    result = run("liveness", str(bogus))
    assert result.returncode == 2 and "clip.mp4" in result.stderr


def test_pairs_scores_rows_and_summarizes_labelled_ones(faces_dir, tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "image_a,image_b,same\n"
        f"{faces_dir}/obama/obama.jpg,{faces_dir}/obama/obama3.jpg,1\n"
        f"{faces_dir}/obama/obama.jpg,{faces_dir}/biden/biden.jpg,0\n"
        f"{faces_dir}/rose_leslie/img1.jpg,{faces_dir}/rose_leslie/img2.jpg,1\n"
        f"{faces_dir}/rose_leslie/img1.jpg,{faces_dir}/kit_harington/john2.jpeg\n"
        f"{faces_dir}/obama/obama.jpg,missing.jpg,1\n"
    )
    assert main(["pairs", str(pairs)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 6
    assert [line.get("match") for line in lines[:4]] == [True, False, True, False]
    assert lines[4]["error"] == "invalid_image" and "missing.jpg" in lines[4]["message"]
    summary = lines[5]
    assert summary["summary"] is True and summary["accuracy"] == 1.0
    assert summary["false_match_rate"] == 0.0 and summary["false_non_match_rate"] == 0.0
    assert summary["errors"] == 1


def test_bench_prints_per_stage_figures(faces_dir):
    result = run("bench", str(faces_dir / "video" / "liveportrait_d0.mp4"), "--frames", "8", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for stage in ("decode", "detect", "landmarks", "quality", "embed", "tracking_path"):
        assert figures["stages"][stage]["median_ms"] > 0
    assert figures["throughput_fps"]["two_threads"] > 0
    assert figures["precision"]["YuNet"] == "f32" and figures["precision"]["SFace"] in ("bf16", "f32")


@pytest.mark.parametrize("argv", [["liveness", "x.mp4", "--fps", "0"], ["liveness", "x.mp4", "--fps", "100"]])
def test_liveness_rejects_silly_frame_rates(argv, capsys):
    assert main(argv) == 2
    assert "--fps" in capsys.readouterr().err


def test_pairs_prints_each_levels_threshold_for_the_operators_photos(faces_dir, tmp_path, capsys):
    people = {"obama": ["obama.jpg", "obama1.jpg", "obama2.jpg"], "biden": ["biden.jpg", "biden2.jpg"],
              "kit_harington": ["john1.jpeg", "john2.jpeg"], "rose_leslie": ["img1.jpg", "img2.jpg"]}
    files = [(who, f"{faces_dir}/{who}/{name}") for who, names in people.items() for name in names]
    rows = [f"{a},{b},{int(x == y)}" for i, (x, a) in enumerate(files) for y, b in files[i + 1:]]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("\n".join(rows) + "\n")
    assert main(["pairs", str(pairs), "--level", "medium"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["threshold"] == 0.404
    levels = {row["level"]: row for row in summary["levels"]}
    assert list(levels) == ["low", "medium", "high", "very_high"]
    for row in levels.values():
        assert row["impostor_pairs"] == 30 and row["genuine_pairs"] == 6
        assert row["fmr"] == 0.0 and row["threshold"] >= row["model_threshold"]
    assert levels["low"]["threshold"] < levels["high"]["threshold"] < levels["very_high"]["threshold"]


def test_compare_reads_webp_bmp_and_tiff_whatever_the_file_is_called(faces_dir, tmp_path, capsys):
    import cv2

    photo = cv2.imread(str(faces_dir / "obama" / "obama2.jpg"))
    names = []
    for extension, saved_as in ((".webp", "webp_photo.jpg"), (".bmp", "photo.bmp"), (".tiff", "photo.tif")):
        ok, data = cv2.imencode(extension, photo)
        (tmp_path / saved_as).write_bytes(data.tobytes())
        names.append(saved_as)
    for name in names:
        assert main(["compare", str(faces_dir / "obama" / "obama.jpg"), str(tmp_path / name)]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["match"] is True and result["level"] == "high" and result["threshold"] == 0.453
    assert main(["compare", str(tmp_path / names[0]), str(tmp_path / names[1]), "--threshold", "0.99"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["threshold"] == 0.99 and result["level"] is None
