// The harness of the browser suite: a Keyway server per test (its own temporary working directory,
// so its SQLite `keyway.db` is fresh), the sign-in peers of e2e/sso for tests that need a provider, one
// headless Chromium per test file, a fresh browser context per test, and a screenshot of every test's
// page in e2e/screenshots/<test-name>.png, pass or fail.
//
// Needs the debug binary (`cargo test` or `cargo build` makes it) and Debian's Chromium at
// /usr/bin/chromium (scripts/test.sh installs it).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const E2E = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(E2E, '..');
export const SCREENSHOTS = join(E2E, 'screenshots');
export const KEYWAY_BIN = join(
  process.env.CARGO_TARGET_DIR ? resolve(ROOT, process.env.CARGO_TARGET_DIR) : join(ROOT, 'target'),
  'debug',
  'keyway',
);
export const CHROMIUM = '/usr/bin/chromium';

export const DEMO = {
  username: 'appsmith_user',
  password: 'appsmith_password',
  email: 'appsmith_user@example.com',
  role: 'Authenticated',
};

const STARTUP_TIMEOUT_MS = 15_000;
const LISTENING = /^Keyway listening on (http:\/\/127\.0\.0\.1:(\d+)) \(database /;

/** Fails with a message that says what to do when the binary or the browser is missing. */
export function checkPrerequisites() {
  if (!existsSync(KEYWAY_BIN)) {
    throw new Error(
      `the Keyway binary ${KEYWAY_BIN} is missing: build it first (\`cargo build\`; scripts/test.sh runs \`cargo test\`, which builds it)`,
    );
  }
  // Run by hand after editing the pages, the suite would test the old ones: they are compiled in.
  const built = statSync(KEYWAY_BIN).mtimeMs;
  const web = join(ROOT, 'web');
  const newer = readdirSync(web).filter((f) => statSync(join(web, f)).mtimeMs > built);
  if (newer.length) {
    process.emitWarning(
      `${KEYWAY_BIN} is older than web/${newer[0]}: the pages are compiled in, run \`cargo build\` to test the current ones`,
    );
  }
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM}: install Debian's chromium package (scripts/test.sh does: apt-get install -y chromium)`,
    );
  }
}

const running = new Set();
// A test runner that dies mid-test must not leave servers behind.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Spawns `command` and resolves once its first stdout line matches `pattern` (else fails with its
 * stderr). Resolves with the match, the tail of stderr and `stop()`, which ends the process.
 */
async function startProcess(name, command, args, { cwd, env, pattern }) {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  exited.then(() => running.delete(child));

  // Keep the tail of stderr for the error message if the process does not come up.
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-8000);
  });

  const lines = createInterface({ input: child.stdout });
  let timer;
  try {
    const match = await Promise.race([
      new Promise((done, fail) => {
        lines.once('line', (line) => {
          const m = pattern.exec(line);
          if (m) done(m);
          else fail(new Error(`unexpected first line from ${name}: ${JSON.stringify(line)}`));
        });
      }),
      exited.then(({ code, signal }) => {
        throw new Error(`${name} exited (code ${code}, signal ${signal}) before listening:\n${stderr}`);
      }),
      new Promise((_, fail) => {
        timer = setTimeout(
          () => fail(new Error(`${name} did not print where it listens within ${STARTUP_TIMEOUT_MS} ms:\n${stderr}`)),
          STARTUP_TIMEOUT_MS,
        );
      }),
    ]);
    // Drain the rest of stdout so the pipe never fills.
    lines.on('line', () => {});
    return {
      match,
      stderr: () => stderr,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(killer);
        }
      },
    };
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts `keyway serve --demo --bind 127.0.0.1:PORT` (`port`, default 0: any free one) in a fresh
 * temporary directory and resolves once it printed where it listens. `env` adds settings (KEYWAY_*
 * from the caller's environment are dropped, so the developer's own configuration never leaks in).
 */
export async function startKeyway(env = {}, { port = 0 } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'keyway-e2e-'));
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('KEYWAY_')),
  );
  let keyway;
  try {
    keyway = await startProcess('keyway serve', KEYWAY_BIN, ['serve', '--demo', '--bind', `127.0.0.1:${port}`], {
      cwd: dir,
      env: {
        ...base,
        KEYWAY_ARGON2_MEMORY_KIB: '1024',
        KEYWAY_ARGON2_ITERATIONS: '1',
        KEYWAY_LOG: 'warn',
        ...env,
      },
      pattern: LISTENING,
    });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    origin: keyway.match[1],
    dir,
    stderr: keyway.stderr,
    async stop() {
      await keyway.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A free port on 127.0.0.1, for a server whose address another one must know before it starts. */
export function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

/**
 * Starts one of the sign-in peers in e2e/sso (`idp.mjs`, `rogue-idp.mjs`, `github-standin.mjs`) with
 * `args`, and resolves with its origin, the tail of its stderr and `stop()`.
 */
export async function startPeer(script, args = []) {
  const peer = await startProcess(script, process.execPath, [join(E2E, 'sso', script), ...args], {
    cwd: E2E,
    env: process.env,
    pattern: / listening on (http:\/\/127\.0\.0\.1:\d+)$/,
  });
  return { origin: peer.match[1], stderr: peer.stderr, stop: peer.stop };
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** `Some test name!` → `some-test-name`. */
export function slug(name) {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}

/**
 * What a test body gets: the server, a page in a fresh context, and `newContext` for more (each one
 * closed afterwards). `shot` is the page photographed at the end; a test may point it elsewhere.
 */
export class Session {
  constructor(browser, server) {
    this.browser = browser;
    this.server = server;
    this.origin = server.origin;
    this.contexts = [];
    this.shot = null;
  }

  /** A fresh context (its own cookies and storage) and a page in it. */
  async newPage(options = {}) {
    const context = await this.browser.newContext(options);
    context.setDefaultTimeout(10_000);
    context.setDefaultNavigationTimeout(10_000);
    this.contexts.push(context);
    const page = await context.newPage();
    this.shot ??= page;
    return page;
  }

  url(path) {
    return this.origin + path;
  }

  async close(name) {
    try {
      if (this.shot && !this.shot.isClosed()) {
        await mkdir(SCREENSHOTS, { recursive: true });
        await this.shot.screenshot({ path: join(SCREENSHOTS, `${slug(name)}.png`), fullPage: true });
      }
    } finally {
      await Promise.allSettled(this.contexts.map((c) => c.close()));
      await this.server.stop();
    }
  }
}

/**
 * Wraps a test body: starts a server (with `env`, on `port`), hands over a Session, and always
 * photographs the page, closes the contexts and stops the server.
 */
export function withKeyway(getBrowser, body, { env, port } = {}) {
  return async (t) => {
    const server = await startKeyway(env, { port });
    const session = new Session(getBrowser(), server);
    try {
      await body(session, t);
    } catch (e) {
      const log = server.stderr().trim();
      if (log) e.message += `\n--- keyway stderr (tail) ---\n${log}`;
      throw e;
    } finally {
      await session.close(t.name);
    }
  };
}
