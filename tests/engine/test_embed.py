import itertools

import numpy as np
import pytest

import face_engine as fe
from face_engine.cli import embed_file


@pytest.fixture(scope="module")
def embeddings(photos):
    return {path: embed_file(path) for path in photos}


def test_embeddings_are_128_d_unit_vectors(embeddings):
    for vector in embeddings.values():
        assert vector.shape == (fe.EMBEDDING_SIZE,) and vector.dtype == np.float32
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4


def test_default_threshold_separates_every_pair_of_the_real_photos(photos, embeddings):
    same_scores, different_scores = [], []
    for first, second in itertools.combinations(sorted(photos), 2):
        score = fe.similarity(embeddings[first], embeddings[second])
        (same_scores if photos[first] == photos[second] else different_scores).append(
            (score, first.name, second.name)
        )
    assert len(same_scores) >= 20 and len(different_scores) >= 150
    lowest_same = min(same_scores)
    highest_different = max(different_scores)
    assert lowest_same[0] >= fe.DEFAULT_THRESHOLD, f"same person not matched: {lowest_same}"
    assert highest_different[0] < fe.DEFAULT_THRESHOLD, f"different people matched: {highest_different}"


def test_match_finds_the_right_person_in_a_gallery(faces_dir):
    gallery_paths = [
        faces_dir / "obama" / "obama.jpg",
        faces_dir / "biden" / "biden.jpg",
        faces_dir / "rose_leslie" / "img1.jpg",
        faces_dir / "kit_harington" / "john2.jpeg",
    ]
    gallery = np.stack([embed_file(path) for path in gallery_paths])
    for probe, expected in [
        (faces_dir / "obama" / "obama2.jpg", 0),
        (faces_dir / "biden" / "biden2.jpg", 1),
        (faces_dir / "rose_leslie" / "img2.jpg", 2),
        (faces_dir / "kit_harington" / "johnsnow_test1.jpg", 3),
    ]:
        result = fe.match(embed_file(probe), gallery)
        assert result.index == expected and result.is_match
        direct = fe.similarity(embed_file(probe), gallery[expected])
        assert result.similarity == pytest.approx(direct, abs=1e-5)
    stranger = fe.match(embed_file(faces_dir / "alex_lacamoire" / "img1.jpg"), gallery)
    assert not stranger.is_match and stranger.similarity < fe.DEFAULT_THRESHOLD


def test_match_on_an_empty_gallery_finds_nothing():
    result = fe.match(np.ones(128, np.float32), np.empty((0, 128), np.float32))
    assert result.index is None and not result.is_match


def test_similarity_is_cosine():
    a = np.array([1.0, 0.0], np.float32)
    assert fe.similarity(a, a) == pytest.approx(1.0)
    assert fe.similarity(a, np.array([0.0, 2.0])) == pytest.approx(0.0)
    assert fe.similarity(a, np.array([-3.0, 0.0])) == pytest.approx(-1.0)
    assert fe.similarity(a, np.zeros(2)) == 0.0
