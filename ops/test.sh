#!/usr/bin/env bash
# The whole test suite, as CI and people run it: `ops/test.sh [pytest args...]`.
# Creates .venv and installs the project when needed, makes sure PostgreSQL and Redis
# answer (starting private ones from local binaries otherwise), then runs ruff, mypy
# --strict and pytest with coverage. A missing service fails the run.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
ensure_venv
ensure_services
ensure_chromium

say "ruff"
ruff check .
ruff format --check .
say "mypy --strict"
mypy
say "pytest"
exec python -m pytest --cov --cov-report=term:skip-covered --cov-fail-under=85 "$@"
