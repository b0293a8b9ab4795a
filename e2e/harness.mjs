// The harness of the browser suite: a Keyway server per test (its own temporary working directory,
// so its SQLite `keyway.db` is fresh), one headless Chromium per test file, a fresh browser context per
// test, and a screenshot of every test's page in e2e/screenshots/<test-name>.png, pass or fail.
//
// Needs the debug binary (`cargo test` or `cargo build` makes it) and Debian's Chromium at
// /usr/bin/chromium (scripts/test.sh installs it).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
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
 * Starts `keyway serve --demo --bind 127.0.0.1:0` in a fresh temporary directory and resolves once it
 * printed where it listens. `env` adds settings (KEYWAY_* from the caller's environment are dropped, so
 * the developer's own configuration never leaks in).
 */
export async function startKeyway(env = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'keyway-e2e-'));
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('KEYWAY_')),
  );
  const child = spawn(KEYWAY_BIN, ['serve', '--demo', '--bind', '127.0.0.1:0'], {
    cwd: dir,
    env: {
      ...base,
      KEYWAY_ARGON2_MEMORY_KIB: '1024',
      KEYWAY_ARGON2_ITERATIONS: '1',
      KEYWAY_LOG: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  exited.then(() => running.delete(child));

  // Keep the tail of stderr for the error message if the server does not come up.
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-8000);
  });

  const lines = createInterface({ input: child.stdout });
  let timer;
  try {
    const origin = await Promise.race([
      new Promise((done, fail) => {
        lines.once('line', (line) => {
          const m = LISTENING.exec(line);
          if (m) done(m[1]);
          else fail(new Error(`unexpected first line from keyway serve: ${JSON.stringify(line)}`));
        });
      }),
      exited.then(({ code, signal }) => {
        throw new Error(`keyway serve exited (code ${code}, signal ${signal}) before listening:\n${stderr}`);
      }),
      new Promise((_, fail) => {
        timer = setTimeout(
          () => fail(new Error(`keyway serve did not print where it listens within ${STARTUP_TIMEOUT_MS} ms:\n${stderr}`)),
          STARTUP_TIMEOUT_MS,
        );
      }),
    ]);
    // Drain the rest of stdout so the pipe never fills.
    lines.on('line', () => {});
    return {
      origin,
      dir,
      stderr: () => stderr,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(killer);
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
    throw e;
  } finally {
    clearTimeout(timer);
  }
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
 * Wraps a test body: starts a server (with `env`), hands over a Session, and always photographs the
 * page, closes the contexts and stops the server.
 */
export function withKeyway(getBrowser, body, { env } = {}) {
  return async (t) => {
    const server = await startKeyway(env);
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
