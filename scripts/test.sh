#!/usr/bin/env bash
# Keyway's test command. Installs what the suites need beyond the Rust toolchain (the Node peers in
# e2e/, the SSO tests' identity providers among them, the SMTP sink and Schemathesis in e2e/.venv,
# Debian's Chromium for the browser suite, a PostgreSQL server), runs every Rust suite in one
# `cargo test` (the API suite on SQLite, the store contract suite on both engines), the API suite a
# second time on PostgreSQL, then the timing tests alone and serially on both engines, then the hosted
# app's browser suite (`node --test e2e/`) and Schemathesis against the binary that `cargo test` built.
# Extra arguments go to both `cargo test` runs (timing tests included when they match) and skip the
# serial timing step and the browser and Schemathesis suites.
set -euo pipefail
cd "$(dirname "$0")/.."

# Runs a command as root: directly when we are root, else through sudo. Fails (returns 1) with a
# message naming `what` when neither is possible.
as_root() {
  local what=$1
  shift
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "scripts/test.sh: $what needs root, and this user is not root and has no sudo" >&2
    return 1
  fi
}

apt_install() {
  local package=$1
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: apt-get is not available to install $package" >&2
    return 1
  fi
  as_root "installing $package" apt-get update &&
    as_root "installing $package" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$package"
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "scripts/test.sh: Node.js 20+ with npm is needed for the e2e peers (e2e/package.json)" >&2
  exit 1
fi

# Reinstall only when the lock file is newer than the last install.
if [ ! -f e2e/node_modules/.package-lock.json ] || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
  echo "== [$(date +%T)] npm ci (e2e peers)"
  npm ci --prefix e2e --no-audit --no-fund
fi

# Python peers, pinned, in a virtualenv inside the repository: aiosmtpd, the SMTP server the mail
# tests talk to, and Schemathesis, which tests the API against its OpenAPI description. Installed only
# when those exact versions are missing, so a re-run costs one Python start.
AIOSMTPD_VERSION=1.4.6
SCHEMATHESIS_VERSION=4.32.5
VENV=e2e/.venv
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('aiosmtpd') != '$AIOSMTPD_VERSION' or m.version('schemathesis') != '$SCHEMATHESIS_VERSION')" >/dev/null 2>&1; then
  if ! command -v python3 >/dev/null 2>&1; then
    echo "scripts/test.sh: Python 3 with venv is needed for the SMTP sink and Schemathesis" >&2
    exit 1
  fi
  echo "== [$(date +%T)] pip install aiosmtpd==$AIOSMTPD_VERSION schemathesis==$SCHEMATHESIS_VERSION ($VENV)"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "aiosmtpd==$AIOSMTPD_VERSION" "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The browser suite drives Debian's Chromium (playwright-core launches /usr/bin/chromium). Needed
# only when the browser suite runs, that is without extra arguments.
CHROMIUM=/usr/bin/chromium
if [ "$#" -eq 0 ] && [ ! -x "$CHROMIUM" ]; then
  echo "== [$(date +%T)] apt-get install chromium (for the browser suite)"
  if ! apt_install chromium; then
    echo "scripts/test.sh: installing Debian's chromium package failed; the browser suite needs $CHROMIUM" >&2
    exit 1
  fi
  if [ ! -x "$CHROMIUM" ]; then
    echo "scripts/test.sh: the chromium package is installed but $CHROMIUM is still missing" >&2
    exit 1
  fi
fi

# PostgreSQL for the store contract suite and the API suite's second run: a server on 127.0.0.1:5432
# that lets user `postgres` in without a password and may create databases (each test makes its own).
# One that already answers there is used as it is. Otherwise Debian's postgresql package is installed
# if missing, and a cluster of our own, `keyway-test` (trust authentication; it listens on localhost
# only, the default), is created if missing and started. Skipped when KEYWAY_TEST_POSTGRES_URL points elsewhere.
PG_CLUSTER=keyway-test
pg_fail() {
  echo "scripts/test.sh: $*" >&2
  echo "scripts/test.sh: the PostgreSQL suites need a server on 127.0.0.1:5432 with trust authentication for user postgres (or set KEYWAY_TEST_POSTGRES_URL)" >&2
  exit 1
}
pg_ready() {
  command -v pg_isready >/dev/null 2>&1 && pg_isready -h 127.0.0.1 -p 5432 -q
}
if [ -z "${KEYWAY_TEST_POSTGRES_URL:-}" ] && ! pg_ready; then
  echo "== [$(date +%T)] PostgreSQL on 127.0.0.1:5432"
  fresh_install=no
  if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || ! command -v pg_createcluster >/dev/null 2>&1; then
    echo "== [$(date +%T)] apt-get install postgresql"
    apt_install postgresql || pg_fail "installing Debian's postgresql package failed"
    fresh_install=yes
  fi
  pg_version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  [ -n "$pg_version" ] || pg_fail "no PostgreSQL version found under /usr/lib/postgresql"
  cluster_exists() { pg_lsclusters -h | awk -v v="$1" -v c="$2" '$1 == v && $2 == c { found = 1 } END { exit !found }'; }
  # The package creates an empty `main` cluster on 5432 (left stopped in containers, where services do
  # not start on install). It was made by the install above, so it holds nothing: make room for ours.
  if [ "$fresh_install" = yes ] && cluster_exists "$pg_version" main; then
    as_root "removing the empty main cluster" pg_dropcluster --stop "$pg_version" main ||
      pg_fail "could not remove the freshly installed, empty main cluster"
  fi
  if ! cluster_exists "$pg_version" "$PG_CLUSTER"; then
    port_owner=$(pg_lsclusters -h | awk '$3 == 5432 { print $1 "/" $2 }' | head -n 1)
    [ -z "$port_owner" ] ||
      pg_fail "cluster $port_owner is configured for port 5432 but not running; start it (with trust authentication for postgres on 127.0.0.1) rather than have this script touch it"
    as_root "creating a PostgreSQL cluster" pg_createcluster -p 5432 "$pg_version" "$PG_CLUSTER" -- --auth=trust ||
      pg_fail "pg_createcluster $pg_version $PG_CLUSTER failed"
    # pg_createcluster writes Debian's own pg_hba.conf (peer and passwords); this cluster is the test
    # suite's alone, reachable only from this machine, so trust is what it gets.
    printf '%s\n' \
      'local all all trust' \
      'host all all 127.0.0.1/32 trust' \
      'host all all ::1/128 trust' |
      as_root "configuring the test cluster" tee "/etc/postgresql/$pg_version/$PG_CLUSTER/pg_hba.conf" >/dev/null ||
      pg_fail "could not write the test cluster's pg_hba.conf"
  fi
  as_root "starting PostgreSQL" pg_ctlcluster "$pg_version" "$PG_CLUSTER" start ||
    pg_fail "pg_ctlcluster $pg_version $PG_CLUSTER start failed (log: /var/log/postgresql/postgresql-$pg_version-$PG_CLUSTER.log)"
  for _ in $(seq 1 30); do
    pg_ready && break
    sleep 1
  done
  pg_ready || pg_fail "cluster $pg_version/$PG_CLUSTER started but 127.0.0.1:5432 does not answer"
fi
# Plain TCP to the local test server unless told otherwise: sqlx 0.9.0 does not set TCP_NODELAY, so
# over TLS some round trips wait ~40 ms for a delayed ACK (transact-rs/sqlx#4335), which makes the
# PostgreSQL run three times slower. TLS itself has its own test (store_contract, PostgreSQL settings).
export KEYWAY_TEST_POSTGRES_URL="${KEYWAY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"

# Most of the suites' time is waiting, not computing: a database created per test (PostgreSQL's
# CREATE DATABASE alone takes most of a second), servers and peers started, answers awaited. Three
# tests a core keep both cores busy through those waits (on a 2-core machine, six threads instead of
# two ran the register and login tests on PostgreSQL in 29 s instead of 47). RUST_TEST_THREADS set by
# the caller wins, and the timing step below runs one test at a time whatever this says.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-$(($(nproc) * 3))}"

# The timing tests (tests/api/timing.rs) compare medians a few milliseconds apart: they run after the
# parallel suites, alone, one at a time, so nothing else loads the machine while they measure. With
# extra arguments the caller chooses the tests, and they run where the filter puts them.
SERIAL=timing::
PARALLEL_ONLY=()
if [ "$#" -eq 0 ]; then
  PARALLEL_ONLY=(-- --skip "$SERIAL")
fi

echo "== [$(date +%T)] cargo test (API suite on SQLite; store contract on SQLite and PostgreSQL)"
cargo test "$@" "${PARALLEL_ONLY[@]}"

echo "== [$(date +%T)] cargo test --test api (API suite on PostgreSQL)"
KEYWAY_TEST_BACKEND=postgres cargo test --test api "$@" "${PARALLEL_ONLY[@]}"

if [ "$#" -eq 0 ]; then
  echo "== [$(date +%T)] cargo test --test api $SERIAL (timing tests, serially, on SQLite then PostgreSQL)"
  cargo test --test api "$SERIAL" -- --test-threads=1
  KEYWAY_TEST_BACKEND=postgres cargo test --test api "$SERIAL" -- --test-threads=1
fi

# The hosted app in a real browser: each test starts target/debug/keyway (just built by `cargo test`)
# with a fresh database; the SSO tests also start a provider from e2e/sso. Skipped when extra
# arguments select part of the Rust suites.
if [ "$#" -eq 0 ]; then
  echo "== [$(date +%T)] node --test e2e/ (browser suite)"
  node --test --test-reporter=spec e2e/hosted-app.test.mjs e2e/sso.test.mjs
  echo "== [$(date +%T)] schemathesis (API against /api/openapi.json)"
  scripts/schemathesis.sh target/debug/keyway
fi
