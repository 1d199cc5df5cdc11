"""The seed's whole flow against a real server, with the real client script and real
footage: enroll, verify (same person: success; another person: failure), identify, and a
photo held up to the camera (liveness failure). Runs once per backend (see conftest)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from .conftest import ClientRun, Server

MAN = "video/liveportrait_d9.mp4"  # man with glasses, 19.6 s, many blinks
WOMAN = "video/liveportrait_d10.mp4"  # a woman, 15 s


@pytest.fixture(scope="module")
def enrollments(server: Server, faces_dir) -> dict[str, ClientRun]:
    return {
        # The first 10 s of each clip; later footage is kept for authentication.
        "man": server.client("enrollment", "man", "--video", str(faces_dir / MAN),
                             "--duration", "10", "--target-samples", "5"),
        "woman": server.client("enrollment", "woman", "--video", str(faces_dir / WOMAN),
                               "--duration", "10"),
    }


@pytest.fixture
def enrolled(enrollments):
    failed = [run.explain() for run in enrollments.values() if run.returncode != 0]
    if failed:
        pytest.fail("enrollment failed, so authentication cannot be tested:\n" + "\n".join(failed))


def test_enrollment_prints_every_message_and_a_decrypted_result(enrollments):
    for user_id, run in enrollments.items():
        assert run.returncode == 0, run.explain()
        for expected in ("connection_established", "frame 1:", "enrollment_complete",
                         "Decrypted result (HMAC verified)", "SUCCESS"):
            assert expected in run.output, run.explain()
        result = run.result
        assert result["success"] is True and result["user_id"] == user_id
        assert result["samples"] == 5 and result["id"] == result["enrollment_id"]
        assert result["liveness"]["is_live"] is True and result["timestamp"].endswith("Z")


def test_verification_with_later_footage_of_the_same_person_succeeds(server, enrolled, faces_dir):
    run = server.client("authentication", "man", "--video", str(faces_dir / MAN), "--start", "10")
    assert run.returncode == 0, run.explain()
    result = run.result
    assert result["success"] is True and result["mode"] == "verification"
    assert result["user_id"] == "man" and result["similarity"] >= result["threshold"]
    assert result["liveness"]["is_live"] is True


def test_verification_of_another_person_fails(server, enrolled, faces_dir):
    run = server.client("authentication", "man", "--video", str(faces_dir / WOMAN), "--start", "7")
    assert run.returncode == 1, run.explain()
    result = run.result
    assert result["success"] is False and result["reason"] == "no_match"
    assert result["user_id"] is None and result["similarity"] < result["threshold"]


def test_identification_finds_the_right_user(server, enrolled, faces_dir):
    # Binary frames (raw JPEG bytes) this time.
    run = server.client("authentication", "--video", str(faces_dir / MAN), "--start", "10", "--binary")
    assert run.returncode == 0, run.explain()
    assert run.result["mode"] == "identification" and run.result["user_id"] == "man"


def test_a_photo_repeated_as_frames_fails_liveness(server, enrolled, faces_dir, tmp_path):
    shutil.copy(faces_dir / "obama" / "obama.jpg", tmp_path / "photo.jpg")
    run = server.client("authentication", "man", "--images", str(tmp_path), "--loop")
    assert run.returncode == 1, run.explain()
    assert run.result["success"] is False and run.result["reason"] == "liveness_failed"


def test_errors_exit_with_status_2(server, enrolled, faces_dir):
    wrong = server.client("authentication", "man", "--video", str(faces_dir / MAN),
                          secret_key="fas_wrong")
    assert wrong.returncode == 2 and "invalid_credentials" in wrong.output, wrong.explain()
    unknown = server.client("authentication", "nobody", "--video", str(faces_dir / MAN))
    assert unknown.returncode == 2 and "user_not_found" in unknown.output, unknown.explain()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_seed_curl_calls_work_as_written(server):
    def curl(*args: str) -> dict:
        completed = subprocess.run(["curl", "-s", *args], capture_output=True, text=True,
                                   timeout=30, check=True)
        return json.loads(completed.stdout)

    api_key, secret_key = server.credentials["api_key"], server.credentials["secret_key"]
    auth = curl("-X", "POST", f"{server.base_url}/api/auth/client/",
                "-H", "Content-Type: application/json",
                "-d", json.dumps({"api_key": api_key, "secret_key": secret_key}))
    assert {"token", "client_id", "expires_at"} <= set(auth)
    session = curl("-X", "POST", f"{server.base_url}/api/auth/enrollment/",
                   "-H", f"Authorization: Bearer {auth['token']}",
                   "-H", "Content-Type: application/json",
                   "-d", json.dumps({"user_id": "user123", "metadata": {"target_samples": 3}}))
    assert session["status"] == "pending" and session["target_samples"] == 3
    assert session["websocket_url"].startswith("ws://127.0.0.1:")
    status = curl(f"{server.base_url}/api/auth/sessions/{session['enrollment_id']}/status/",
                  "-H", f"Authorization: Bearer {api_key}")
    assert status["status"] == "pending" and status["is_active"] is True


def test_active_liveness_through_the_client(server, enrolled, faces_dir):
    """--liveness active: the server announces the challenges, the client prints each new one,
    and the decrypted result records the mode and the challenges passed. The footage is a
    recording that knows nothing of the prompts (that it fails is measured in
    tests/engine/test_challenge_player.py; here the plumbing is checked)."""
    # Looped: a passed challenge may leave later ones pending past the clip's last frame; the
    # session then ends by its verdict or its frame budget, never because frames ran out.
    run = server.client("authentication", "man", "--video", str(faces_dir / MAN), "--start", "10",
                        "--liveness", "active", "--loop")
    assert run.returncode in (0, 1), run.explain()
    assert "liveness=active challenges=" in run.output and ">>> challenge 1/" in run.output, run.explain()
    liveness = run.result["liveness"]
    assert liveness["mode"] == "active" and 2 <= liveness["challenges_total"] <= 3
    assert liveness["is_live"] == (len(liveness["challenges_passed"]) == liveness["challenges_total"])
    if not liveness["is_live"]:
        assert run.result["reason"] == "liveness_failed" and liveness["failure"] in (
            "challenge_timeout", "challenge_wrong_action", None), run.explain()
