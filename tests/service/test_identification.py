"""Security levels in sessions and 1:N identification: the gallery-size rule, the margin
(``ambiguous``), 1,000 distractor identities, and the in-memory gallery kept current on every
process through the channel layer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from channels.layers import channel_layers

from auth_service.models import EnrolledUser, FaceTemplate
from auth_service.services import galleries, gallery, sessions
from auth_service.services.frames import Verdict
from auth_service.services.galleries import TemplateMatrix
from auth_service.services.galleries.memory import MemoryGallery
from face_engine import matching
from tests.live_server import REPO, clean_environment

from .conftest import unit

pytestmark = pytest.mark.django_db
LIVE = {"is_live": True, "blinks": 1, "head_movement": True}
REDIS = ("127.0.0.1", 6379)


def by_identity(samples) -> dict[str, list[np.ndarray]]:
    grouped: dict[str, list[np.ndarray]] = {}
    for sample in samples:
        grouped.setdefault(sample.identity, []).append(sample.embedding)
    return grouped


def add_distractors(client, count: int, seed: int = 5) -> None:
    """``count`` synthetic identities of 3 templates each: random directions with per-sample
    noise, whose similarity to a real face spreads like real different-person scores
    (standard deviation about 0.09)."""
    rng = np.random.default_rng(seed)
    users = EnrolledUser.objects.bulk_create(
        EnrolledUser(client=client, user_id=f"distractor-{i:04d}") for i in range(count)
    )
    templates = []
    for user in users:
        base = unit(rng.normal(size=128))
        for _ in range(3):
            vector = unit(base + 0.03 * rng.normal(size=128))
            templates.append(
                FaceTemplate(user=user, embedding=gallery.to_bytes(vector), model=gallery.MODEL_TAG)
            )
    FaceTemplate.objects.bulk_create(templates)


def authenticate(client, probes, *, user_id=None, metadata=None):
    created = sessions.authentication_session_create(client=client, user_id=user_id, metadata=metadata)
    sessions.session_connect(token=created.token)
    return sessions.session_finish(
        session_id=created.session.pk, verdict=Verdict(None, None, embeddings=probes, liveness=LIVE)
    )


def test_the_level_comes_from_the_session_then_the_client_then_the_server(credentials, settings):
    client = credentials.client
    assert gallery.match_level(client=client).name == "high"
    client.default_match_level = "low"
    assert gallery.match_level(client=client).name == "low"
    assert gallery.match_level(client=client, requested="very_high").name == "very_high"
    client.default_match_level = ""
    settings.FACEAUTH_DEFAULT_MATCH_LEVEL = "medium"
    assert gallery.match_level(client=client).name == "medium"
    with pytest.raises(matching.UnknownLevel):
        gallery.match_level(client=client, requested="lax")


def test_an_unknown_level_is_a_clear_400_and_a_known_one_is_kept(api, credentials):
    gallery.enroll(client=credentials.client, user_id="alice", embeddings=[unit(np.ones(128))], session=None)
    refused = api.post("/api/auth/authentication/", {"user_id": "alice", "metadata": {"match_level": "max"}},
                       format="json")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "invalid_request"
    assert "match_level must be one of low, medium, high, very_high" in error["message"]
    accepted = api.post("/api/auth/authentication/", {"metadata": {"match_level": "low"}}, format="json")
    assert accepted.status_code == 201


def test_operators_set_a_clients_default_level_in_the_admin(client, credentials):
    from django.contrib.auth.models import User

    User.objects.create_superuser("operator", "op@example.com", "pw-for-tests-only")
    client.login(username="operator", password="pw-for-tests-only")
    page = f"/admin/auth_service/apiclient/{credentials.client.pk}/change/"
    html = client.get(page).content.decode()
    assert "server default (high)" in html and "very_high (false match rate 1e-06)" in html
    form = {"name": credentials.client.name, "is_active": "on", "default_match_level": "very_high"}
    assert client.post(page, form).status_code == 302
    credentials.client.refresh_from_db()
    assert credentials.client.default_match_level == "very_high"
    assert client.post(page, {**form, "default_match_level": "lax"}).status_code == 200  # form error
    credentials.client.refresh_from_db()
    assert credentials.client.default_match_level == "very_high"


def test_the_result_carries_the_level_and_its_threshold(credentials, labelled_samples):
    people = by_identity(labelled_samples)
    obama = people["obama"]
    gallery.enroll(client=credentials.client, user_id="obama", embeddings=obama[:3], session=None)
    done = authenticate(
        credentials.client, obama[5:8], user_id="obama", metadata={"match_level": "very_high"}
    )
    assert done.result["success"] is True and done.result["match_level"] == "very_high"
    assert done.result["threshold"] == matching.LEVELS["very_high"].threshold
    credentials.client.default_match_level = "low"
    credentials.client.save()
    done = authenticate(credentials.client, people["biden"][:3], user_id="obama")
    assert done.result["match_level"] == "low" and done.result["reason"] == "no_match"


def test_1000_distractors_never_make_a_stranger_somebody_at_high(
    credentials, other_credentials, labelled_samples
):
    people = by_identity(labelled_samples)
    names = sorted(people)
    # Two folds: each half of the 22 people is enrolled once (with 1,000 distractors) while
    # every labelled face of the other half tries, one frame at a time, to pass as somebody.
    named_strangers, attempts, identified = [], 0, 0
    for creds, enrolled in ((credentials, names[::2]), (other_credentials, names[1::2])):
        for name in enrolled:
            gallery.enroll(client=creds.client, user_id=name, embeddings=people[name][:5], session=None)
        add_distractors(creds.client, 1000)
        for name in set(names) - set(enrolled):
            for probe in people[name]:
                result = gallery.identify(client=creds.client, probes=[probe])
                attempts += 1
                if result.user_id is not None:
                    named_strangers.append((name, result.user_id, result.similarity))
        assert result.gallery_size == len(enrolled) + 1000
        assert result.threshold == pytest.approx(
            matching.identification_threshold(matching.LEVELS["high"], len(enrolled) + 1000)
        )
        for name in enrolled:
            result = gallery.identify(client=creds.client, probes=people[name][-3:])
            identified += result.user_id == name
            assert result.user_id in (name, None)
    print(f"\n{attempts} one-frame stranger sessions against 11 people + 1000 distractors at high "
          f"(1:N threshold {result.threshold:.3f}): {len(named_strangers)} named; "
          f"enrolled people identified {identified}/{len(names)}")
    assert attempts == len(labelled_samples) and named_strangers == []
    assert identified >= len(names) - 2


def test_one_face_enrolled_twice_is_ambiguous_not_a_guess(credentials, labelled_samples):
    obama = by_identity(labelled_samples)["obama"]
    gallery.enroll(client=credentials.client, user_id="obama", embeddings=obama[:3], session=None)
    gallery.enroll(client=credentials.client, user_id="barack", embeddings=obama[3:6], session=None)
    done = authenticate(credentials.client, obama[6:9])
    assert done.status == "failed" and done.result["reason"] == "ambiguous"
    assert done.result["user_id"] is None and "more than one enrolled user" in done.result["detail"]
    assert done.result["similarity"] - done.result["runner_up_similarity"] < matching.DEFAULT_MARGIN
    # Verification of either name still works: the claim says which one.
    assert authenticate(credentials.client, obama[6:9], user_id="barack").result["success"] is True


def test_enrollment_and_deletion_reach_the_in_memory_gallery(
    credentials, settings, labelled_samples, django_capture_on_commit_callbacks
):
    settings.FACEAUTH_GALLERY_BACKEND = "memory"
    people = by_identity(labelled_samples)
    backend = galleries.backend()
    client = credentials.client
    with django_capture_on_commit_callbacks(execute=True):
        gallery.enroll(client=client, user_id="biden", embeddings=people["biden"][:3], session=None)
    assert gallery.identify(client=client, probes=people["obama"][:3]).user_id is None
    assert backend.cached(client.client_id)
    with django_capture_on_commit_callbacks(execute=True):
        gallery.enroll(client=client, user_id="obama", embeddings=people["obama"][3:6], session=None)
    assert not backend.cached(client.client_id)
    assert gallery.identify(client=client, probes=people["obama"][:3]).user_id == "obama"
    with django_capture_on_commit_callbacks(execute=True):
        gallery.user_delete(client=client, user_id="obama")
    assert gallery.identify(client=client, probes=people["obama"][:3]).user_id is None


def test_a_stale_gallery_never_names_a_deleted_user(credentials, labelled_samples):
    obama = by_identity(labelled_samples)["obama"]
    gallery.enroll(client=credentials.client, user_id="obama", embeddings=obama[:3], session=None)
    assert gallery.identify(client=credentials.client, probes=obama[3:6]).user_id == "obama"
    # Without the commit hook (as when an invalidation is lost) the cached matrix still has
    # the user; the exact scoring from the database does not.
    gallery.user_delete(client=credentials.client, user_id="obama")
    assert galleries.backend().cached(credentials.client.client_id)
    assert gallery.identify(client=credentials.client, probes=obama[3:6]).user_id is None


def redis_running() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(REDIS) == 0


@pytest.mark.skipif(not redis_running(), reason="Redis is not running at 127.0.0.1:6379")
def test_a_change_in_another_process_reaches_this_process_through_the_channel_layer(settings):
    prefix = f"faceauth-test-{uuid.uuid4().hex[:12]}"
    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": f"redis://{REDIS[0]}:{REDIS[1]}", "socket_timeout": 15}],
                   "prefix": f"{prefix}:asgi"},
    }}
    channel_layers.backends.clear()
    client_id = str(uuid.uuid4())
    rng = np.random.default_rng(1)
    templates = TemplateMatrix.build([1, 2], ["a", "b"], rng.normal(size=(2, 128)))
    memory = MemoryGallery(lambda _: templates)
    try:
        assert memory.search(client_id, templates.vectors[:1], 1)[0][0].user_id == "a"
        assert memory.invalidations.subscribed.is_set() and memory.cached(client_id)
        other_process = (
            "import django; django.setup()\n"
            "from auth_service.services.galleries.invalidation import Invalidations\n"
            f"Invalidations(lambda client_id: None).publish({client_id!r})\n"
        )
        environment = clean_environment(
            DJANGO_SETTINGS_MODULE="config.settings", REDIS_URL=f"redis://{REDIS[0]}:{REDIS[1]}/0",
            FACEAUTH_CACHE_KEY_PREFIX=prefix, FACEAUTH_DATA_DIR=str(REPO / ".faceauth"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        )
        done = subprocess.run([sys.executable, "-c", other_process], env=environment, cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 10
        while memory.cached(client_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not memory.cached(client_id)
    finally:
        memory.invalidations.stop()
        channel_layers.backends.clear()


def test_a_failing_gallery_backend_falls_back_to_exact_search(credentials, labelled_samples, monkeypatch):
    class Unreachable:
        def search(self, client_id, probes, k):
            raise ConnectionError("pgvector is down")

    obama = by_identity(labelled_samples)["obama"]
    gallery.enroll(client=credentials.client, user_id="obama", embeddings=obama[:3], session=None)
    monkeypatch.setattr(galleries, "backend", Unreachable)
    assert gallery.identify(client=credentials.client, probes=obama[3:6]).user_id == "obama"
