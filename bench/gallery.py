"""1:N search benchmark: the service's gallery backends on synthetic templates, with the
issue's targets beside the figures.

    .venv/bin/python bench/gallery.py [--sizes 10000 100000 1000000] [--queries 200] [--json]
    .venv/bin/python bench/gallery.py --quick      # 2,000 and 10,000 templates (CI)

Templates: N/5 synthetic people of 5 templates each, every template a noisy copy of its
person's random direction (same-person cosine about 0.8, different-person about 0 +- 0.09,
as SFace's on real faces). Queries: a new noisy sample of a random enrolled person, one probe
per search, k = 10, as services.gallery asks. Backends are the service's own classes:
MemoryGallery (blocked matrix products) and PgvectorGallery (an HNSW shortlist, then every
template of the shortlisted people scored exactly) on a throwaway PostgreSQL 16 + pgvector 0.6
from the pgserver wheel, filled by binary COPY, indexes built after the fill. recall@1: how
often the backend's best template is exact search's best; for pgvector also hnsw@1, the same
for the HNSW walk's own first hit before the exact rescoring (not timed).
Timings are per search (milliseconds); "x floor" is the ratio to a baseline measured in the
same run at the same size: one pass reading the gallery matrix (its float32 sum), the least an
exact search must spend. person@1: how often the best template belongs to exact search's
best person; shortlist: how often exact search's best person is among the k hits, which is
what identification needs (services.gallery scores every shortlisted person exactly)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from auth_service.services.galleries import TemplateMatrix  # noqa: E402
from auth_service.services.galleries.memory import MemoryGallery  # noqa: E402
from auth_service.services.galleries.pgvector import PgvectorGallery  # noqa: E402
from tests.pgvector_server import pgvector_server  # noqa: E402

TEMPLATES_PER_PERSON = 5
NOISE = 0.05  # per-dimension: same-person cosine about 1 / (1 + 2 * 128 * NOISE**2) ~ 0.8
K = 10
TARGETS = [
    # (backend, size, what, relation, target)
    ("memory", 100_000, "p95_ms", "<=", 10.0),
    ("pgvector", 1_000_000, "p95_ms", "<=", 50.0),
    ("pgvector", 1_000_000, "recall_at_1", ">=", 0.99),  # search's, after the exact rescoring
    ("pgvector", 1_000_000, "person_in_shortlist", ">=", 0.99),  # what the 1:N decision uses
]


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def synthetic_gallery(size: int, rng: np.random.Generator) -> tuple[TemplateMatrix, np.ndarray]:
    """``size`` templates and their people's directions."""
    people = unit_rows(rng.standard_normal((size // TEMPLATES_PER_PERSON, 128), dtype=np.float32))
    vectors = np.repeat(people, TEMPLATES_PER_PERSON, axis=0)
    vectors += NOISE * rng.standard_normal(vectors.shape, dtype=np.float32)
    owners = np.array([f"person-{i // TEMPLATES_PER_PERSON}" for i in range(size)], dtype=object)
    return TemplateMatrix.build(np.arange(size), owners, vectors), people


def probes_of(people: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    chosen = people[rng.integers(0, len(people), count)]
    return unit_rows(chosen + NOISE * rng.standard_normal(chosen.shape, dtype=np.float32))


def read_floor_ms(vectors: np.ndarray, repeats: int) -> float:
    """The baseline: median time of one pass over the gallery matrix (a float32 sum), the
    least any exact search must spend reading it, measured now on this machine."""
    times = []
    for _ in range(max(5, repeats // 4)):
        started = time.perf_counter()
        vectors.sum()
        times.append((time.perf_counter() - started) * 1000)
    return round(float(np.median(times)), 3)


def timed_searches(backend, client_id: str, probes: np.ndarray) -> tuple[list[float], list]:
    """Milliseconds per search, and each search's hits (nearest first)."""
    backend.search(client_id, probes[:1], K)  # warm: load the matrix / open the connection
    times, best = [], []
    for probe in probes:
        started = time.perf_counter()
        hits = backend.search(client_id, probe[None, :], K)
        times.append((time.perf_counter() - started) * 1000)
        best.append(hits[0])
    return times, best


def recall_at_1(best: list, exact: list) -> float:
    """The share of searches whose first hit is exact search's first hit."""
    pairs = zip(best, exact, strict=True)
    return round(float(np.mean([b[0].template_id == e[0].template_id for b, e in pairs])), 4)


def summary(times: list[float], best: list, exact: list) -> dict:
    """Latency, recall@1 (the same best template as exact search) and the share of searches
    whose best template belongs to exact search's best person (what identification needs)."""
    pairs = list(zip(best, exact, strict=True))
    return {
        "median_ms": round(float(np.median(times)), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
        "recall_at_1": recall_at_1(best, exact),
        "person_at_1": round(float(np.mean([b[0].user_id == e[0].user_id for b, e in pairs])), 4),
        "person_in_shortlist": round(
            float(np.mean([e[0].user_id in {hit.user_id for hit in b} for b, e in pairs])), 4
        ),
    }


def run(sizes: list[int], queries: int, ef_searches: list[int], with_pgvector: bool) -> dict:
    rng = np.random.default_rng(20261125)
    results: dict = {"sizes": sizes, "queries": queries, "k": K, "runs": []}
    server = pgvector_server(shared_buffers="1GB", maintenance_work_mem="2GB") if with_pgvector else None
    url = server.__enter__() if server else None
    try:
        for size in sizes:
            templates, people = synthetic_gallery(size, rng)
            probes = probes_of(people, queries, rng)
            client_id = str(uuid.uuid4())
            floor = read_floor_ms(templates.vectors, queries)
            memory = MemoryGallery(lambda _, t=templates: t, max_age_seconds=3600)
            times, exact = timed_searches(memory, client_id, probes)
            results["runs"].append({"backend": "memory", "size": size, "read_floor_ms": floor,
                                    **summary(times, exact, exact)})
            print("measured", results["runs"][-1], file=sys.stderr, flush=True)  # long runs: progress
            if url is None:
                continue
            index = PgvectorGallery(url, loader=lambda _, t=templates: t)
            index.connection().execute("SET maintenance_work_mem = '2GB'")
            started = time.perf_counter()
            index.search(client_id, probes[:1], K)  # creates the table: COPY, then the HNSW build
            build = time.perf_counter() - started
            for ef_search in ef_searches:  # one index, several search breadths
                index.connection().execute(f"SET hnsw.ef_search = {int(ef_search)}")
                times, best = timed_searches(index, client_id, probes)
                walked = [index.hnsw_nearest(client_id, probe[None, :], K)[0] for probe in probes]
                results["runs"].append({
                    "backend": "pgvector", "size": size, "ef_search": ef_search, "read_floor_ms": floor,
                    **summary(times, best, exact), "hnsw_recall_at_1": recall_at_1(walked, exact),
                    "fill_and_index_s": round(build, 1),
                })
                print("measured", results["runs"][-1], file=sys.stderr, flush=True)
            index.drop(client_id)
            index.connection().close()
    finally:
        if server:
            server.__exit__(None, None, None)
    for row in results["runs"]:
        row["median_vs_read_floor"] = round(row["median_ms"] / row["read_floor_ms"], 2)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[40, 100, 200, 400],
                        help="pgvector's hnsw.ef_search values to measure on each index")
    parser.add_argument("--quick", action="store_true", help="2,000 and 10,000 templates, 50 queries")
    parser.add_argument("--no-pgvector", action="store_true", help="the in-memory backend only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes, queries = ([2_000, 10_000], 50) if args.quick else (args.sizes, args.queries)
    ef_searches = [100] if args.quick else args.ef_search
    results = run(sizes, queries, ef_searches, not args.no_pgvector)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"1:N search, one probe, k={K}, {queries} queries per row")
    print(f"{'backend':9s} {'ef_search':>9s} {'templates':>10s} {'median ms':>10s} {'p95 ms':>8s} "
          f"{'recall@1':>9s} {'person@1':>9s} {'shortlist':>9s} {'hnsw@1':>7s} {'x floor':>8s} "
          f"{'fill+index s':>12s}")
    for row in results["runs"]:
        print(f"{row['backend']:9s} {row.get('ef_search', ''):>9} {row['size']:10d} {row['median_ms']:10.2f} "
              f"{row['p95_ms']:8.2f} {row['recall_at_1']:9.4f} {row['person_at_1']:9.4f} "
              f"{row['person_in_shortlist']:9.4f} {row.get('hnsw_recall_at_1', ''):>7} "
              f"{row['median_vs_read_floor']:8.2f} {row.get('fill_and_index_s', ''):>12}")
    print()
    for backend, size, what, relation, target in TARGETS:
        rows = [r for r in results["runs"] if r["backend"] == backend and r["size"] == size]
        for row in rows:
            value = row[what]
            met = value <= target if relation == "<=" else value >= target
            verdict = "met" if met else "MISSED"
            breadth = f" (ef_search {row['ef_search']})" if "ef_search" in row else ""
            print(f"{backend} at {size:,}{breadth}: {what} {value} (target {relation} {target}) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
