#!/usr/bin/env bash
# Benchmarks, as ratios against baselines run in the same process: `ops/bench.sh store`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
ensure_venv
ensure_services
suite="${1:-store}"; shift || true
exec python -m "ops.bench.$suite" "$@"
