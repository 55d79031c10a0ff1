"""SQL of the list's text search (``q``): what is searched, how, and its index.

One document per row, the id, server name and error message joined by a unit
separator (U+001F), is matched case-insensitively as a substring (``ILIKE``); a GIN
trigram index over exactly that expression (``ix_assessment_states_search``, in
``tables`` and migration 0004) answers it. A query never holds a control character
(``models.AssessmentFilters`` refuses them), so no match can straddle two fields.
While encryption is on, error messages are ciphertext and are not searched.

Why one expression index rather than one trigram index per column: every change of
an assessment rewrites its row and, with no HOT update possible (``state``,
``updated_at`` and more are indexed), inserts the new row version into every index,
GIN ones included, so the shape was chosen by measuring both (``python -m
ops.bench.search --compare-shapes``, 1,000,000 rows; figures in the README's Search
section). Any trigram index makes a single-row update 50-90% dearer (2,000 of them:
0.40-0.49 s without, 0.71-0.89 s with, GIN's deferred pending-list merge included);
between one index and three the difference stayed within the noise of three runs
(0.73/0.75/0.83 s against 0.89/0.71/0.82 s, about the same WAL), the merge a little
cheaper with one (0.22-0.23 s against 0.24-0.27 s). Searches were as fast
overall (three answer a rare error phrase faster, one an id or a miss), and one is
smaller (172 MB against 186 MB) and simpler: one index, one condition, one
estimate. GIN's ``fastupdate`` stays on: off, the same updates took twice as long.

Which rows a page shows is decided in two steps (:func:`search_statement`), because
the planner alone sometimes picks a plan tens of times too slow. It can take the
trigram index then sort the matches, or walk the created_at index newest first and
stop when the page is full; it decides by the estimated number of matches, which for
a LIKE pattern comes from a histogram of 100 sampled documents: a rare pattern that
happens to match one of them is taken for 1% of the table, and the walk then reads
all of it (0.5 to 1 s at a million rows; about one server-name query in a hundred in
the benchmark). So the statement first collects up to PROBE_ROWS matches in no
order (through the index when the pattern is rare, a scan stopping early when it is
common) and, when that is all of them, sorts the page from those; only a query
matching PROBE_ROWS rows or more goes to the planner's ordered plan, right for it.

A trigram index needs three characters: a query of one or two has no trigram, so it
is matched with ``strpos(lower(...))`` instead, which the index cannot serve (a
pattern without trigrams would read the whole index): the first step is then a scan
that stops at PROBE_ROWS matches, quick when matches are common, as short substrings
usually are, and as slow as a full (serial) scan when they are rare: 0.7 s at a
million rows. Exact either way.
"""

from __future__ import annotations

from typing import Final

# Changing this expression needs a migration: the index is built on it, and only a
# condition on the very same expression can use the index.
# Spelled as PostgreSQL prints it back (fully parenthesised), so that ``alembic check``
# can compare the index with the table definition; '\x1f' is the separator itself.
SEARCH_DOCUMENT: Final = (
    "((((assessment_id || '\x1f') || COALESCE(server_name, '')) || '\x1f') "
    "|| COALESCE(error_message, ''))"
)
# The document without the error message (encryption on).
DOCUMENT_WITHOUT_ERRORS: Final = "((assessment_id || '\x1f') || COALESCE(server_name, ''))"
SEARCH_INDEX: Final = "ix_assessment_states_search"
MIN_INDEXED_CHARS: Final = 3
# How many matches the first step collects before leaving the page to the planner.
PROBE_ROWS: Final = 1000
ORDER: Final = "ORDER BY created_at DESC, assessment_id DESC"


def like_literal(text: str) -> str:
    """``text`` with LIKE's metacharacters (``\\``, ``%``, ``_``) escaped, so each
    matches only itself (backslash is LIKE's default escape character)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_condition(text: str, params: dict[str, object], *, errors: bool = True) -> str:
    """The WHERE condition matching rows whose id, server name or, with ``errors``,
    error message holds ``text`` (any case); adds its parameter to ``params``.

    Without ``errors`` (encryption on: the column holds ciphertext, whose random
    letters would match anything) the index still narrows the candidates, and the
    id and server name alone decide: a row whose id or server matches always has a
    matching document, so nothing is lost."""
    if len(text) >= MIN_INDEXED_CHARS:
        params["search_pattern"] = f"%{like_literal(text)}%"
        condition = f"{SEARCH_DOCUMENT} ILIKE :search_pattern"
        if not errors:
            condition += (
                " AND (assessment_id ILIKE :search_pattern OR server_name ILIKE :search_pattern)"
            )
        return condition
    # ILIKE lowercases both sides in a multi-byte database, so this matches the
    # same rows; it is spelled differently so that the planner never takes the
    # trigram index for it (a pattern without trigrams would read the whole index).
    params["search_text"] = text
    document = SEARCH_DOCUMENT if errors else DOCUMENT_WITHOUT_ERRORS
    return f"strpos(lower({document}), lower(:search_text)) > 0"


def search_statement(columns: str, where: str) -> str:
    """The list's statement when ``where`` (a WHERE clause) holds a search condition:
    the same rows as ``SELECT columns ... where ORDER BY ... LIMIT :limit``, found in
    two steps (see the module's docstring); binds ``:limit`` and ``:probe_rows``."""
    return f"""
        WITH probe AS MATERIALIZED (
            SELECT assessment_id, created_at FROM assessment_states {where}
            LIMIT :probe_rows
        )
        (SELECT {columns}
         FROM (SELECT assessment_id FROM probe {ORDER} LIMIT :limit) AS page
         JOIN assessment_states USING (assessment_id)
         WHERE (SELECT count(*) FROM probe) < :probe_rows
         {ORDER})
        UNION ALL
        (SELECT {columns} FROM assessment_states
         {where} AND (SELECT count(*) FROM probe) >= :probe_rows
         {ORDER} LIMIT :limit)
    """
