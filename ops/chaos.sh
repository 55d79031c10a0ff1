#!/usr/bin/env bash
# A long randomized fault run against private PostgreSQL and Redis instances:
# `ops/chaos.sh [--minutes N] [--seed S] [--out DIR]` (10 minutes unless told; the
# report goes to .ops-data/chaos/<time>/ unless --out says otherwise). Exits non-zero
# when anything was lost or done twice or an invariant broke. Needs the PostgreSQL
# server binaries (initdb, pg_ctl) and redis-server; never touches the configured
# services.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
ensure_venv
exec python -m ops.chaos.run "$@"
