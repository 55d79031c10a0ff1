#!/usr/bin/env bash
# The main job: `ops/demo.sh [--keep-running] [--rounds N]`.
# Creates .venv and installs the project when needed, makes sure PostgreSQL and Redis
# answer (starting private ones from local binaries otherwise), then runs the demo.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
ensure_venv
ensure_services
exec assessment-store demo "$@"
