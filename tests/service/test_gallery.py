"""Templates and matching, always confined to one API client."""

from __future__ import annotations

import numpy as np
import pytest

import face_engine as fe
from auth_service.errors import UserNotFound
from auth_service.models import FaceTemplate
from auth_service.services import gallery
from face_engine import matching

from .conftest import unit

pytestmark = pytest.mark.django_db


def person(seed: int, count: int = 3, spread: float = 0.05) -> list[np.ndarray]:
    """Embeddings of one synthetic identity: small variations around a random direction."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=128)
    return [unit(base + spread * rng.normal(size=128)) for _ in range(count)]


def test_replace_is_the_default_rule(credentials):
    first = gallery.enroll(client=credentials.client, user_id="u", embeddings=person(1), session=None)
    second = gallery.enroll(
        client=credentials.client, user_id="u", embeddings=person(1, 2), session=None
    )
    assert (first.templates_total, second.templates_total) == (3, 2)
    assert second.user.enrollments == 2


def test_append_adds_templates_of_the_same_person_up_to_the_cap(credentials, settings):
    settings.FACEAUTH_MAX_TEMPLATES_PER_USER = 5
    gallery.enroll(client=credentials.client, user_id="u", embeddings=person(1), session=None)
    result = gallery.enroll(
        client=credentials.client, user_id="u", embeddings=person(1, 4), session=None, mode="append"
    )
    assert result.failure is None and result.templates_added == 4
    assert result.templates_total == 5  # the oldest went
    assert result.similarity >= gallery.match_threshold()


def test_append_refuses_a_different_face_and_changes_nothing(credentials):
    gallery.enroll(client=credentials.client, user_id="u", embeddings=person(1), session=None)
    before = list(FaceTemplate.objects.values_list("id", flat=True))
    result = gallery.enroll(
        client=credentials.client, user_id="u", embeddings=person(2), session=None, mode="append"
    )
    assert result.failure == "identity_mismatch"
    assert list(FaceTemplate.objects.values_list("id", flat=True)) == before


def test_append_to_a_new_user_just_enrolls(credentials):
    result = gallery.enroll(
        client=credentials.client, user_id="new", embeddings=person(1), session=None, mode="append"
    )
    assert result.failure is None and result.templates_total == 3


def test_verify_matches_only_the_right_person(credentials):
    gallery.enroll(client=credentials.client, user_id="alice", embeddings=person(1), session=None)
    same = gallery.verify(client=credentials.client, user_id="alice", probes=person(1))
    other = gallery.verify(client=credentials.client, user_id="alice", probes=person(2))
    assert same.is_match and same.user_id == "alice"
    assert not other.is_match and other.user_id is None
    assert other.similarity < other.threshold <= same.similarity
    with pytest.raises(UserNotFound):
        gallery.verify(client=credentials.client, user_id="bob", probes=person(1))


def test_identify_finds_the_right_user_among_several(credentials):
    for seed, name in enumerate(["alice", "bob", "carol"], start=1):
        gallery.enroll(client=credentials.client, user_id=name, embeddings=person(seed), session=None)
    assert gallery.identify(client=credentials.client, probes=person(2)).user_id == "bob"
    stranger = gallery.identify(client=credentials.client, probes=person(9))
    assert stranger.user_id is None and not stranger.is_match


def test_search_never_crosses_clients(credentials, other_credentials):
    gallery.enroll(client=other_credentials.client, user_id="alice", embeddings=person(1), session=None)
    assert gallery.identify(client=credentials.client, probes=person(1)).user_id is None
    with pytest.raises(UserNotFound):
        gallery.verify(client=credentials.client, user_id="alice", probes=person(1))
    with pytest.raises(UserNotFound):
        gallery.user_delete(client=credentials.client, user_id="alice")
    assert gallery.has_templates(client=other_credentials.client, user_id="alice")


def test_one_bad_probe_does_not_decide(credentials):
    gallery.enroll(client=credentials.client, user_id="alice", embeddings=person(1), session=None)
    probes = person(1, 2) + person(2, 1)  # two good frames, one of someone else
    assert gallery.verify(client=credentials.client, user_id="alice", probes=probes).is_match


def test_delete_removes_the_user_and_every_template(credentials):
    gallery.enroll(client=credentials.client, user_id="alice", embeddings=person(1), session=None)
    assert gallery.user_delete(client=credentials.client, user_id="alice") == 3
    assert not FaceTemplate.objects.exists()
    assert not gallery.has_templates(client=credentials.client)


def test_threshold_setting_overrides_the_levels(settings):
    assert gallery.match_threshold() == matching.LEVELS["high"].threshold
    assert gallery.match_threshold(matching.LEVELS["low"]) == matching.LEVELS["low"].threshold
    settings.FACEAUTH_DEFAULT_MATCH_LEVEL = "medium"
    assert gallery.match_threshold() == matching.LEVELS["medium"].threshold
    settings.FACEAUTH_MATCH_THRESHOLD = 0.5
    assert gallery.match_threshold() == gallery.match_threshold(matching.LEVELS["low"]) == 0.5


def test_real_faces_are_told_apart(credentials, faces_dir):
    def embedding(path):
        image = fe.decode(path.read_bytes())
        return fe.embed(image, fe.detect(image)[0])

    obama = [embedding(faces_dir / "obama" / n) for n in ("obama.jpg", "obama1.jpg", "obama2.jpg")]
    gallery.enroll(client=credentials.client, user_id="obama", embeddings=obama, session=None)
    biden = [embedding(faces_dir / "biden" / n) for n in ("biden.jpg", "biden2.jpg")]
    gallery.enroll(client=credentials.client, user_id="biden", embeddings=biden, session=None)
    probe = [embedding(faces_dir / "obama" / "obama3.jpg")]
    assert gallery.verify(client=credentials.client, user_id="obama", probes=probe).is_match
    assert not gallery.verify(client=credentials.client, user_id="biden", probes=probe).is_match
    assert gallery.identify(client=credentials.client, probes=probe).user_id == "obama"
