#!/usr/bin/env bash
# Keyway's test command. Installs what the suites need beyond the Rust toolchain (the Node peers in
# e2e/), then runs every suite in one `cargo test`. Extra arguments go to `cargo test`.
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

echo "== cargo test"
cargo test "$@"
