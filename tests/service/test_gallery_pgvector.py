"""The pgvector gallery for real: PostgreSQL 16 with pgvector 0.6 from the pgserver wheel,
started for this module (tests/pgvector_server.py), an HNSW index per client, and the service
identifying through it."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from auth_service.services import galleries, gallery
from auth_service.services.galleries import TemplateMatrix
from auth_service.services.galleries.memory import MemoryGallery
from auth_service.services.galleries.pgvector import SEARCH_SQL, PgvectorGallery, table_name
from tests.live_server import REPO, clean_environment
from tests.pgvector_server import PgvectorUnavailable, pgvector_server

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def pgvector_url():
    try:
        with pgvector_server() as url:
            yield url
    except PgvectorUnavailable as exc:
        pytest.skip(f"PostgreSQL with pgvector could not start: {exc}")


@pytest.fixture
def pgvector_backend(settings, pgvector_url):
    settings.FACEAUTH_GALLERY_BACKEND = "pgvector"
    settings.FACEAUTH_PGVECTOR_URL = pgvector_url
    return galleries.backend()


def synthetic(count: int, seed: int = 0) -> TemplateMatrix:
    """``count`` templates of count/4 identities (4 noisy samples around each direction)."""
    rng = np.random.default_rng(seed)
    bases = rng.normal(size=(count // 4, 128))
    vectors = np.repeat(bases, 4, axis=0) + 0.5 * rng.normal(size=(count, 128))
    return TemplateMatrix.build(np.arange(count), [f"user-{i // 4}" for i in range(count)], vectors)


def test_hnsw_search_finds_what_exact_search_finds(pgvector_url):
    templates = synthetic(8000)
    client_id = str(uuid.uuid4())
    index = PgvectorGallery(pgvector_url, loader=lambda _: templates, ef_search=100)
    exact = MemoryGallery(lambda _: templates)
    probes = templates.vectors[::97]
    probes = probes + 0.05 * np.random.default_rng(1).normal(size=probes.shape)
    found = index.search(client_id, probes, 10)
    expected = exact.search(client_id, probes, 10)
    top1 = np.mean([f[0].template_id == e[0].template_id for f, e in zip(found, expected, strict=True)])
    assert top1 >= 0.99
    assert all(abs(f[0].similarity - e[0].similarity) < 1e-4 for f, e in zip(found, expected, strict=True))
    index.drop(client_id)


def test_search_scores_every_template_of_the_people_hnsw_found(pgvector_url):
    """With ef_search 1 the HNSW walk returns one template per probe; search must return all
    four templates of its person, the three the walk did not return included, ranked by exact
    similarity, so that person's best template comes first whichever one the walk reached (at
    1,000,000 templates the walk's first hit is often another template of the right person:
    bench/gallery.py). The plan must use the HNSW index, then the user_id index."""
    templates = synthetic(4000, seed=2)
    client_id = str(uuid.uuid4())
    index = PgvectorGallery(pgvector_url, loader=lambda _: templates, ef_search=1)
    # Each probe the mean of one person's 4 templates: near-ties between them.
    probes = templates.vectors.reshape(-1, 4, 128)[::10].mean(axis=1)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    walked = index.hnsw_nearest(client_id, probes, 10)
    found = index.search(client_id, probes, 10)
    for probe, shortlist, hits in zip(probes, walked, found, strict=True):
        assert len(shortlist) == 1
        person = templates.user_ids == shortlist[0].user_id
        similarities = templates.vectors[person] @ probe
        ranked = np.argsort(-similarities)
        assert [hit.template_id for hit in hits] == templates.template_ids[person][ranked].tolist()
        assert np.allclose([hit.similarity for hit in hits], similarities[ranked], atol=1e-5)
    plan = "\n".join(row[0] for row in index.connection().execute(
        "EXPLAIN " + SEARCH_SQL.format(table=table_name(client_id)), {"probe": probes[0], "k": 10}
    ))
    assert f"{table_name(client_id)}_hnsw" in plan and f"{table_name(client_id)}_user_id" in plan, plan
    index.drop(client_id)


def test_changes_reach_the_index(pgvector_url):
    templates = synthetic(400)
    client_id = str(uuid.uuid4())
    index = PgvectorGallery(pgvector_url, loader=lambda _: templates)
    probe = templates.vectors[:1]
    assert index.search(client_id, probe, 1)[0][0].template_id == 0
    newcomer = TemplateMatrix.build([10_000, 0], ["newcomer", "user-0"], np.stack([probe[0], probe[0]]))
    index.add(client_id, newcomer)  # template 0 again: ignored, not duplicated
    assert {hit.template_id for hit in index.search(client_id, probe, 2)[0]} == {0, 10_000}
    index.remove(client_id, [10_000, 0])
    assert {hit.template_id for hit in index.search(client_id, probe, 3)[0]} & {0, 10_000} == set()
    assert index.rebuild(client_id) == 400  # refilled from the loader, the source of truth
    index.drop(client_id)


def test_the_service_identifies_through_pgvector(
    credentials, pgvector_backend, labelled_samples, django_capture_on_commit_callbacks
):
    people: dict[str, list[np.ndarray]] = {}
    for sample in labelled_samples:
        people.setdefault(sample.identity, []).append(sample.embedding)
    client = credentials.client
    with django_capture_on_commit_callbacks(execute=True):
        for name in ("obama", "biden", "clip_liveportrait_d0"):
            gallery.enroll(client=client, user_id=name, embeddings=people[name][:3], session=None)
    table = table_name(client.client_id)
    connection = pgvector_backend.connection()
    assert connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 9
    assert gallery.identify(client=client, probes=people["obama"][3:6]).user_id == "obama"
    assert gallery.identify(client=client, probes=people["rose_leslie"][:3]).user_id is None
    with django_capture_on_commit_callbacks(execute=True):
        gallery.user_delete(client=client, user_id="obama")
    assert connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 6
    assert gallery.identify(client=client, probes=people["obama"][3:6]).user_id is None
    # An index that lost its table is rebuilt on demand, or by the management command.
    pgvector_backend.drop(client.client_id)
    assert gallery.identify(client=client, probes=people["biden"][3:6]).user_id == "biden"
    out = StringIO()
    call_command("gallery_index", client.name, stdout=out)
    assert f"{client.name}: 6 templates indexed" in out.getvalue()
    pgvector_backend.drop(client.client_id)


def test_the_gallery_bench_runs_in_its_quick_mode(pgvector_url):
    """bench/gallery.py --quick, as CI runs it: both backends at 2,000 and 10,000 templates."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gallery.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=clean_environment(),
    )
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)["runs"]
    assert {(run["backend"], run["size"]) for run in runs} == {
        (backend, size) for backend in ("memory", "pgvector") for size in (2_000, 10_000)
    }
    for run in runs:
        assert run["recall_at_1"] >= (1.0 if run["backend"] == "memory" else 0.98), run
        assert 0 < run["median_ms"] <= run["p95_ms"]
