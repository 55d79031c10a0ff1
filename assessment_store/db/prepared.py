"""Running the transition engine's statements as server-side prepared statements.

psycopg2 sends every statement as text, so PostgreSQL plans the engine's large
statement (input, update, audit insert, lease step, notify) on every call: about as
long as running it. Each statement shape is therefore PREPAREd once per connection
(the first time that connection meets it) and then EXECUTEd, which skips the
planning and the parsing.

Rows come straight from the driver's cursor as dicts: building SQLAlchemy's result
metadata for the engine's twenty columns cost more than the rest of the call. Driver
errors are wrapped exactly as SQLAlchemy wraps them (``DBAPIError.instance``), and a
connection found dead is invalidated, so callers see the errors they always saw.

A step whose loss in a crash of PostgreSQL is provably harmless may also skip
waiting for its commit record to reach disk (``durable=False``, sent in the same
round trip as ``SET LOCAL synchronous_commit = off``). ``transitions`` says which
steps those are and why.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import psycopg2
from sqlalchemy import Connection, TextClause
from sqlalchemy.exc import DBAPIError

# ``:name`` binds of a text() clause (not ``::type`` casts, not inside identifiers).
_BIND = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_INFO_KEY = "assessment_store.prepared"
_RELAXED = "SET LOCAL synchronous_commit = off; "


@lru_cache(maxsize=512)
def _prepared_form(sql: str) -> tuple[str, str, str]:
    """(name, PREPARE statement, EXECUTE template with pyformat params) of ``sql``."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    body = _BIND.sub(number, sql)
    name = "as_" + hashlib.blake2b(sql.encode(), digest_size=8).hexdigest()
    arguments = ", ".join(f"%({n})s" for n in names)
    return (
        name,
        f"PREPARE {name} AS {body}",
        f"EXECUTE {name}({arguments})" if names else (f"EXECUTE {name}"),
    )


def execute(
    conn: Connection, clause: TextClause, params: Mapping[str, Any], *, durable: bool = True
) -> list[dict[str, Any]]:
    """The rows of ``clause`` run with ``params``, as a prepared statement on this
    connection (prepared on first use)."""
    name, prepare, execute_sql = _prepared_form(clause.text)
    prepared: set[str] = conn.connection.info.setdefault(_INFO_KEY, set())
    if name not in prepared:
        # Its own round trip, once per connection and shape, so that we know it
        # succeeded (a prepared statement outlives a rollback).
        _run(conn, prepare, None)
        prepared.add(name)
    return _run(conn, execute_sql if durable else _RELAXED + execute_sql, dict(params))


def _run(conn: Connection, sql: str, params: dict[str, Any] | None) -> list[dict[str, Any]]:
    driver = conn.connection.dbapi_connection
    assert driver is not None, "the connection was closed"
    cursor = driver.cursor()
    try:
        cursor.execute(sql, params)
        if cursor.description is None:
            return []
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    except psycopg2.Error as exc:
        dead = bool(driver.closed)
        if dead:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            sql, params, exc, psycopg2.Error, connection_invalidated=dead
        ) from exc
    finally:
        cursor.close()
