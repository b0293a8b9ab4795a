#!/usr/bin/env bash
# Keyway's test command. Installs what the suites need beyond the Rust toolchain (the Node peers in
# e2e/, the SMTP sink and Schemathesis in e2e/.venv, Debian's Chromium for the browser suite), runs
# every Rust suite in one `cargo test`, then the hosted app's browser suite (`node --test e2e/`) and
# Schemathesis against the binary that `cargo test` built. Extra arguments go to `cargo test` and skip
# the browser and Schemathesis suites.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "scripts/test.sh: Node.js 20+ with npm is needed for the e2e peers (e2e/package.json)" >&2
  exit 1
fi

# Reinstall only when the lock file is newer than the last install.
if [ ! -f e2e/node_modules/.package-lock.json ] || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
  echo "== npm ci (e2e peers)"
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
  echo "== pip install aiosmtpd==$AIOSMTPD_VERSION schemathesis==$SCHEMATHESIS_VERSION ($VENV)"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "aiosmtpd==$AIOSMTPD_VERSION" "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The browser suite drives Debian's Chromium (playwright-core launches /usr/bin/chromium). Needed
# only when the browser suite runs, that is without extra arguments.
CHROMIUM=/usr/bin/chromium
if [ "$#" -eq 0 ] && [ ! -x "$CHROMIUM" ]; then
  echo "== apt-get install chromium (for the browser suite)"
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "scripts/test.sh: $CHROMIUM is missing and this user cannot install it (not root, no sudo): install Debian's chromium package" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: $CHROMIUM is missing and apt-get is not available: install Chromium at $CHROMIUM" >&2
    exit 1
  fi
  if ! "${SUDO[@]}" apt-get update || ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; then
    echo "scripts/test.sh: installing Debian's chromium package failed; the browser suite needs $CHROMIUM" >&2
    exit 1
  fi
  if [ ! -x "$CHROMIUM" ]; then
    echo "scripts/test.sh: the chromium package is installed but $CHROMIUM is still missing" >&2
    exit 1
  fi
fi

echo "== cargo test"
cargo test "$@"

# The hosted app in a real browser: each test starts target/debug/keyway (just built by `cargo test`)
# with a fresh database. Skipped when extra arguments select part of the Rust suites.
if [ "$#" -eq 0 ]; then
  echo "== node --test e2e/ (browser suite)"
  node --test --test-reporter=spec e2e/hosted-app.test.mjs
  echo "== schemathesis (API against /api/openapi.json)"
  scripts/schemathesis.sh target/debug/keyway
fi
