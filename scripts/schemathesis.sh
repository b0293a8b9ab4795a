#!/usr/bin/env bash
# Schemathesis (e2e/.venv, installed by scripts/test.sh) against the OpenAPI document a running Keyway
# serves at /api/openapi.json: generated and mutated requests for every operation, with a bounded
# number of examples each, and every answer checked: no 5xx, a documented status, content type,
# headers and body matching the schema, schema-violating input refused, unknown methods refused.
#
# e2e/schemathesis.toml scopes the two checks Strapi's contract contradicts (positive_data_acceptance,
# missing_required_header) to the operations whose contract needs it, and feeds a live session id and
# refresh token to the operations that need one. The run fails unless every secured operation answered
# 2xx at least once, so it cannot pass unauthenticated.
#
# Usage: scripts/schemathesis.sh [path to the keyway binary, default target/debug/keyway]
# SCHEMATHESIS_EXAMPLES sets the examples per operation (default 50).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-target/debug/keyway}
ST=e2e/.venv/bin/schemathesis
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-50}

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

# Rate limits and the login throttle off, so the generated requests reach the handlers instead of
# stopping at a 429 after the tenth. Port 0: Keyway takes a free port and prints it, so no port is
# reserved and released for another process to take in between.
KEYWAY_BIND=127.0.0.1:0 KEYWAY_DATABASE_URL="sqlite://$work/keyway.db" \
  KEYWAY_RATE_LIMIT=false KEYWAY_LOGIN_THROTTLE=false RUST_LOG=warn \
  "$BIN" serve --demo >"$work/server.log" 2>&1 &
server=$!
# Python rather than curl: the machines this runs on are promised Python, not curl.
base=$(python3 - "$work/server.log" "$server" <<'PY'
import os, re, sys, time
for _ in range(300):
    try:
        found = re.search(r"^Keyway listening on (http://127\.0\.0\.1:\d+) ", open(sys.argv[1]).read(), re.M)
    except OSError:
        found = None
    if found:
        print(found.group(1))
        sys.exit(0)
    try:
        os.kill(int(sys.argv[2]), 0)
    except OSError:
        sys.exit(1)
    time.sleep(0.1)
sys.exit(1)
PY
) || { echo "keyway did not start:" >&2; cat "$work/server.log" >&2; exit 1; }

# Live credentials from a fresh login of the demo user: `login jwt` (a bearer token), `login refresh`
# (a refresh token) or `login session` (the new session's id). Always on a line of its own, as
# `var=$(login …)`, so that a failed login stops the run (under `set -e` a failing command substitution
# inside another command's arguments is ignored, and the run would go on unauthenticated, every
# secured operation answering a documented 401/403).
login() {
  python3 - "$base" "$1" <<'PY'
import json, sys, urllib.request
base, want = sys.argv[1], sys.argv[2]

def call(path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = "Bearer " + token
    data = json.dumps(body).encode() if body is not None else None
    return json.load(urllib.request.urlopen(urllib.request.Request(base + path, data, headers), timeout=10))

grant = call("/api/auth/local", {"identifier": "appsmith_user", "password": "appsmith_password"})
if want == "jwt":
    print(grant["jwt"])
elif want == "refresh":
    print(grant["refreshToken"])
else:
    current = [s["id"] for s in call("/api/auth/sessions", token=grant["jwt"])["data"] if s["current"]]
    assert len(current) == 1, "GET /api/auth/sessions names no current session"
    print(current[0])
PY
}

# Whether a bearer token still opens GET /api/users/me.
still_valid() {
  python3 - "$base" "$1" <<'PY'
import sys, urllib.error, urllib.request
req = urllib.request.Request(sys.argv[1] + "/api/users/me", headers={"authorization": "Bearer " + sys.argv[2]})
try:
    sys.exit(0 if urllib.request.urlopen(req, timeout=10).status == 200 else 1)
except urllib.error.HTTPError:
    sys.exit(1)
PY
}

cp e2e/schemathesis.toml "$work/schemathesis.toml"
# Every run loads the whole configuration, so its live values must exist from the start; each is
# filled in just before the run that uses it.
printf '"none"\n' >"$work/session-ids.dict"
export KEYWAY_ST_REFRESH_TOKEN=none
run() {
  local name=$1
  shift
  (cd "$work" && "$OLDPWD/$ST" --config-file schemathesis.toml run "$base/api/openapi.json" \
    -n "$EXAMPLES" --seed 20261127 --generation-database none --no-color \
    --report har --report-har-path "$work/$name.har" "$@")
}

# Three operations end sessions beyond those they are given, and the demo user's sessions are all
# one user's: DELETE /api/auth/sessions/{id} (the stateful phase follows the link from
# GET /api/auth/sessions and ends every listed session), logout (with `scope: "all"`, every session of
# the user) and refresh (a refresh token presented again after its grace is taken as stolen, which ends
# every session of its user). So each runs after the rest, in that order, with credentials from a login
# made just before it, and another session's id or refresh token as its live value
# (e2e/schemathesis.toml).
token=$(login jwt)
echo "== [$(date +%T)] schemathesis: every operation but those that end sessions ($EXAMPLES examples each)"
run main -H "Authorization: Bearer $token" \
  --exclude-path /api/auth/sessions/{id} --exclude-path /api/auth/logout --exclude-path /api/auth/refresh
# Sessions do not come back: if the run's token still works, it worked for every request before.
still_valid "$token" || {
  echo "scripts/schemathesis.sh: the run's bearer token stopped working during the run, so later operations ran unauthenticated" >&2
  exit 1
}

token=$(login jwt)
doomed=$(login session)
# A libFuzzer-style dictionary, as Schemathesis reads it: one quoted entry a line.
printf '"%s"\n' "$doomed" >"$work/session-ids.dict"
echo "== [$(date +%T)] schemathesis: sessions"
run sessions -H "Authorization: Bearer $token" \
  --include-path /api/auth/sessions --include-path /api/auth/sessions/{id}

token=$(login jwt)
echo "== [$(date +%T)] schemathesis: logout"
run logout -H "Authorization: Bearer $token" --include-path /api/auth/logout

KEYWAY_ST_REFRESH_TOKEN=$(login refresh)
echo "== [$(date +%T)] schemathesis: refresh"
run refresh --include-path /api/auth/refresh

# Proof that the secured handlers ran rather than refusing: each of these answered 2xx at least once
# (read from the runs' HAR records). An unauthenticated run passes every check with documented
# 401/403s, so without this it could pass for the wrong reason.
python3 - "$work"/{main,sessions,logout,refresh}.har <<'PY'
import json, re, sys, urllib.parse
required = {
    ("GET", "/api/users/me"): re.compile(r"/api/users/me"),
    ("GET", "/api/auth/verify"): re.compile(r"/api/auth/verify"),
    ("GET", "/api/auth/sessions"): re.compile(r"/api/auth/sessions"),
    ("DELETE", "/api/auth/sessions/{id}"): re.compile(r"/api/auth/sessions/[^/]+"),
    ("POST", "/api/auth/refresh"): re.compile(r"/api/auth/refresh"),
    ("POST", "/api/auth/logout"): re.compile(r"/api/auth/logout"),
}
answered = {key: [] for key in required}
for har in sys.argv[1:]:
    for entry in json.load(open(har))["log"]["entries"]:
        method = entry["request"]["method"]
        path = urllib.parse.urlsplit(entry["request"]["url"]).path
        for (m, name), pattern in required.items():
            if method == m and pattern.fullmatch(path):
                answered[(m, name)].append(entry["response"]["status"])
missing = []
for (method, name), statuses in answered.items():
    ok = sum(200 <= s < 300 for s in statuses)
    print(f"   {method} {name}: {ok} of {len(statuses)} requests answered 2xx")
    if not ok:
        missing.append(f"{method} {name}")
if missing:
    sys.exit("scripts/schemathesis.sh: never answered 2xx, so its handler was never exercised: " + ", ".join(missing))
PY

if grep -E "panicked|internal error" "$work/server.log" >&2; then
  echo "scripts/schemathesis.sh: the server logged a panic or an internal error" >&2
  exit 1
fi
