#!/usr/bin/env python3
"""Keyway's benchmark suite: one command, one Markdown table.

    python3 bench/run.py                 # the full run (about 5 minutes), table on stdout
    python3 bench/run.py --million       # also with 1,000,000 users (a few more minutes of seeding)
    python3 bench/run.py --smoke         # 2 s per scenario, fails on any error, no targets
    python3 bench/run.py --smoke --require-postgres   # CI: the PostgreSQL rows may not be skipped

It builds Keyway and the ceilings (examples/ceiling.rs) in release mode, starts `keyway serve` on a
fresh SQLite database with the default configuration (route rate limits off: every request comes
from one address, and a limit of 10 a minute would measure nothing else), seeds users
(examples/seed.rs), logs some in, and drives each scenario with wrk from a separate process on
loopback. Each scenario gets a freshly started server, so its peak RSS is its own. The ceilings run
in the same session: a bare axum handler serving the same /api/users/me bytes without any
authentication, and a bare argon2id loop with the default parameters, so every figure can also be
read as a fraction of what this machine can do.

Only the Python standard library, wrk (installed with apt-get when missing) and cargo are needed.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRK_DIR = ROOT / "bench" / "wrk"
PASSWORD = "bench-password-7f3a9c"
# The bench database on the local test server; recreated by each run.
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/keyway_bench?sslmode=disable"

# (scenario, metric, comparison, target) — the figures issue 9 asks for on a 2-core machine.
TARGETS = {
    "me": [("rps", ">=", 30000), ("p99_ms", "<", 5), ("ceiling_fraction", ">=", 1 / 3)],
    "verify": [("rps", ">=", 40000)],
    "login": [("hash_fraction", ">=", 0.9), ("p99_ms", "<", 1000)],
    "refresh": [("rps", ">=", 3000)],
    "me_under_login_flood": [("p99_ms", "<", 20)],
}


# Report rows, in order: (results key, label).
LABELS = [
    ("ceiling", "bare axum handler, same JSON, no auth (ceiling)"),
    ("me", "`GET /api/users/me`"),
    ("verify", "`GET /api/auth/verify`"),
    ("login", "`POST /api/auth/local`"),
    ("refresh", "`POST /api/auth/refresh`"),
    ("me_under_login_flood", "`GET /api/users/me` during a login flood"),
    ("pg_me", "`GET /api/users/me` (PostgreSQL)"),
    ("pg_login", "`POST /api/auth/local` (PostgreSQL)"),
    ("pg_refresh", "`POST /api/auth/refresh` (PostgreSQL)"),
    ("me_1m", "`GET /api/users/me`, 1,000,000 users"),
    ("login_1m", "`POST /api/auth/local`, 1,000,000 users"),
]
# The rows that need a PostgreSQL server.
PG_ROWS = ("pg_me", "pg_login", "pg_refresh")


def redact(url):
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if at and ":" in creds:
        return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
    return url


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, token=None, timeout=10):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def rss_kib(pid):
    """(current, peak) resident set size of a process, in KiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def reachable(url):
    """Whether something listens at a database URL's host and port."""
    from urllib.parse import urlparse

    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), timeout=1):
            return True
    except OSError:
        return False


def ensure_wrk():
    if shutil.which("wrk"):
        return
    log("wrk is missing; installing Debian's wrk package")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "install", "-y", "wrk"], check=False, env=env)
    if not shutil.which("wrk"):
        subprocess.run(sudo + ["apt-get", "update"], check=True, env=env)
        subprocess.run(sudo + ["apt-get", "install", "-y", "wrk"], check=True, env=env)


class Keyway:
    """One `keyway serve` process on the bench database."""

    def __init__(self, binary, workdir, database_url, extra_env=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            KEYWAY_BIND=f"127.0.0.1:{self.port}",
            KEYWAY_DATABASE_URL=database_url,
            KEYWAY_RATE_LIMIT="false",
            # No SMTP server here: serve refuses to start without one unless told to log mail.
            KEYWAY_MAIL_TO_LOG="true",
        )
        env.update(extra_env or {})
        self.log_path = Path(workdir) / f"keyway-{self.port}.log"
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(binary), "serve"],
            env=env,
            stdout=open(self.log_path, "w"),
            stderr=subprocess.STDOUT,
        )

    def wait_until(self, check, what, timeout=30):
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"bench: keyway exited while {what}:\n{self.log_path.read_text()}")
            try:
                if check():
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.002)
        sys.exit(f"bench: keyway not {what} after {timeout} s:\n{self.log_path.read_text()}")

    def wait_ready(self):
        return self.wait_until(
            lambda: http("GET", self.base + "/healthz", timeout=1)[0] == 200, "ready"
        )

    def login(self, username):
        status, body = http(
            "POST",
            self.base + "/api/auth/local",
            {"identifier": username, "password": PASSWORD},
        )
        if status != 200:
            raise RuntimeError(f"login of {username} failed: {status} {body[:200]!r}")
        return json.loads(body)

    def rss(self):
        return rss_kib(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wrk(url, script, connections, seconds, args=(), workdir=None):
    """Runs wrk with `script` (plus the JSON reporter) and returns its figures."""
    body = (WRK_DIR / script).read_text() + "\n" + (WRK_DIR / "report.lua").read_text()
    path = Path(workdir) / f"{script}.{connections}.lua"
    path.write_text(body)
    threads = min(2, connections)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    cmd += ["-s", str(path), url]
    if args:
        cmd += ["--"] + [str(a) for a in args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    r = json.loads(line)
    secs = r["duration_us"] / 1e6
    errors = r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return {
        "rps": r["requests"] / secs,
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "requests": r["requests"],
        "errors": errors,
    }


def build(profile):
    log(f"building keyway and the examples ({profile})")
    cmd = ["cargo", "build", "--bin", "keyway", "--example", "ceiling", "--example", "seed"]
    if profile == "release":
        cmd.append("--release")
    subprocess.run(cmd, cwd=ROOT, check=True)
    out = ROOT / "target" / profile
    return out / "keyway", out / "examples" / "ceiling", out / "examples" / "seed"


def seed(seed_bin, database_url, start, end):
    t = time.perf_counter()
    out = subprocess.run(
        [str(seed_bin), database_url, str(start), str(end), PASSWORD],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    log(f"seeded {out} users ({start}..{end}) in {time.perf_counter() - t:.1f} s")


def login_many(server, names, parallel=2):
    """Logs each name in once; returns the answers in order."""
    results = [None] * len(names)

    def work(k):
        for i in range(k, len(names), parallel):
            results[i] = server.login(names[i])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(r is None for r in results):
        sys.exit("bench: some logins failed")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="2 s per scenario, debug build, errors fail")
    ap.add_argument("--seconds", type=int, help="length of each measured run (default 10, smoke 2)")
    ap.add_argument("--users", type=int, default=1000, help="users in the database (default 1000)")
    ap.add_argument("--million", action="store_true", help="repeat login and /users/me with 1,000,000 users")
    ap.add_argument("--profile", choices=["release", "debug"], help="cargo profile (default release, smoke debug)")
    ap.add_argument("--out", type=Path, help="also write the Markdown report here")
    ap.add_argument("--postgres", help=f"PostgreSQL server URL for the PostgreSQL rows (default {DEFAULT_PG})")
    ap.add_argument("--no-postgres", action="store_true", help="SQLite only")
    ap.add_argument("--require-postgres", action="store_true",
                    help="fail, rather than skip the PostgreSQL rows, when the server is unreachable (CI)")
    opts = ap.parse_args()
    if opts.no_postgres and opts.require_postgres:
        ap.error("--no-postgres and --require-postgres contradict each other")
    pg_url = opts.postgres or os.environ.get("KEYWAY_BENCH_POSTGRES_URL") or DEFAULT_PG
    # Checked before anything is built, so CI fails in a second rather than after the SQLite rows.
    if opts.require_postgres and not reachable(pg_url):
        sys.exit(f"bench: no PostgreSQL server answers at {redact(pg_url)}, and --require-postgres "
                 "says the PostgreSQL rows must run")
    seconds = opts.seconds or (2 if opts.smoke else 10)
    profile = opts.profile or ("debug" if opts.smoke else "release")
    users = min(opts.users, 200) if opts.smoke else opts.users

    ensure_wrk()
    keyway_bin, ceiling_bin, seed_bin = build(profile)
    work = tempfile.mkdtemp(prefix="keyway-bench-")
    db_url = f"sqlite://{work}/keyway.db"
    results = {}

    def server(url=db_url):
        s = Keyway(keyway_bin, work, url)
        s.wait_ready()
        return s

    # The schema and the users (the seeder opens the database, which migrates it).
    seed(seed_bin, db_url, 0, users)

    # Cold start: process start to the first successful login (which includes one argon2id hash).
    s = Keyway(keyway_bin, work, db_url)
    idle_rss = None

    def first_login():
        nonlocal idle_rss
        if idle_rss is None and http("GET", s.base + "/healthz", timeout=1)[0] == 200:
            idle_rss = s.rss()[0]
        status, _ = http(
            "POST", s.base + "/api/auth/local", {"identifier": "bench_user_0", "password": PASSWORD}
        )
        return status == 200

    cold = s.wait_until(first_login, "logging in")
    after_login_rss = s.rss()[0]
    # Sessions for the token scenarios: distinct users, so caches hold many entries.
    names = [f"bench_user_{i}" for i in range(min(users, 256))]
    log(f"logging in {len(names)} users")
    grants = login_many(s, names)
    s.stop()
    tokens = Path(work) / "tokens.txt"
    tokens.write_text("\n".join(g["jwt"] for g in grants) + "\n")
    refresh_tokens = Path(work) / "refresh.txt"
    refresh_tokens.write_text("\n".join(g["refreshToken"] for g in grants) + "\n")
    user_list = Path(work) / "users.txt"
    user_list.write_text("\n".join(f"bench_user_{i}" for i in range(users)) + "\n")
    results["cold_start"] = {"ms": cold * 1000, "idle_rss_kib": idle_rss, "rss_after_login_kib": after_login_rss}

    def measured(name, path, script, connections, args=(), warm=True, url=db_url):
        srv = server(url)
        url = srv.base + path
        if warm:
            wrk(url, script, connections, 1, args, work)
        r = wrk(url, script, connections, seconds, args, work)
        r["peak_rss_kib"] = srv.rss()[1]
        r["connections"] = connections
        srv.stop()
        results[name] = r
        log(f"{name}: {r['rps']:.0f}/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms errors {r['errors']}")
        return r

    # The ceiling: same bytes, same wrk, no authentication.
    srv = server()
    me_body = Path(work) / "me.json"
    status, body = http("GET", srv.base + "/api/users/me", token=grants[0]["jwt"])
    assert status == 200, status
    me_body.write_bytes(body)
    srv.stop()
    port = free_port()
    ceiling = subprocess.Popen(
        [str(ceiling_bin), "serve", f"127.0.0.1:{port}", str(me_body)], stdout=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 10
        while True:
            try:
                if http("GET", base + "/", timeout=1)[0] == 200:
                    break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.01)
        wrk(base + "/", "bearer.lua", 64, 1, [tokens], work)
        r = wrk(base + "/", "bearer.lua", 64, seconds, [tokens], work)
        r["peak_rss_kib"] = rss_kib(ceiling.pid)[1]
        r["connections"] = 64
        results["ceiling"] = r
        log(f"ceiling: {r['rps']:.0f}/s p99 {r['p99_ms']:.2f} ms")
    finally:
        ceiling.terminate()
        ceiling.wait()

    hash_seconds = 2 if opts.smoke else 5
    out = subprocess.run(
        [str(ceiling_bin), "hash", str(hash_seconds), str(os.cpu_count() or 2)],
        capture_output=True, text=True, check=True,
    ).stdout
    results["hash_ceiling"] = json.loads(out)
    log(f"hash ceiling: {results['hash_ceiling']['per_second']:.1f}/s")

    measured("me", "/api/users/me", "bearer.lua", 64, [tokens])
    measured("verify", "/api/auth/verify", "bearer.lua", 64, [tokens])
    measured("login", "/", "login.lua", 16, [user_list, PASSWORD])
    measured("refresh", "/", "refresh.lua", 32, [refresh_tokens, 2], warm=False)

    # Isolation: /users/me while a login flood keeps every hasher slot busy.
    srv = server()
    flood_result = {}

    def flood():
        flood_result.update(wrk(srv.base + "/", "login.lua", 16, seconds + 2, [user_list, PASSWORD], work))

    flooder = threading.Thread(target=flood)
    flooder.start()
    time.sleep(1)
    r = wrk(srv.base + "/api/users/me", "bearer.lua", 64, seconds, [tokens], work)
    flooder.join()
    r["peak_rss_kib"] = srv.rss()[1]
    r["connections"] = 64
    r["flood_logins_per_s"] = flood_result["rps"]
    r["flood_errors"] = flood_result["errors"]
    r["errors"] += flood_result["errors"]
    srv.stop()
    results["me_under_login_flood"] = r
    log(f"me under flood: {r['rps']:.0f}/s p99 {r['p99_ms']:.2f} ms (logins {flood_result['rps']:.1f}/s)")

    pg_reason = "asked for by --no-postgres" if opts.no_postgres else None
    if pg_reason is None and not reachable(pg_url):
        pg_reason = f"no PostgreSQL server answers at {redact(pg_url)}"
        if opts.require_postgres:
            sys.exit(f"bench: {pg_reason}, and --require-postgres says the PostgreSQL rows must run")
    if pg_reason is None:
        # The same core scenarios on PostgreSQL, with tokens of its own.
        seed(seed_bin, pg_url, 0, users)
        pg = server(pg_url)
        pg_grants = login_many(pg, names)
        pg.stop()
        pg_tokens = Path(work) / "pg-tokens.txt"
        pg_tokens.write_text("\n".join(g["jwt"] for g in pg_grants) + "\n")
        pg_refresh = Path(work) / "pg-refresh.txt"
        pg_refresh.write_text("\n".join(g["refreshToken"] for g in pg_grants) + "\n")
        measured("pg_me", "/api/users/me", "bearer.lua", 64, [pg_tokens], url=pg_url)
        measured("pg_login", "/", "login.lua", 16, [user_list, PASSWORD], url=pg_url)
        measured("pg_refresh", "/", "refresh.lua", 32, [pg_refresh, 2], warm=False, url=pg_url)
    else:
        # Loud, and repeated in the report: a smoke run that silently loses a third of its rows
        # looks like a pass.
        results["skipped"] = {"rows": [label for key, label in LABELS if key in PG_ROWS], "reason": pg_reason}
        log("=" * 72)
        log(f"SKIPPED the PostgreSQL rows ({', '.join(PG_ROWS)}): {pg_reason}")
        log("=" * 72)

    if opts.million:
        seed(seed_bin, db_url, users, 1_000_000)
        big_users = Path(work) / "users-million.txt"
        # Logins spread over the whole table, not just the first thousand rows.
        big_users.write_text("\n".join(f"bench_user_{i}" for i in range(0, 1_000_000, 997)) + "\n")
        measured("me_1m", "/api/users/me", "bearer.lua", 64, [tokens])
        measured("login_1m", "/", "login.lua", 16, [big_users, PASSWORD])

    derive(results)
    report = render(results, opts, seconds, profile, users)
    print(report)
    if opts.out:
        opts.out.write_text(report)
    (Path(work) / "results.json").write_text(json.dumps(results, indent=2))
    failed = [k for k, v in results.items() if isinstance(v, dict) and v.get("errors")]
    if failed:
        sys.exit(f"bench: errors in {', '.join(failed)}")
    shutil.rmtree(work, ignore_errors=True)


def derive(results):
    ceiling = results["ceiling"]["rps"]
    for name in ("me", "verify", "me_1m", "pg_me"):
        if name in results:
            results[name]["ceiling_fraction"] = results[name]["rps"] / ceiling
    hashes = results["hash_ceiling"]["per_second"]
    for name in ("login", "login_1m", "pg_login"):
        if name in results:
            results[name]["hash_fraction"] = results[name]["rps"] / hashes


def verdict(name, r, smoke):
    if smoke:
        return "(smoke run: no targets)"
    marks = []
    for metric, op, target in TARGETS.get(name, []):
        value = r.get(metric)
        if value is None:
            continue
        ok = value >= target if op == ">=" else value < target
        shown = f"{target:.2f}" if isinstance(target, float) else f"{target}"
        marks.append(f"{'✅' if ok else '❌'} {metric} {op} {shown}")
    return "; ".join(marks)


def render(results, opts, seconds, profile, users):
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    h = results["hash_ceiling"]
    lines = [
        f"Keyway {profile} build, SQLite (and PostgreSQL 15 where marked, same machine), {users} users, {seconds} s per scenario, wrk on loopback "
        f"(2 threads), {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}; "
        f"argon2id m={h['m_cost_kib']} KiB t={h['t_cost']} p={h['p_cost']}.",
        "",
        "| Scenario | Conns | Requests/s | p50 ms | p99 ms | Errors | Peak RSS MB | vs ceiling | Targets |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key, label in LABELS:
        r = results.get(key)
        if not r:
            continue
        frac = ""
        if "ceiling_fraction" in r:
            frac = f"{r['ceiling_fraction']:.0%} of ceiling"
        elif "hash_fraction" in r:
            frac = f"{r['hash_fraction']:.0%} of hash ceiling"
        lines.append(
            f"| {label} | {r['connections']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['errors']} | {r['peak_rss_kib'] / 1024:.1f} | {frac} | {verdict(key, r, opts.smoke)} |"
        )
    if "skipped" in results:
        skipped = results["skipped"]
        lines += ["", f"**Skipped** ({skipped['reason']}): {'; '.join(skipped['rows'])}."]
    c = results["cold_start"]
    flood = results["me_under_login_flood"]

    def mark(ok, target):
        return "" if opts.smoke else (f"{'✅' if ok else '❌'} {target}")

    lines += [
        "",
        f"- Hash ceiling (bare argon2id loop, {os.cpu_count()} threads): {h['per_second']:.1f} hashes/s.",
        f"- Logins during the flood scenario: {flood['flood_logins_per_s']:.1f}/s.",
        f"- Cold start, process start to first successful login: {c['ms']:.0f} ms "
        f"{mark(c['ms'] < 200, '< 200 ms')}.",
        f"- Idle RSS after start: {c['idle_rss_kib'] / 1024:.1f} MB "
        f"{mark(c['idle_rss_kib'] < 20 * 1024, '< 20 MB')}; after the first login "
        f"(one 19 MiB argon2id buffer): {c['rss_after_login_kib'] / 1024:.1f} MB.",
    ]
    for small, big in (("me", "me_1m"), ("login", "login_1m")):
        if big in results:
            ratio = results[big]["rps"] / results[small]["rps"]
            ok = ratio >= 0.9
            lines.append(
                f"- {big}: {ratio:.0%} of the {users}-user figure {mark(ok, 'within 10 %')}."
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
