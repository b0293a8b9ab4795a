#!/usr/bin/env bash
# Keyway's test command. Installs what the suites need beyond the Rust toolchain (the Node peers in
# e2e/, the SMTP sink in e2e/.venv), then runs every suite in one `cargo test`. Extra arguments go to
# `cargo test`.
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

# The SMTP server the mail tests talk to: aiosmtpd, pinned, in a virtualenv inside the repository.
# Installed only when that exact version is missing, so a re-run costs one Python start.
AIOSMTPD_VERSION=1.4.6
VENV=e2e/.venv
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('aiosmtpd') != '$AIOSMTPD_VERSION')" >/dev/null 2>&1; then
  if ! command -v python3 >/dev/null 2>&1; then
    echo "scripts/test.sh: Python 3 with venv is needed for the SMTP sink (aiosmtpd)" >&2
    exit 1
  fi
  echo "== pip install aiosmtpd==$AIOSMTPD_VERSION ($VENV)"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION"
fi

echo "== cargo test"
cargo test "$@"
