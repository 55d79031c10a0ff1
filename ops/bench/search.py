"""Search benchmark: ``search_assessments`` at N rows against a plain ILIKE scan.

Run: ``python -m ops.bench.search --rows 1000000`` (or ``ops/bench.sh search ...``).
One scratch database at ``alembic upgrade head`` is bulk-loaded (``search_data``),
then every query kind runs through ``AssessmentStore.search_assessments`` (the
trigram index, in the store's two steps) and, interleaved query by query, as the
plain one-statement ILIKE query a store without the index would run (``SELECT ...
WHERE document ILIKE '%q%' ORDER BY created_at DESC LIMIT 51``) on connections that
may use no index (``enable_indexscan`` and ``enable_bitmapscan`` off): a sequential
scan, parallel where PostgreSQL chooses. Rows are shaped into models on both sides.
The scans each side ran are recorded (EXPLAIN ANALYZE). ``--compare-shapes`` adds
the index shape comparison (``search_shapes``: one expression index against three
per-column ones, search latency and write cost). Prints Markdown tables; writes
JSON and Markdown to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import psycopg2
from sqlalchemy import Engine, event, text

from assessment_store import Assessment, AssessmentFilters, AssessmentStore, load_settings
from assessment_store.db.statements import ASSESSMENT_COLUMN_LIST
from assessment_store.db.text_search import SEARCH_DOCUMENT, SEARCH_INDEX, like_literal
from assessment_store.dispatch import NullDispatcher
from assessment_store.models import FROM_DATABASE
from assessment_store.percentiles import percentile
from ops.bench import search_data, search_shapes
from ops.bench.common import libpq, scratch_database

ROOT = Path(__file__).resolve().parents[2]
NO_INDEX = "SET enable_indexscan = off; SET enable_bitmapscan = off"


def _store(url: str, *, indexes: bool) -> tuple[AssessmentStore, list[tuple[str, Any]]]:
    """A store on ``url`` (without indexes: its connections may not use any) and the
    list of the list statements it runs, recorded for EXPLAIN."""
    store = AssessmentStore(load_settings(database_url=url), dispatcher=NullDispatcher())
    engine: Engine = store.engines.replica
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "ORDER BY created_at DESC" in statement:
            statements.append((statement, params))

    event.listen(engine, "before_cursor_execute", record)
    if not indexes:

        def no_index(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(NO_INDEX)
            cursor.close()
            dbapi_connection.commit()

        event.listen(engine, "connect", no_index)
    return store, statements


def _plan(cur: Any, statement: tuple[str, Any], settings: str) -> str:
    """The scans the statement ran (EXPLAIN ANALYZE; those never executed left out),
    as ``Bitmap Index Scan on ix_assessment_states_search, ...``."""
    cur.execute("RESET ALL")
    if settings:
        cur.execute(settings)
    cur.execute(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + statement[0], statement[1]
    )
    scans = []
    for (line,) in cur.fetchall():
        node = line.strip().removeprefix("->").strip()
        if "Scan" in node and "never executed" not in node and "CTE Scan" not in node:
            name = node.split(" (actual")[0].replace(" on assessment_states", "")
            scans.append(name.split(" assessment_states")[0])
    cur.execute("RESET ALL")
    return ", ".join(dict.fromkeys(scans))


def _matches(cur: Any, value: str, owner: str | None) -> int:
    owned = " AND created_by = %(owner)s" if owner else ""
    if len(value) >= 3:
        condition = f"{SEARCH_DOCUMENT} ILIKE %(p)s"
    else:
        condition = f"strpos(lower({SEARCH_DOCUMENT}), lower(%(t)s)) > 0"
    cur.execute(
        f"SELECT count(*) FROM assessment_states WHERE {condition}{owned}",
        {"p": f"%{like_literal(value)}%", "t": value, "owner": owner},
    )
    return int(cur.fetchone()[0])


def plain_ilike_scan(store: AssessmentStore, value: str, owner: str | None) -> list[Assessment]:
    """The baseline: one page of the plain ILIKE query (no two steps), run and shaped
    as the store runs and shapes a list, on a store whose connections use no index."""
    owned = "AND created_by = :owner" if owner else ""
    sql = text(
        f"SELECT {ASSESSMENT_COLUMN_LIST} FROM assessment_states "
        f"WHERE {SEARCH_DOCUMENT} ILIKE :pattern {owned} "
        "ORDER BY created_at DESC, assessment_id DESC LIMIT 51"
    )
    params = {"pattern": f"%{like_literal(value)}%", "owner": owner}
    rows = store.runtime.read(lambda conn: list(conn.execute(sql, params).mappings()), replica=True)
    return [Assessment.model_validate(dict(row), context=FROM_DATABASE) for row in rows]


def measure(
    url: str, kinds: list[search_data.QueryKind], samples: int, scan_samples: int, budget: float
) -> list[dict[str, Any]]:
    """Each kind's latency through search_assessments and the plain ILIKE scan,
    interleaved query by query."""
    indexed, indexed_statements = _store(url, indexes=True)
    scanning, scan_statements = _store(url, indexes=False)
    results = []
    conn = psycopg2.connect(libpq(url))
    conn.autocommit = True
    cur = conn.cursor()
    filters = AssessmentFilters()
    try:
        for kind in kinds:

            def search(value: str, kind: Any = kind) -> None:
                indexed.search_assessments(value, filters, owner=kind.owner)

            def scan(value: str, kind: Any = kind) -> None:
                plain_ilike_scan(scanning, value, kind.owner)

            for value in kind.values:  # warm both (and record one statement of each)
                search(value)
                scan(value)
            first_indexed, first_scan = indexed_statements[-1], scan_statements[-1]

            def with_index(n: int, kind: Any = kind) -> None:
                search(kind.values[n % len(kind.values)])

            def without_index(n: int, kind: Any = kind) -> None:
                scan(kind.values[n % len(kind.values)])

            index_ms, scan_ms = _interleaved(
                with_index, without_index, samples, scan_samples, budget
            )
            counts = sorted(_matches(cur, value, kind.owner) for value in kind.values)
            results.append(
                {
                    "kind": kind.name,
                    "example": kind.values[0],
                    "values": len(kind.values),
                    "owner": kind.owner,
                    "matches_median": counts[len(counts) // 2],
                    "matches_max": counts[-1],
                    "index": _summary(index_ms) | {"plan": _plan(cur, first_indexed, "")},
                    "scan": _summary(scan_ms) | {"plan": _plan(cur, first_scan, NO_INDEX)},
                    "notes": kind.notes,
                }
            )
            print(f"  {kind.name}: done", flush=True)
    finally:
        conn.close()
        indexed.close()
        scanning.close()
    return results


def _interleaved(
    index: Callable[[int], None],
    scan: Callable[[int], None],
    samples: int,
    scan_samples: int,
    budget: float,
) -> tuple[list[float], list[float]]:
    """Alternate the two until each has its samples (or the kind's time budget is
    spent, after at least five of each)."""
    index_ms: list[float] = []
    scan_ms: list[float] = []
    deadline = time.monotonic() + budget
    n = 0
    while len(index_ms) < samples or len(scan_ms) < scan_samples:
        for run, into, wanted in ((index, index_ms, samples), (scan, scan_ms, scan_samples)):
            if len(into) < wanted:
                started = time.perf_counter()
                run(n)
                into.append((time.perf_counter() - started) * 1000)
        n += 1
        if time.monotonic() > deadline and min(len(index_ms), len(scan_ms)) >= 5:
            break
    return index_ms, scan_ms


def _summary(ms: list[float]) -> dict[str, Any]:
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
        "samples": len(ms),
    }


def markdown(report: dict[str, Any]) -> str:
    rows = report["rows"]
    lines = [
        f"### Search at {rows:,} rows: search_assessments, trigram index vs ILIKE scan",
        "",
        "| query | matches (median) | index p50 | index p99 | ILIKE scan p50 | scan p99 "
        "| p50 speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report.get("searches", []):
        i, s = r["index"], r["scan"]
        lines.append(
            f"| {r['kind']} | {r['matches_median']:,} | {i['p50_ms']} ms | {i['p99_ms']} ms "
            f"| {s['p50_ms']} ms | {s['p99_ms']} ms | {s['p50_ms'] / i['p50_ms']:.0f}x |"
        )
    lines += ["", "Scans run (index / without index):", ""]
    for r in report.get("searches", []):
        lines.append(f"- {r['kind']}: `{r['index']['plan']}` / `{r['scan']['plan']}`")
    shapes = report.get("shapes")
    if shapes:
        lines += [
            "",
            f"### Index shapes at {rows:,} rows (medians of {shapes['rounds']} rounds of "
            f"{shapes['updates']:,} single-row UPDATEs)",
            "",
            "| shape | trigram index | build | update loop | + pending-list merge | total "
            "| WAL / update | update p99 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for shape, w in shapes["writes"].items():
            b = shapes["built"][shape]
            lines.append(
                f"| {shape} | {b['trigram_index_mb']} MB | {b['build_s']} s "
                f"| {w['loop_ms']:.0f} ms | {w['merge_ms']:.0f} ms | {w['total_ms']:.0f} ms "
                f"| {w['wal_bytes_per_update'] / 1024:.1f} KiB | {w['update_p99_ms']:.2f} ms |"
            )
        lines += ["", "| search (raw SQL, ms) | " + " | ".join(shapes["search"]) + " |"]
        lines.append("|---|" + "---:|" * len(shapes["search"]))
        keys = next(iter(shapes["search"].values()))
        for key in keys:
            cells = " | ".join(str(per[key]) for per in shapes["search"].values())
            lines.append(f"| {key} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=100, help="index samples per kind")
    parser.add_argument("--scan-samples", type=int, default=20, help="scan samples per kind")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per kind, at most")
    parser.add_argument("--compare-shapes", action="store_true", help="index shapes too")
    parser.add_argument("--shapes-only", action="store_true", help="only the shape comparison")
    parser.add_argument("--write-rounds", type=int, default=6)
    parser.add_argument("--updates", type=int, default=2000, help="UPDATEs per write round")
    parser.add_argument("--out", type=Path, default=ROOT / ".ops-data" / "bench")
    args = parser.parse_args(argv)
    started = time.monotonic()
    report: dict[str, Any] = {
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
        },
        "rows": args.rows,
    }
    with scratch_database() as url:
        conn = psycopg2.connect(libpq(url))
        conn.autocommit = True
        cur: Any = conn.cursor()
        cur.execute("SHOW server_version")
        report["machine"]["postgresql"] = cur.fetchone()[0]
        print(f"loading {args.rows:,} rows ...", flush=True)
        report["load"] = search_data.load(cur, args.rows)
        cur.execute(
            "SELECT pg_table_size('assessment_states'), pg_relation_size(%s)", (SEARCH_INDEX,)
        )
        table, index = cur.fetchone()
        report["load"] |= {"table_mb": table // 2**20, "search_index_mb": index // 2**20}
        print(f"  {report['load']}", flush=True)
        kinds = search_data.query_kinds(cur)
        if not args.shapes_only:
            print("searching ...", flush=True)
            report["searches"] = measure(url, kinds, args.samples, args.scan_samples, args.budget)
        if args.compare_shapes or args.shapes_only:
            shapes = list(search_shapes.SHAPES)
            print("comparing index shapes ...", flush=True)
            built = search_shapes.build(cur, shapes)
            report["shapes"] = {
                "built": built,
                "search": search_shapes.search_latency(cur, shapes, kinds, 20),
                "writes": search_shapes.write_cost(cur, shapes, args.write_rounds, args.updates),
                "rounds": args.write_rounds,
                "updates": args.updates,
            }
            search_shapes.drop(cur, shapes)
        conn.close()
    report["seconds"] = round(time.monotonic() - started)
    text = markdown(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "search-shapes" if args.shapes_only else "search"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(text)
    print(f"wrote {args.out / name}.json and .md ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
