// The hosted login app, end to end in a real browser: what a user sees on the login page, the main
// page and around them. Each test starts its own `keyway serve --demo` on a free port with a fresh
// database and uses a fresh browser context; every test leaves a screenshot in e2e/screenshots/.
//
//   node --test e2e/            (scripts/test.sh runs it after `cargo test`)
//
// KEYWAY_E2E_CONCURRENCY sets how many tests run at once (default 2).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DEMO, checkPrerequisites, launchBrowser, withKeyway } from './harness.mjs';

// A missing binary or browser fails the file at once, with what to do about it.
checkPrerequisites();

const CONCURRENCY = Number(process.env.KEYWAY_E2E_CONCURRENCY ?? 2);
const TIMEOUT_MS = 60_000;

let browser;
const e2e = (body, options) => withKeyway(() => browser, body, options);

/** Fills the login form like a user and submits it with the button. */
async function signIn(page, identifier, password) {
  await page.getByLabel('Username or email').fill(identifier);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Waits for the main page to settle on its protected view and returns it. */
async function expectAuthorized(page, username) {
  const view = page.locator('#protected');
  await view.waitFor({ state: 'visible' });
  assert.equal(await page.getByRole('heading', { level: 1 }).innerText(), `Hello, ${username}`);
  assert.ok(await page.locator('#unauthorized').isHidden(), 'the unauthorized view is hidden');
  assert.ok(await page.getByText('Checking your session…').isHidden(), 'the session check is over');
  return view;
}

/** Waits for the main page to settle on its unauthorized view and returns it. */
async function expectUnauthorized(page) {
  const view = page.locator('#unauthorized');
  await view.waitFor({ state: 'visible' });
  assert.ok(await page.getByRole('heading', { name: 'You must log in' }).isVisible());
  assert.ok(await page.locator('#protected').isHidden(), 'the protected view is hidden');
  assert.ok(
    !(await page.getByText(DEMO.email).isVisible()),
    "the user's details are not on screen",
  );
  return view;
}

/** Waits until the login form is on screen at `url`. */
async function expectLoginPage(page, url) {
  await page.waitForURL(url);
  await page.locator('#login-form').waitFor({ state: 'visible' });
  assert.ok(await page.getByRole('heading', { name: 'Sign in' }).isVisible());
}

/** The `jwt` of every successful `/api/auth/refresh` the page receives, latest last. */
function captureAccessTokens(page) {
  const tokens = [];
  page.on('response', (response) => {
    if (new URL(response.url()).pathname === '/api/auth/refresh' && response.ok()) {
      // Read the body at once: it is gone after the next navigation.
      tokens.push(response.json().then((body) => body.jwt, () => null));
    }
  });
  return { latest: async () => (await Promise.all(tokens)).filter(Boolean).at(-1) ?? null };
}

/**
 * An app shaped like the README's Appsmith set-up, served by the test itself at Keyway's own origin
 * (Playwright answers `/appsmith-app` from `page.route`; Keyway never sees that request, and a page of
 * the test's own needs no CORS). Its queries are the README's: `login_api` (POST /api/auth/local, JSON),
 * `SecureQuery` (GET /api/users/me with the Bearer) and, unless `?logout=store-only`, `logout_api`
 * (POST /api/auth/logout with the Bearer) before the store is cleared. The store is localStorage, as
 * Appsmith's `storeValue` persists it. `store-only` is the README's old "Log out", kept as a control.
 */
const APPSMITH_APP = `<!doctype html>
<meta charset="utf-8"><title>Appsmith-shaped app</title>
<section id="login"><label>Username <input id="inp_username"></label>
  <label>Password <input id="inp_password" type="password"></label>
  <button id="login_button">Log in</button></section>
<section id="main" hidden><h1 id="hello"></h1><button id="logout_button">Log out</button></section>
<p id="login_alert" role="alert"></p>
<script>
  const logoutCallsKeyway = new URLSearchParams(location.search).get('logout') !== 'store-only';
  const store = {
    get: (key) => localStorage.getItem(key),
    set: (key, value) => (value === undefined ? localStorage.removeItem(key) : localStorage.setItem(key, value)),
  };
  const json = { 'Content-Type': 'application/json' };
  const bearer = () => ({ Authorization: 'Bearer ' + store.get('jwt') });
  const show = (view) => {
    document.querySelector('#login').hidden = view !== 'login';
    document.querySelector('#main').hidden = view !== 'main';
  };
  async function login_api() {
    const body = { identifier: inp_username.value, password: inp_password.value };
    const r = await fetch('/api/auth/local', { method: 'POST', headers: json, body: JSON.stringify(body) });
    if (!r.ok) throw new Error('Login failed!');
    const data = await r.json();
    store.set('jwt', data.jwt);
    store.set('refreshToken', data.refreshToken);
  }
  async function SecureQuery() {
    const r = await fetch('/api/users/me', { headers: bearer() });
    if (!r.ok) return show('login');
    document.querySelector('#hello').textContent = 'Hello, ' + (await r.json()).username;
    show('main');
  }
  async function logout_api() {
    await fetch('/api/auth/logout', { method: 'POST', headers: bearer() });
  }
  login_button.onclick = () => login_api().then(SecureQuery, (e) => (login_alert.textContent = e.message));
  logout_button.onclick = async () => {
    // Whatever Keyway answers (an expired token gets 401), the store is cleared.
    if (logoutCallsKeyway) await logout_api().catch(() => {});
    store.set('jwt', undefined);
    store.set('refreshToken', undefined);
    show('login');
  };
  store.get('jwt') ? SecureQuery() : show('login');
</script>`;

/** Opens the Appsmith-shaped app (`logout`: `keyway` or `store-only`), logs in, and returns its tokens. */
async function appsmithLogin(s, logout) {
  const page = await s.newPage();
  await page.route(s.url('/appsmith-app*'), (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: APPSMITH_APP }),
  );
  await page.goto(s.url(`/appsmith-app?logout=${logout}`));
  await page.getByLabel('Username').fill(DEMO.username);
  await page.getByLabel('Password').fill(DEMO.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: `Hello, ${DEMO.username}` }).waitFor();
  const tokens = await page.evaluate(() => ({
    jwt: localStorage.getItem('jwt'),
    refreshToken: localStorage.getItem('refreshToken'),
  }));
  assert.ok(tokens.jwt && tokens.refreshToken, 'login_api stored both tokens');
  const me = () => fetch(s.url('/api/users/me'), { headers: { Authorization: `Bearer ${tokens.jwt}` } });
  const refresh = () =>
    fetch(s.url('/api/auth/refresh'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken: tokens.refreshToken }),
    });
  return { page, me, refresh };
}

/** Clicks the app's Log out and waits until its store is empty and the login form is back. */
async function appsmithLogout(page) {
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Log in' }).waitFor({ state: 'visible' });
  assert.deepEqual(await page.evaluate(() => Object.keys(localStorage)), [], 'the store is cleared');
}

/** Console errors, uncaught exceptions and CSP violations a page reports. */
async function collectErrors(page) {
  const errors = [];
  page.on('console', (message) => {
    // Chromium asks every origin for /favicon.ico on its own and logs the 404; the app never does.
    if (message.type() !== 'error' || message.location().url.endsWith('/favicon.ico')) return;
    errors.push(`console: ${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`);
    });
  });
  return errors;
}

/** Relative luminance of a computed colour: `rgb(r, g, b)` or, from color-mix(), `color(srgb r g b)`. */
function luminance(color) {
  const rgb = /^rgba?\(([\d.]+), ([\d.]+), ([\d.]+)/.exec(color);
  const srgb = /^color\(srgb ([\d.]+) ([\d.]+) ([\d.]+)/.exec(color);
  assert.ok(rgb || srgb, `a colour: ${color}`);
  const channels = rgb ? rgb.slice(1, 4).map((c) => Number(c) / 255) : srgb.slice(1, 4).map(Number);
  const [r, g, b] = channels.map((s) => (s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function contrast(a, b) {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

describe('hosted login app', { concurrency: CONCURRENCY, timeout: 5 * 60_000 }, () => {
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  test('wrong password shows Login failed and stays on the login page', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const page = await s.newPage();
    await page.goto(s.url('/'));
    let navigations = 0;
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) navigations += 1;
    });

    await signIn(page, DEMO.username, 'not-the-password');

    const alert = page.getByRole('alert');
    await alert.waitFor({ state: 'visible' });
    assert.equal((await alert.innerText()).trim(), 'Login failed!');
    assert.equal(page.url(), s.url('/'));
    assert.equal(navigations, 0, 'the page did not navigate');
    assert.ok(await page.locator('#login-form').isVisible(), 'the form is still there');
    assert.ok(await page.getByRole('button', { name: 'Sign in' }).isEnabled(), 'the form can be sent again');
    assert.equal(await page.getByLabel('Username or email').inputValue(), DEMO.username);
    assert.equal(
      (await page.context().cookies()).length,
      0,
      'no session cookie after a failed login',
    );
  }));

  test('right password lands on the main page with the user details', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const page = await s.newPage();
    await page.goto(s.url('/'));
    await signIn(page, DEMO.username, DEMO.password);

    await page.waitForURL(s.url('/home'));
    const view = await expectAuthorized(page, DEMO.username);
    const details = await view.locator('dl.profile').innerText();
    assert.match(details, new RegExp(`Username\\s+${DEMO.username}`));
    assert.match(details, new RegExp(`Email\\s+${DEMO.email}`));
    assert.match(details, new RegExp(`Role\\s+${DEMO.role}`));
    // The session list arrives after the profile.
    await page.getByText('This device').waitFor({ state: 'visible' });

    // One view at a time, chosen by the secured query alone: nothing on screen switches views.
    const switches = page.locator(
      '[role=tab], [role=tablist], [role=switch], input[type=checkbox], input[type=radio], select, summary',
    );
    for (const el of await switches.all()) {
      assert.ok(!(await el.isVisible()), `no visible view switch: ${await el.evaluate((e) => e.outerHTML)}`);
    }
    const buttons = [];
    for (const el of await page.locator('button, a.button, [role=button]').all()) {
      if (await el.isVisible()) buttons.push((await el.innerText()).trim());
    }
    assert.deepEqual(buttons, ['Log out']);
  }));

  test('main page without a login shows the unauthorized view', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const page = await s.newPage();
    await page.goto(s.url('/home'));
    await expectUnauthorized(page);

    await page.getByRole('link', { name: 'Log in' }).click();
    await expectLoginPage(page, s.url('/'));
  }));

  test('log out returns to the login page and revokes the access token', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const page = await s.newPage();
    const tokens = captureAccessTokens(page);
    await page.goto(s.url('/'));
    await signIn(page, DEMO.username, DEMO.password);
    await page.waitForURL(s.url('/home'));
    await expectAuthorized(page, DEMO.username);

    const jwt = await tokens.latest();
    assert.ok(jwt, 'the main page got an access token from /api/auth/refresh');
    const me = () => fetch(s.url('/api/users/me'), { headers: { Authorization: `Bearer ${jwt}` } });
    assert.equal((await me()).status, 200, 'the token works before logging out');

    await page.getByRole('button', { name: 'Log out' }).click();
    await expectLoginPage(page, s.url('/'));
    const cookies = await page.context().cookies();
    assert.deepEqual(cookies.map((c) => c.name), [], 'the refresh cookie is gone');

    await page.goto(s.url('/home'));
    await expectUnauthorized(page);
    assert.equal((await me()).status, 401, 'the old access token is refused');
  }));

  // Appsmith runs its queries on its server, so the app holds a Bearer token, not a cookie: clearing
  // its store forgets the token, but whoever copied it (a shared machine, a leaked log) keeps a session
  // that lives 30 days. The README's Log out therefore calls logout_api first.
  test('an Appsmith-shaped app logs out through Keyway and the old token gets 401', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const { page, me, refresh } = await appsmithLogin(s, 'keyway');
    assert.equal((await me()).status, 200, 'the token works before logging out');

    await appsmithLogout(page);
    assert.equal((await me()).status, 401, 'the old access token is refused after logout_api');
    assert.equal((await refresh()).status, 401, 'the refresh token of the ended session is refused');
  }));

  // The control of the test above: without logout_api (the README's old Log out), the same assertions
  // would see 200, so they measure the logout call and nothing else.
  test('an Appsmith log out that only clears the store leaves the token working', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const { page, me } = await appsmithLogin(s, 'store-only');
    await appsmithLogout(page);
    assert.equal((await me()).status, 200, 'clearing the store alone does not end the session');
  }));

  test('reload keeps the session through the HttpOnly cookie only', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const page = await s.newPage();
    await page.goto(s.url('/'));
    await signIn(page, DEMO.username, DEMO.password);
    await page.waitForURL(s.url('/home'));
    await expectAuthorized(page, DEMO.username);

    await page.reload();
    await expectAuthorized(page, DEMO.username);
    assert.equal(page.url(), s.url('/home'));

    const [cookie, ...others] = await page.context().cookies();
    assert.equal(others.length, 0, 'one cookie');
    assert.equal(cookie.name, 'strapi_up_refresh');
    assert.equal(cookie.httpOnly, true, 'the refresh cookie is HttpOnly');
    const visible = await page.evaluate(() => ({
      cookie: document.cookie,
      local: Object.keys(localStorage),
      session: Object.keys(sessionStorage),
    }));
    assert.ok(!visible.cookie.includes(cookie.name), 'document.cookie has no refresh cookie');
    assert.ok(!visible.cookie.includes(cookie.value), 'document.cookie has no refresh token');
    assert.deepEqual(visible.local, [], 'localStorage is empty');
    assert.deepEqual(visible.session, [], 'sessionStorage is empty');
  }));

  test('a session signed out from another device is unauthorized on its next load', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const a = await s.newPage();
    await a.goto(s.url('/'));
    await signIn(a, DEMO.username, DEMO.password);
    await a.waitForURL(s.url('/home'));
    await expectAuthorized(a, DEMO.username);

    const b = await s.newPage();
    await b.goto(s.url('/'));
    await signIn(b, DEMO.username, DEMO.password);
    await b.waitForURL(s.url('/home'));
    await expectAuthorized(b, DEMO.username);
    const sessions = b.locator('#sessions > li');
    await sessions.nth(1).waitFor();
    assert.equal(await sessions.count(), 2, 'both sessions are listed');
    const other = b.getByRole('button', { name: /^Sign out / });
    assert.equal(await other.count(), 1, 'only the other session can be signed out from here');
    assert.equal((await other.innerText()).trim(), 'Sign out this device');
    await other.click();
    await other.waitFor({ state: 'detached' });
    assert.equal(await sessions.count(), 1);

    await a.reload();
    await expectUnauthorized(a);
    await b.reload();
    await expectAuthorized(b, DEMO.username);
  }));

  test('keyboard alone fills and submits the login form', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const page = await s.newPage();
    let release;
    const held = new Promise((done) => {
      release = done;
    });
    let requests = 0;
    let sentinelArrived;
    const sentinel = new Promise((done) => {
      sentinelArrived = done;
    });
    await page.route('**/api/auth/local', async (route) => {
      // The test's own marker request, answered here: it never reaches Keyway.
      if (route.request().headers()['x-e2e-sentinel']) {
        sentinelArrived();
        await route.fulfill({ status: 204 });
        return;
      }
      requests += 1;
      await held;
      await route.continue();
    });
    await page.goto(s.url('/'));
    const focused = () => page.evaluate(() => document.activeElement?.getAttribute('name') ?? document.activeElement?.tagName);

    // The first field takes the focus on load (autofocus), so typing can start at once.
    await page.waitForFunction(() => document.activeElement?.getAttribute('name') === 'identifier');
    await page.keyboard.type(DEMO.username);
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'password', 'Tab goes to the password');
    await page.keyboard.type(DEMO.password);
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'BUTTON', 'then to the submit button');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Enter');

    const button = page.getByRole('button', { name: 'Sign in' });
    await page.waitForFunction(() => document.querySelector('#login-form button[type=submit]').disabled);
    assert.ok(await button.isDisabled(), 'the button is disabled while the request is in flight');
    assert.equal(await page.locator('#login-form').getAttribute('aria-busy'), 'true');
    await page.keyboard.press('Enter');
    // Proof of absence without a sleep: a marker request from the page after the second Enter,
    // through the same route. The submit handler sends at once, so a second submission would have
    // been routed before the marker arrives.
    await page.evaluate(() => {
      fetch('/api/auth/local', { method: 'POST', headers: { 'x-e2e-sentinel': '1' } });
    });
    await sentinel;
    assert.equal(requests, 1, 'a second Enter does not send the form twice');

    release();
    await page.waitForURL(s.url('/home'));
    await expectAuthorized(page, DEMO.username);
  }));

  test('register creates an account and lands on the main page', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const page = await s.newPage();
    await page.goto(s.url('/'));
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.waitForURL(s.url('/register'));

    const username = `e2e_${Date.now().toString(36)}`;
    const email = `${username}@example.com`;
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill('a-new-password');
    await page.getByRole('button', { name: 'Create account' }).click();

    await page.waitForURL(s.url('/home'));
    const view = await expectAuthorized(page, username);
    assert.match(await view.locator('dl.profile').innerText(), new RegExp(`Email\\s+${email}`));
    const cookies = await page.context().cookies();
    assert.deepEqual(cookies.map((c) => [c.name, c.httpOnly]), [['strapi_up_refresh', true]]);
    assert.deepEqual(await page.evaluate(() => [localStorage.length, sessionStorage.length]), [0, 0]);
  }));

  test('forgot password confirms after any address', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const page = await s.newPage();
    await page.goto(s.url('/'));
    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await page.waitForURL(s.url('/forgot-password'));

    await page.getByLabel('Email').fill('nobody-registered@example.com');
    await page.getByRole('button', { name: 'Send the link' }).click();

    const done = page.getByRole('status');
    await done.waitFor({ state: 'visible' });
    assert.match(await done.innerText(), /If an account uses that address, a reset link is on its way/);
    assert.ok(await page.locator('#forgot-form').isHidden(), 'the form is gone');
    assert.ok(await page.getByRole('alert').isHidden(), 'no error');
  }));

  test('phone viewport fits the pages without horizontal scrolling', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const page = await s.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const fits = () =>
      page.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        innerWidth: window.innerWidth,
      }));

    await page.goto(s.url('/'));
    const login = await fits();
    assert.equal(login.innerWidth, 390);
    assert.ok(login.scrollWidth <= login.innerWidth, `login page: ${JSON.stringify(login)}`);
    const form = await page.locator('#login-form').boundingBox();
    assert.ok(form.x >= 0 && form.x + form.width <= 390, `the form is inside the screen: ${JSON.stringify(form)}`);

    await signIn(page, DEMO.username, DEMO.password);
    await page.waitForURL(s.url('/home'));
    await expectAuthorized(page, DEMO.username);
    await page.locator('#sessions > li').first().waitFor();
    const home = await fits();
    assert.ok(home.scrollWidth <= home.innerWidth, `main page: ${JSON.stringify(home)}`);
  }));

  test('dark colour scheme gives a dark page', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const background = (page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const light = await s.newPage({ colorScheme: 'light' });
    await light.goto(s.url('/'));
    const dark = await s.newPage({ colorScheme: 'dark' });
    s.shot = dark;
    await dark.goto(s.url('/'));

    const [lightBg, darkBg] = [await background(light), await background(dark)];
    assert.ok(luminance(darkBg) < 0.05, `dark background: ${darkBg}`);
    assert.ok(luminance(lightBg) > 0.5, `light background: ${lightBg}`);
    const text = await dark.evaluate(() => getComputedStyle(document.body).color);
    assert.ok(luminance(text) > 0.5, `light text on the dark page: ${text}`);

    // Links stay readable on the dark card (WCAG AA: 4.5:1 for body text).
    const links = await dark.evaluate(() => {
      const card = getComputedStyle(document.querySelector('main.card')).backgroundColor;
      return [...document.querySelectorAll('a')]
        .filter((a) => a.checkVisibility())
        .map((a) => ({ text: a.textContent, color: getComputedStyle(a).color, card }));
    });
    assert.ok(links.length >= 2, 'the login page has its links');
    for (const { text, color, card } of links) {
      const ratio = contrast(color, card);
      assert.ok(ratio >= 4.5, `"${text}" (${color} on ${card}) has contrast ${ratio.toFixed(2)}:1`);
    }
  }));

  test('strict CSP and no console errors on the happy path', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const page = await s.newPage();
    const errors = await collectErrors(page);

    const checkCsp = (response, what) => {
      assert.equal(response.status(), 200, what);
      const csp = response.headers()['content-security-policy'];
      assert.ok(csp, `${what} has a Content-Security-Policy`);
      const directives = Object.fromEntries(
        csp.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name, values]),
      );
      assert.deepEqual(directives['script-src'], ["'self'"], `${what}: ${csp}`);
      assert.ok(!csp.includes("'unsafe-inline'"), `${what} allows no inline code: ${csp}`);
      assert.ok(!csp.includes("'unsafe-eval'"), `${what} allows no eval: ${csp}`);
    };

    checkCsp(await page.goto(s.url('/')), 'the login page');
    await signIn(page, DEMO.username, DEMO.password);
    await page.waitForURL(s.url('/home'));
    await expectAuthorized(page, DEMO.username);
    await page.locator('#sessions > li').first().waitFor();
    checkCsp(await page.goto(s.url('/home')), 'the main page');
    await expectAuthorized(page, DEMO.username);
    await page.locator('#sessions > li').first().waitFor();

    assert.deepEqual(errors, []);
  }));

  test('app name, accent colour and base path are configurable', { timeout: TIMEOUT_MS }, e2e(async (s) => {
    const page = await s.newPage();
    const response = await page.goto(s.url('/auth/'));
    assert.equal(response.status(), 200, 'the login page is at /auth/');
    await page.locator('#login-form').waitFor();
    assert.equal((await page.locator('header.brand').innerText()).trim(), 'Acme Portal');
    assert.match(await page.title(), /Acme Portal/);

    const submit = page.getByRole('button', { name: 'Sign in' });
    assert.equal(await submit.evaluate((b) => getComputedStyle(b).backgroundColor), 'rgb(217, 70, 239)');

    await signIn(page, DEMO.username, DEMO.password);
    await page.waitForURL(s.url('/auth/home'));
    await expectAuthorized(page, DEMO.username);
    assert.equal((await page.locator('header.brand').innerText()).trim(), 'Acme Portal');

    await page.getByRole('button', { name: 'Log out' }).click();
    await expectLoginPage(page, s.url('/auth/'));
  }, { env: { KEYWAY_APP_NAME: 'Acme Portal', KEYWAY_ACCENT_COLOR: '#d946ef', KEYWAY_BASE_PATH: '/auth' } }));
});
