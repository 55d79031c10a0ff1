"""Data of the search benchmark: a bulk load of realistic rows, and the queries.

The load is one ``INSERT ... SELECT`` over generate_series (about 20 s per million rows
here) with the trigram index dropped first and built again afterwards, from its own
definition, which is far quicker than maintaining it row by row. No audit rows: a
search never reads them.

Rows look like a store's after months of use: 80% completed, 8% failed (with an
error message), 5% pending, 2% running, 5% cancelled; one id in ten client-chosen
(``import-00000042``), the others UUIDs; server names like
``db-0421.eu-west-1.prod.example.com:5432`` (none for a sixth: compliance scans of
no host); error messages from seven templates naming their server.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from assessment_store.db.text_search import SEARCH_INDEX

LOAD_SQL = """
INSERT INTO assessment_states (
  assessment_id, state, version, request_data, error_message, progress, priority,
  assessment_type, server_name, source, created_by, retry_count, worker_id,
  created_at, updated_at, started_at, completed_at)
SELECT id, st, ver,
  jsonb_build_object('assessmentType', typ, 'serverName', srv, 'source', src),
  CASE WHEN st = 'failed' OR (st = 'completed' AND i %% 50 = 0) THEN
    (ARRAY['connection refused by ',
           'TLS handshake timed out after 30s talking to ',
           'certificate expired for ',
           'HTTP 503 Service Unavailable from ',
           'worker lost: worker-' || (i %% 64) || '@node-' || (i %% 7)
             || ' stopped renewing its lease on ',
           'permission denied reading /etc/ssl/private/key.pem on ',
           'DNS lookup failed (NXDOMAIN) for '])[1 + (i / 100) %% 7]
    || coalesce(srv, 'compliance scan')
  END,
  CASE WHEN st = 'completed' THEN 100 WHEN st = 'processing' THEN i %% 100 ELSE 0 END,
  1 + i %% 10, typ, srv, src, 'producer-' || (i %% 50),
  CASE WHEN st = 'failed' THEN i %% 3 ELSE 0 END,
  CASE WHEN st IN ('processing', 'completed', 'failed') THEN 'worker-' || (i %% 64) END,
  ts, ts + interval '2 minutes',
  CASE WHEN st IN ('processing', 'completed', 'failed') THEN ts + interval '1 second' END,
  CASE WHEN st IN ('completed', 'failed', 'cancelled') THEN ts + interval '2 minutes' END
FROM (
  SELECT i,
    CASE WHEN i %% 10 = 0 THEN 'import-' || to_char(i, 'FM00000000')
         ELSE gen_random_uuid()::text END AS id,
    (CASE WHEN i %% 100 < 80 THEN 'completed' WHEN i %% 100 < 88 THEN 'failed'
          WHEN i %% 100 < 93 THEN 'pending' WHEN i %% 100 < 95 THEN 'processing'
          ELSE 'cancelled' END)::assessment_state AS st,
    CASE WHEN i %% 100 BETWEEN 88 AND 92 THEN 1 ELSE 3 + i %% 5 END AS ver,
    (ARRAY['health', 'security', 'compliance'])[1 + i %% 3] AS typ,
    CASE WHEN i %% 3 = 2 AND i %% 2 = 0 THEN NULL ELSE
      (ARRAY['web', 'db', 'cache', 'api', 'auth', 'mq', 'search', 'batch'])[1 + i %% 8]
      || '-' || to_char((i / 8) %% 500, 'FM0000') || '.'
      || (ARRAY['eu-west-1', 'us-east-2', 'ap-south-1', 'eu-central-1'])[1 + (i / 3) %% 4]
      || '.' || (ARRAY['prod', 'staging', 'dev'])[1 + (i / 5) %% 3] || '.example.com:'
      || (ARRAY['443', '8443', '5432', '6379'])[1 + (i / 11) %% 4]
    END AS srv,
    CASE WHEN i %% 3 = 2 THEN 'compliance' ELSE 'installer' END AS src,
    now() - make_interval(secs => (%(rows)s - i) * 7776000.0 / %(rows)s) AS ts
  FROM generate_series(1, %(rows)s) AS i
) AS g
"""

ERROR_PHRASES = (
    "connection refused",
    "handshake timed out",
    "certificate expired",
    "503 service unavailable",
    "stopped renewing its lease",
    "permission denied",
    "nxdomain",
)


def load(cur: Any, rows: int) -> dict[str, float]:
    """Fill the (empty, migrated) table with ``rows`` rows; seconds per phase."""
    cur.execute("SET maintenance_work_mem = '512MB'")
    cur.execute("SET synchronous_commit = off")
    cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (SEARCH_INDEX,))
    [definition] = cur.fetchone()
    cur.execute(f"DROP INDEX {SEARCH_INDEX}")
    started = time.perf_counter()
    cur.execute(LOAD_SQL, {"rows": rows})
    inserted = time.perf_counter()
    cur.execute(definition)
    indexed = time.perf_counter()
    cur.execute("VACUUM ANALYZE assessment_states")
    done = time.perf_counter()
    cur.execute("RESET maintenance_work_mem")
    return {
        "insert_s": round(inserted - started, 1),
        "search_index_build_s": round(indexed - inserted, 1),
        "vacuum_analyze_s": round(done - indexed, 1),
    }


@dataclass(frozen=True)
class QueryKind:
    """Queries of one kind: several values, each one what a user might type."""

    name: str
    values: list[str]
    owner: str | None = None
    notes: str = ""


def query_kinds(cur: Any, seed: int = 7) -> list[QueryKind]:
    """The benchmark's queries, drawn from the loaded rows (the same on every run of
    the same size: a seeded sample)."""
    pick = random.Random(seed)
    cur.execute("SELECT count(*) FROM assessment_states")
    share = min(100.0, max(0.5, 500_000 / max(1, cur.fetchone()[0])))
    cur.execute(
        "SELECT assessment_id, server_name, error_message FROM assessment_states "
        "TABLESAMPLE BERNOULLI (%s) REPEATABLE (%s) LIMIT 5000",
        (share, seed),
    )
    sample = cur.fetchall()
    uuids = [row[0] for row in sample if not row[0].startswith("import-")]
    servers = [row[1] for row in sample if row[1]]
    failed_servers = [row[1] for row in sample if row[2] and row[1]]
    hosts = [server.split(".")[0] for server in failed_servers]
    return [
        QueryKind("id fragment (8 chars)", [u[24:32] for u in _some(pick, uuids)]),
        QueryKind(
            "server host + region + env",
            [".".join(s.split(".")[:3]) for s in _some(pick, servers)],
        ),
        QueryKind(
            "server host, one producer's",
            [s.split(".")[0] + "." for s in _some(pick, servers)],
            owner="producer-7",
        ),
        QueryKind(
            "error phrase + host (rare)",
            [f"nxdomain) for {h}." for h in _some(pick, hosts)],
        ),
        QueryKind("error phrase (common, ~1%)", list(ERROR_PHRASES)),
        QueryKind(
            "no match",
            [f"no-such-host-{pick.randrange(10**6):06d}" for _ in range(20)],
        ),
        QueryKind("2 chars (common)", ["db", "mq", "eu", "43", "ap", "-0", "ca", "pr"]),
        QueryKind(
            "2 chars (no match)",
            ["zz", "qq", "jj", "vv", "kk"],
            notes="no trigram, no match: a full scan",
        ),
    ]


def _some(pick: random.Random, items: list[str], count: int = 20) -> list[str]:
    return pick.sample(items, min(count, len(items)))
