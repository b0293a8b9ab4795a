#!/usr/bin/env bash
# Schemathesis (e2e/.venv, installed by scripts/test.sh) against the OpenAPI document a running Keyway
# serves at /api/openapi.json: generated and mutated requests for every operation, with a bounded
# number of examples each, and every answer checked: no 5xx, a documented status, content type,
# headers and body matching the schema, schema-violating input refused, unknown methods refused.
#
# Two checks are left out because Strapi's contract, which Keyway keeps, contradicts them:
#   positive_data_acceptance  a schema-valid login with made-up credentials is refused (400), as it
#                             must be; so is a made-up reset code or refresh token.
#   missing_required_header   a request with no Authorization header at all is 403 in Strapi (the
#                             public role may not use the route), not 401; both are documented.
#
# Usage: scripts/schemathesis.sh [path to the keyway binary, default target/debug/keyway]
# SCHEMATHESIS_EXAMPLES sets the examples per operation (default 50).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/debug/keyway}
ST=e2e/.venv/bin/schemathesis
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-50}
CHECKS=(--checks all --exclude-checks positive_data_acceptance,missing_required_header)

if [ ! -x "$ST" ]; then
  echo "scripts/schemathesis.sh: $ST is missing; scripts/test.sh installs it" >&2
  exit 1
fi

work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# Rate limits and the login throttle off, so the generated requests reach the handlers instead of
# stopping at a 429 after the tenth.
KEYWAY_BIND="127.0.0.1:$port" KEYWAY_DATABASE_URL="sqlite://$work/keyway.db" \
  KEYWAY_RATE_LIMIT=false KEYWAY_LOGIN_THROTTLE=false RUST_LOG=warn \
  "$BIN" serve --demo >"$work/server.log" 2>&1 &
server=$!
# Python rather than curl: the machines this runs on are promised Python, not curl.
python3 - "$base" <<'PY' || { echo "keyway did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=1)
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY

login() {
  python3 - "$base" <<'PY'
import json, sys, urllib.request
body = json.dumps({"identifier": "appsmith_user", "password": "appsmith_password"}).encode()
req = urllib.request.Request(sys.argv[1] + "/api/auth/local", body, {"content-type": "application/json"})
print(json.load(urllib.request.urlopen(req, timeout=10))["jwt"])
PY
}

run() {
  (cd "$work" && "$OLDPWD/$ST" run "$base/api/openapi.json" -n "$EXAMPLES" "${CHECKS[@]}" \
    --seed 20261127 --generation-database none --no-color "$@")
}

# Logout ends the session its token belongs to, so it gets a token of its own and runs last.
echo "== schemathesis: every operation but logout ($EXAMPLES examples each)"
run -H "Authorization: Bearer $(login)" --exclude-path /api/auth/logout
echo "== schemathesis: logout"
run -H "Authorization: Bearer $(login)" --include-path /api/auth/logout

if grep -E "panicked|internal error" "$work/server.log" >&2; then
  echo "scripts/schemathesis.sh: the server logged a panic or an internal error" >&2
  exit 1
fi
