#!/usr/bin/env bash
# The benchmark: the store against plain Celery, procrastinate and naive loops, in one
# run (`ops/bench/run.sh`, `--quick` for a smoke run). Report in .ops-data/bench/.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$ROOT"
ensure_venv
ensure_services
exec python -m ops.bench.run "$@"
