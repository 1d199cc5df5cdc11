"""The pgvector gallery: an HNSW index (cosine) in PostgreSQL with the pgvector extension, for
galleries too large to scan (p95 under 50 ms at 1,000,000 templates: bench/gallery.py).

Each client has its own table ``faceauth_gallery_<client id hex>`` (template_id, user_id,
embedding vector(128)) with its own HNSW index, so a search never filters other clients'
vectors out of an approximate result, and a btree index on user_id. A search is exact over
the people HNSW finds: the HNSW walk shortlists the k nearest templates, then every template
of their users (found by user_id) is scored exactly and the k best are returned. HNSW often
reaches a person through one template while skipping that person's nearest one; identification
scores people, so only a person the walk missed entirely can be missed.

The tables are a derived index of FaceTemplate, not schema: created and filled from the
database on a client's first search or change (also when a table lacks the user_id index, as
made before searches needed it), refilled by ``manage.py gallery_index``. Every write of one
client holds a transaction-level advisory lock, so a fill and a concurrent change cannot
interleave."""

from __future__ import annotations

import contextlib
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import psycopg
from django.conf import settings
from pgvector.psycopg import register_vector
from psycopg import sql

from auth_service.services.galleries import Hit, TemplateMatrix, client_templates
from face_engine.embed import EMBEDDING_SIZE

TABLE_PREFIX = "faceauth_gallery_"
# HNSW build parameters (pgvector's defaults; recall is tuned at query time by ef_search).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


def table_name(client_id: str) -> str:
    return TABLE_PREFIX + uuid.UUID(str(client_id)).hex


# The HNSW walk: the k nearest templates, approximately (hnsw.ef_search sets how widely it looks).
HNSW_NEAREST_SQL = (
    "SELECT template_id, user_id, embedding <=> %(probe)s FROM {table} "
    "ORDER BY embedding <=> %(probe)s LIMIT %(k)s"
)
# Exact over the people the walk found: all their templates by the user_id index, ranked by
# exact cosine distance. MATERIALIZED keeps the planner from ranking them by an HNSW scan.
SEARCH_SQL = (
    "WITH shortlist AS MATERIALIZED (" + HNSW_NEAREST_SQL + "), "
    "scored AS MATERIALIZED (SELECT template_id, user_id, embedding <=> %(probe)s AS distance "
    "FROM {table} WHERE user_id = ANY (ARRAY(SELECT user_id FROM shortlist))) "
    "SELECT template_id, user_id, distance FROM scored ORDER BY distance, template_id LIMIT %(k)s"
)


def _drop(name: str) -> sql.Composed:
    return sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name))


class PgvectorGallery:
    def __init__(
        self,
        url: str | None = None,
        loader: Callable[[str], TemplateMatrix] = client_templates,
        *,
        ef_search: int | None = None,
    ) -> None:
        self._url = url
        self._loader = loader
        self._ef_search = ef_search
        self._local = threading.local()

    def connection(self) -> psycopg.Connection:
        """This thread's connection (autocommit; the vector type registered)."""
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = psycopg.connect(self._url or settings.FACEAUTH_PGVECTOR_URL, autocommit=True)
            connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
            register_vector(connection)
            ef_search = self._ef_search or settings.FACEAUTH_PGVECTOR_EF_SEARCH
            connection.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(int(ef_search))))
            self._local.connection = connection
        return connection

    def add(self, client_id: str, templates: TemplateMatrix) -> None:
        with self._client_transaction(client_id) as (connection, table):
            _copy_rows(connection, table, templates, upsert=True)

    def remove(self, client_id: str, template_ids: Sequence[int]) -> None:
        with self._client_transaction(client_id) as (connection, table):
            connection.execute(
                sql.SQL("DELETE FROM {} WHERE template_id = ANY(%s)").format(table),
                (list(map(int, template_ids)),),
            )

    def search(self, client_id: str, probes: np.ndarray, k: int) -> list[list[Hit]]:
        return self._run(SEARCH_SQL, client_id, probes, k)

    def hnsw_nearest(self, client_id: str, probes: np.ndarray, k: int) -> list[list[Hit]]:
        """HNSW's k nearest templates alone, without the exact rescoring of their users (what
        ``search`` starts from; bench/gallery.py reports its recall beside search's)."""
        return self._run(HNSW_NEAREST_SQL, client_id, probes, k)

    def _run(self, statement: str, client_id: str, probes: np.ndarray, k: int) -> list[list[Hit]]:
        connection = self.connection()
        if not self._exists(connection, client_id):
            with self._client_transaction(client_id):
                pass  # creates and fills the client's table
        query = sql.SQL(statement).format(table=sql.Identifier(table_name(client_id)))
        results = []
        for probe in np.asarray(probes, np.float32).reshape(-1, EMBEDDING_SIZE):
            rows = connection.execute(query, {"probe": probe, "k": int(k)}).fetchall()
            results.append([Hit(int(row[0]), row[1], 1.0 - float(row[2])) for row in rows])
        return results

    def rebuild(self, client_id: str) -> int:
        """Drops and refills the client's table from the database; returns the row count."""
        connection = self.connection()
        with connection.transaction():
            self._lock(connection, client_id)
            connection.execute(_drop(table_name(client_id)))
        with self._client_transaction(client_id) as (connection, table):
            return connection.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()[0]

    def drop(self, client_id: str) -> None:
        self.connection().execute(_drop(table_name(client_id)))

    def _exists(self, connection: psycopg.Connection, client_id: str) -> bool:
        # The user_id index, not the table: a table made before searches needed it is rebuilt.
        index = _user_index(table_name(client_id))
        return connection.execute("SELECT to_regclass(%s)", (index,)).fetchone()[0] is not None

    @staticmethod
    def _lock(connection: psycopg.Connection, client_id: str) -> None:
        key = zlib.crc32(table_name(client_id).encode())
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (key,))

    @contextlib.contextmanager
    def _client_transaction(self, client_id: str) -> Iterator[tuple[psycopg.Connection, sql.Identifier]]:
        """A transaction holding the client's lock, its table created and filled if missing."""
        connection = self.connection()
        with connection.transaction():
            self._lock(connection, client_id)
            if not self._exists(connection, client_id):
                create_table(connection, table_name(client_id), self._loader(client_id))
            yield connection, sql.Identifier(table_name(client_id))


def _user_index(name: str) -> str:
    return name + "_user_id"


def create_table(connection: psycopg.Connection, name: str, templates: TemplateMatrix) -> None:
    """(Re)creates a gallery table, fills it (binary COPY) and builds its indexes afterwards,
    which is several times faster than indexing row by row."""
    table = sql.Identifier(name)
    connection.execute(_drop(name))
    connection.execute(
        sql.SQL(
            "CREATE TABLE {} (template_id bigint PRIMARY KEY, user_id text NOT NULL, "
            "embedding vector({}) NOT NULL)"
        ).format(table, sql.Literal(EMBEDDING_SIZE))
    )
    _copy_rows(connection, table, templates, upsert=False)
    connection.execute(
        sql.SQL("CREATE INDEX {} ON {} (user_id)").format(sql.Identifier(_user_index(name)), table)
    )
    # Statistics now, not at autovacuum's leisure: the planner then knows from the first search
    # that a few users' rows are a handful, which the user_id index fetches.
    connection.execute(sql.SQL("ANALYZE {}").format(table))
    connection.execute(
        sql.SQL(
            "CREATE INDEX {} ON {} USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = {}, ef_construction = {})"
        ).format(
            sql.Identifier(name + "_hnsw"), table, sql.Literal(HNSW_M), sql.Literal(HNSW_EF_CONSTRUCTION)
        )
    )


def _copy_rows(connection: psycopg.Connection, table: sql.Identifier, templates: TemplateMatrix,
               *, upsert: bool) -> None:
    if len(templates) == 0:
        return
    target = table
    if upsert:
        # COPY cannot skip duplicates: copy into a scratch table, then insert what is new.
        target = sql.Identifier("faceauth_gallery_incoming")
        connection.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS")
            .format(target, table)
        )
    with connection.cursor().copy(
        sql.SQL("COPY {} (template_id, user_id, embedding) FROM STDIN WITH (FORMAT BINARY)").format(target)
    ) as copy:
        copy.set_types(["int8", "text", "vector"])
        for template_id, user_id, vector in zip(
            templates.template_ids.tolist(), templates.user_ids.tolist(), templates.vectors, strict=True
        ):
            copy.write_row((template_id, user_id, vector))
    if upsert:
        connection.execute(
            sql.SQL("INSERT INTO {} SELECT * FROM {} ON CONFLICT (template_id) DO NOTHING")
            .format(table, target)
        )
