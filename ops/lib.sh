# Shared by the ops/ scripts: a virtualenv with the project installed, and reachable
# PostgreSQL and Redis (private ones started from local binaries when none answers).
# Source it; it exports ASSESSMENT_STORE_DATABASE_URL / ASSESSMENT_STORE_REDIS_URL.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ASSESSMENT_STORE_VENV:-$ROOT/.venv}"
DATA="$ROOT/.ops-data"
PRIVATE_PG_PORT="${ASSESSMENT_STORE_PRIVATE_PG_PORT:-55432}"
PRIVATE_REDIS_PORT="${ASSESSMENT_STORE_PRIVATE_REDIS_PORT:-56379}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  die "Python 3.11 or newer is required (none found on PATH)"
}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    "$(find_python)" -m venv "$VENV"
  fi
  local stamp="$VENV/.assessment-store-installed"
  local want
  want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing the project and its test tools into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[test,dev,bench]"
    echo "$want" > "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

# Reads the configured URLs the same way the application does (.env included).
configured_url() {
  (cd "$ROOT" && "$VENV/bin/python" -c "
from assessment_store.config import get_settings
s = get_settings()
print(s.$1)")
}

pg_answers() { "$VENV/bin/python" - "$1" <<'PY'
import sys
from sqlalchemy import create_engine, make_url, pool, text
url = make_url(sys.argv[1]).set(database="postgres")
engine = create_engine(url, poolclass=pool.NullPool, connect_args={"connect_timeout": 3})
try:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
except Exception:
    sys.exit(1)
PY
}

redis_answers() { "$VENV/bin/python" -c "
import sys, redis
try:
    redis.Redis.from_url(sys.argv[1], socket_connect_timeout=3).ping()
except Exception:
    sys.exit(1)" "$1"; }

pg_bin() {
  local name="$1"
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  local found
  found="$(ls -d /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -n 1 || true)"
  [ -n "$found" ] && echo "$found"
}

start_private_postgres() {
  local initdb pg_ctl
  initdb="$(pg_bin initdb)"; pg_ctl="$(pg_bin pg_ctl)"
  [ -n "$initdb" ] && [ -n "$pg_ctl" ] ||
    die "PostgreSQL is not reachable at $1 and no local PostgreSQL binaries (initdb, pg_ctl) were found.
  Install PostgreSQL 15+ (Debian: apt-get install postgresql) or set ASSESSMENT_STORE_DATABASE_URL."
  local dir="$DATA/postgres"
  local run_as=()
  if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root: run the private server as the postgres user.
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user to start a private PostgreSQL"
    run_as=(runuser -u postgres --)
    mkdir -p "$DATA"; chown postgres "$DATA" 2>/dev/null || true
  fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    say "initialising a private PostgreSQL in $dir"
    mkdir -p "$dir"; [ "$(id -u)" = 0 ] && chown postgres "$dir"
    "${run_as[@]}" "$initdb" -D "$dir" -U postgres --auth=trust >/dev/null
  fi
  say "starting a private PostgreSQL on 127.0.0.1:$PRIVATE_PG_PORT"
  "${run_as[@]}" "$pg_ctl" -D "$dir" -l "$dir/server.log" -w \
    -o "-p $PRIVATE_PG_PORT -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null
}

start_private_redis() {
  command -v redis-server >/dev/null 2>&1 ||
    die "Redis is not reachable at $1 and no redis-server binary was found.
  Install Redis 7 (Debian: apt-get install redis-server) or set ASSESSMENT_STORE_REDIS_URL."
  mkdir -p "$DATA/redis"
  say "starting a private Redis on 127.0.0.1:$PRIVATE_REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$PRIVATE_REDIS_PORT" --save "" \
    --appendonly no --dir "$DATA/redis" --logfile "$DATA/redis/redis.log" >/dev/null
}

wait_for() {  # wait_for <description> <command...>
  local what="$1"; shift
  for _ in $(seq 1 50); do "$@" && return 0; sleep 0.2; done
  die "$what did not become reachable"
}

ensure_services() {
  local db_url redis_url
  db_url="$(configured_url database_url)"
  redis_url="$(configured_url redis_url)"
  if ! pg_answers "$db_url"; then
    local private="postgresql+psycopg2://postgres@127.0.0.1:$PRIVATE_PG_PORT/assessment_store"
    if ! pg_answers "$private"; then
      say "PostgreSQL does not answer at $db_url"
      start_private_postgres "$db_url"
      wait_for "the private PostgreSQL" pg_answers "$private"
    fi
    db_url="$private"
  fi
  if ! redis_answers "$redis_url"; then
    local private="redis://127.0.0.1:$PRIVATE_REDIS_PORT/0"
    if ! redis_answers "$private"; then
      say "Redis does not answer at $redis_url"
      start_private_redis "$redis_url"
      wait_for "the private Redis" redis_answers "$private"
    fi
    redis_url="$private"
  fi
  export ASSESSMENT_STORE_DATABASE_URL="$db_url" ASSESSMENT_STORE_REDIS_URL="$redis_url"
  say "PostgreSQL: $db_url"
  say "Redis:      $redis_url"
}

# The browser tests (tests/browser) drive Debian's chromium through Playwright with
# executable_path=/usr/bin/chromium. Playwright's own browser download (`playwright
# install`) cannot work in this environment, so it is never run: the distribution's
# package is the one browser.
CHROMIUM=/usr/bin/chromium

chromium_runs() { [ -x "$CHROMIUM" ] && "$CHROMIUM" --version >/dev/null 2>&1; }

ensure_chromium() {
  chromium_runs && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium (apt-get) for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q chromium >/dev/null 2>&1; then
      apt-get update -q >/dev/null 2>&1 || true
      apt-get install -y -q chromium >/dev/null ||
        die "the browser tests need Debian's chromium at $CHROMIUM: 'apt-get install -y chromium' failed"
    fi
    chromium_runs || die "chromium was installed but '$CHROMIUM --version' does not run"
    return 0
  fi
  die "the browser tests need Debian's chromium at $CHROMIUM: run 'apt-get install -y chromium' as root"
}
