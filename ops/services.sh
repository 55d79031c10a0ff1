#!/usr/bin/env bash
# The private PostgreSQL and Redis that ops/ scripts start when none answers:
# `ops/services.sh start|stop|status`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
case "${1:-status}" in
  start) ensure_venv; ensure_services ;;
  stop)
    if [ -f "$DATA/postgres/postmaster.pid" ]; then
      run_as=(); [ "$(id -u)" = 0 ] && run_as=(runuser -u postgres --)
      "${run_as[@]}" "$(pg_bin pg_ctl)" -D "$DATA/postgres" -m fast stop && say "private PostgreSQL stopped"
    fi
    if command -v redis-cli >/dev/null && redis-cli -p "$PRIVATE_REDIS_PORT" ping >/dev/null 2>&1; then
      redis-cli -p "$PRIVATE_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
      say "private Redis stopped"
    fi ;;
  status)
    ensure_venv
    pg_answers "postgresql+psycopg2://postgres@127.0.0.1:$PRIVATE_PG_PORT/x" &&
      say "private PostgreSQL: up on $PRIVATE_PG_PORT" || say "private PostgreSQL: down"
    redis_answers "redis://127.0.0.1:$PRIVATE_REDIS_PORT/0" &&
      say "private Redis: up on $PRIVATE_REDIS_PORT" || say "private Redis: down" ;;
  *) die "usage: ops/services.sh start|stop|status" ;;
esac
