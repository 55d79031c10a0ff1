"""Which trigram index shape: search latency and write cost, measured side by side.

Three copies of the loaded table, each with the store's B-tree indexes: ``none`` (no
trigram index), ``three`` (one GIN trigram index per searched column, searched with
``id ILIKE p OR server ILIKE p OR error ILIKE p``) and ``concat`` (the store's one
expression index, searched as the store searches). Writes are what every change of
an assessment does to its row: a loop of single-row UPDATEs by primary key (version,
updated_at, progress; no HOT update, as the indexes on updated_at and state make
them impossible anyway), each its own transaction with synchronous_commit off, as
claims and progress reports run. GIN defers part of an insertion (``fastupdate``:
entries go to a pending list, merged into the index later by vacuum or the inserting
backend); that deferred work is measured too, by merging right after each round
(``gin_clean_pending_list``), and counted in the write cost. Rounds rotate the order
of the shapes, a CHECKPOINT before each one so that every round pays the same
full-page writes; medians are reported.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from assessment_store.db.text_search import SEARCH_DOCUMENT, SEARCH_INDEX, like_literal
from assessment_store.percentiles import percentile

SHAPES: dict[str, list[str]] = {
    "none": [],
    "three": [
        "CREATE INDEX {t}_id_trgm ON {t} USING gin (assessment_id gin_trgm_ops)",
        "CREATE INDEX {t}_server_trgm ON {t} USING gin (server_name gin_trgm_ops)",
        "CREATE INDEX {t}_error_trgm ON {t} USING gin (error_message gin_trgm_ops)",
    ],
    "concat": [f"CREATE INDEX {{t}}_search ON {{t}} USING gin ({SEARCH_DOCUMENT} gin_trgm_ops)"],
    "concat, fastupdate off": [
        f"CREATE INDEX {{t}}_search ON {{t}} USING gin ({SEARCH_DOCUMENT} gin_trgm_ops) "
        "WITH (fastupdate = off)"
    ],
}
PREDICATES = {
    "none": f"{SEARCH_DOCUMENT} ILIKE %(p)s",
    "three": "(assessment_id ILIKE %(p)s OR server_name ILIKE %(p)s OR error_message ILIKE %(p)s)",
    "concat": f"{SEARCH_DOCUMENT} ILIKE %(p)s",
    "concat, fastupdate off": f"{SEARCH_DOCUMENT} ILIKE %(p)s",
}


def _table(shape: str) -> str:
    return "shape_" + shape.split(",")[0] + ("_nofast" if "off" in shape else "")


def build(cur: Any, shapes: list[str]) -> dict[str, dict[str, float]]:
    """A copy of assessment_states per shape, with its indexes; build times, sizes."""
    cur.execute("SET maintenance_work_mem = '512MB'")
    cur.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'assessment_states' "
        "AND indexname NOT IN (%s, 'pk_assessment_states')",
        (SEARCH_INDEX,),
    )
    btrees = cur.fetchall()
    built = {}
    for shape in shapes:
        table = _table(shape)
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute(
            f"CREATE TABLE {table} (LIKE assessment_states INCLUDING DEFAULTS "
            "INCLUDING CONSTRAINTS)"
        )
        cur.execute(f"INSERT INTO {table} SELECT * FROM assessment_states")
        cur.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (assessment_id)")
        for name, definition in btrees:
            cur.execute(
                definition.replace(f"INDEX {name} ON", f"INDEX {table}_{name[21:]} ON", 1)
                .replace("public.assessment_states", table)
                .replace(" assessment_states ", f" {table} ")
            )
        started = time.perf_counter()
        for ddl in SHAPES[shape]:
            cur.execute(ddl.format(t=table))
        seconds = time.perf_counter() - started
        cur.execute(f"VACUUM ANALYZE {table}")
        built[shape] = {
            "build_s": round(seconds, 1),
            "trigram_index_mb": round(_gin_bytes(cur, table) / 2**20, 1),
        }
    cur.execute("RESET maintenance_work_mem")
    return built


def _gin_indexes(cur: Any, table: str) -> list[str]:
    cur.execute(
        "SELECT c.relname FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid "
        "JOIN pg_am AS a ON a.oid = c.relam WHERE i.indrelid = %s::regclass "
        "AND a.amname = 'gin'",
        (table,),
    )
    return [row[0] for row in cur.fetchall()]


def _gin_bytes(cur: Any, table: str) -> int:
    total = 0
    for name in _gin_indexes(cur, table):
        cur.execute("SELECT pg_relation_size(%s::regclass)", (name,))
        total += int(cur.fetchone()[0])
    return total


def search_latency(
    cur: Any, shapes: list[str], kinds: list[Any], samples: int
) -> dict[str, dict[str, float]]:
    """Median and p99 ms of every kind's queries (3+ characters) on each shape,
    interleaved, raw SQL with the list's order and page size."""
    timings: dict[str, dict[str, list[float]]] = {s: {} for s in shapes if s != "none"}
    for kind in kinds:
        values = [v for v in kind.values if len(v) >= 3]
        if not values:
            continue
        for n in range(samples):
            pattern = f"%{like_literal(values[n % len(values)])}%"
            for shape in timings:
                sql = (
                    f"SELECT assessment_id FROM {_table(shape)} WHERE {PREDICATES[shape]} "
                    "ORDER BY created_at DESC, assessment_id DESC LIMIT 51"
                )
                started = time.perf_counter()
                cur.execute(sql, {"p": pattern})
                cur.fetchall()
                elapsed = (time.perf_counter() - started) * 1000
                timings[shape].setdefault(kind.name, []).append(elapsed)
    return {
        shape: {
            f"{kind} p{q}": round(percentile(ms, q), 2)
            for kind, ms in per_kind.items()
            for q in (50, 99)
        }
        for shape, per_kind in timings.items()
    }


def write_cost(
    cur: Any, shapes: list[str], rounds: int, updates: int, seed: int = 11
) -> dict[str, dict[str, float]]:
    """Per shape: medians over ``rounds`` of a loop of ``updates`` single-row UPDATEs
    (the loop's time, then the pending-list merge's), WAL bytes and latency."""
    pick = random.Random(seed)
    cur.execute(
        "SELECT assessment_id FROM assessment_states TABLESAMPLE BERNOULLI (5) REPEATABLE (3)"
    )
    ids = [row[0] for row in cur.fetchall()]
    cur.execute("SET synchronous_commit = off")
    results: dict[str, list[dict[str, float]]] = {shape: [] for shape in shapes}
    for n in range(rounds):
        order = shapes[n % len(shapes) :] + shapes[: n % len(shapes)]
        for shape in order:
            table = _table(shape)
            chosen = pick.sample(ids, updates)
            cur.execute("CHECKPOINT")
            cur.execute("SELECT pg_current_wal_lsn()")
            [lsn] = cur.fetchone()
            latencies = []
            started = time.perf_counter()
            for assessment_id in chosen:
                before = time.perf_counter()
                cur.execute(
                    f"UPDATE {table} SET version = version + 1, updated_at = now(), "
                    "progress = (progress + 1) %% 100 WHERE assessment_id = %s",
                    (assessment_id,),
                )
                latencies.append((time.perf_counter() - before) * 1000)
            loop = time.perf_counter() - started
            started = time.perf_counter()
            for index in _gin_indexes(cur, table):
                cur.execute("SELECT gin_clean_pending_list(%s::regclass)", (index,))
            merge = time.perf_counter() - started
            cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (lsn,))
            wal = float(cur.fetchone()[0])
            results[shape].append(
                {
                    "loop_ms": loop * 1000,
                    "merge_ms": merge * 1000,
                    "total_ms": (loop + merge) * 1000,
                    "wal_bytes_per_update": wal / updates,
                    "update_p50_ms": percentile(latencies, 50),
                    "update_p99_ms": percentile(latencies, 99),
                }
            )
    cur.execute("RESET synchronous_commit")
    return {
        shape: {key: round(statistics.median(r[key] for r in rows), 3) for key in rows[0]}
        | {"rounds": len(rows), "updates_per_round": updates}
        for shape, rows in results.items()
    }


def drop(cur: Any, shapes: list[str]) -> None:
    for shape in shapes:
        cur.execute(f"DROP TABLE IF EXISTS {_table(shape)}")
