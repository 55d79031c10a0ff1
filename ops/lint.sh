#!/usr/bin/env bash
# ruff (lint and format check) and mypy --strict, as ops/test.sh runs them.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
ensure_venv
ruff check .
ruff format --check .
mypy
