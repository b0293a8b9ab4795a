// Single sign-on in a real browser: the hosted sign-in page's "Continue with …" button, the provider's
// own pages, and the way back to the hosted main page. The providers are the peers in e2e/sso: the
// certified oidc-provider (idp.mjs) as provider `test`, and the GitHub stand-in as the `github` preset.
// Each test starts its peer on a free port, then Keyway on a port reserved beforehand (the peer must
// know Keyway's redirect_uri), and leaves a screenshot in e2e/screenshots/.
//
//   node --test e2e/sso.test.mjs            (scripts/test.sh runs it after `cargo test`)
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { checkPrerequisites, freePort, launchBrowser, startPeer, withKeyway } from './harness.mjs';

checkPrerequisites();

const CONCURRENCY = Number(process.env.KEYWAY_E2E_CONCURRENCY ?? 2);
const TIMEOUT_MS = 60_000;

const CLIENT = { id: 'keyway-e2e-client', secret: 'keyway-e2e-client-secret' };
const ALICE = {
  sub: 'alice-e2e-sub',
  login: 'alice',
  password: 'alice-idp-password',
  email: 'alice@example.org',
  email_verified: true,
  name: 'Alice Example',
};
const OCTO = {
  login: 'octo',
  id: 583231,
  name: 'Octo Example',
  emails: [{ email: 'octo@example.net', primary: true, verified: true, visibility: null }],
};

let browser;

/**
 * A test with a provider: reserves Keyway's port, starts the peer `script` with `args(redirectUri)`,
 * then Keyway with the provider's settings from `env(peer)`, and hands the test body the peer too.
 */
function withProvider(name, script, args, env, body) {
  return async (t) => {
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const peer = await startPeer(script, args(`${origin}/api/connect/${name}/callback`));
    try {
      const settings = { KEYWAY_PUBLIC_URL: origin, KEYWAY_SSO_PROVIDERS: name, ...env(peer) };
      await withKeyway(() => browser, (s, t2) => body(s, peer, t2), { env: settings, port })(t);
    } catch (e) {
      const log = peer.stderr().trim();
      if (log) e.message += `\n--- ${script} stderr (tail) ---\n${log}`;
      throw e;
    } finally {
      await peer.stop();
    }
  };
}

/** Keyway with idp.mjs as provider `test` ("Test IdP"), which knows ALICE; `extra` adds settings. */
const withIdp = (body, extra = {}) =>
  withProvider(
    'test',
    'idp.mjs',
    (redirectUri) => [
      '--client-id', CLIENT.id,
      '--client-secret', CLIENT.secret,
      '--redirect-uri', redirectUri,
      '--user', JSON.stringify(ALICE),
    ],
    (idp) => ({
      KEYWAY_SSO_TEST_ISSUER: idp.origin,
      KEYWAY_SSO_TEST_CLIENT_ID: CLIENT.id,
      KEYWAY_SSO_TEST_CLIENT_SECRET: CLIENT.secret,
      KEYWAY_SSO_TEST_DISPLAY_NAME: 'Test IdP',
      ...extra,
    }),
    body,
  );

/** Clicks the provider's button on the hosted sign-in page, after checking what it says and where it goes. */
async function continueWith(page, s, provider, label) {
  await page.goto(s.url('/'));
  const button = page.locator(`a.sso[data-provider=${provider}]`);
  await button.waitFor({ state: 'visible' });
  assert.equal((await button.innerText()).trim(), `Continue with ${label}`);
  const href = new URL(await button.getAttribute('href'), s.url('/'));
  assert.equal(href.pathname, `/api/connect/${provider}`);
  await button.click();
}

/** Signs in on idp.mjs's login page, which the browser must be on. */
async function signInAtIdp(page, idp, user) {
  await page.waitForURL((url) => url.origin === idp.origin && url.pathname.startsWith('/interaction/'));
  await page.locator('#login').fill(user.login);
  await page.locator('#password').fill(user.password);
  await page.locator('#submit').click();
}

/** Waits for the hosted main page's protected view and returns its profile text. */
async function expectSignedIn(page, s, email) {
  await page.waitForURL(s.url('/home'));
  await page.locator('#protected').waitFor({ state: 'visible' });
  assert.ok(await page.locator('#unauthorized').isHidden(), 'the unauthorized view is hidden');
  const profile = await page.locator('#protected dl.profile').innerText();
  assert.match(profile, new RegExp(`Email\\s+${email.replace(/[.+]/g, '\\$&')}`));
  // The session is the hosted app's usual one: an HttpOnly refresh cookie, nothing in storage.
  const refresh = (await page.context().cookies()).find((c) => c.name === 'strapi_up_refresh');
  assert.ok(refresh?.httpOnly, 'an HttpOnly refresh cookie');
  assert.deepEqual(await page.evaluate(() => [localStorage.length, sessionStorage.length]), [0, 0]);
  return profile;
}

describe('single sign-on in the hosted app', { concurrency: CONCURRENCY, timeout: 5 * 60_000 }, () => {
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  test('Continue with Test IdP signs in at the IdP and lands on the main page', { timeout: TIMEOUT_MS }, withIdp(async (s, idp) => {
    const page = await s.newPage();
    await continueWith(page, s, 'test', 'Test IdP');
    await signInAtIdp(page, idp, ALICE);
    await expectSignedIn(page, s, ALICE.email);

    // A reload keeps the session, as after a password login.
    await page.reload();
    await expectSignedIn(page, s, ALICE.email);
  }));

  test('a refused SSO sign-in shows the reason and a way back to sign-in', { timeout: TIMEOUT_MS }, withIdp(async (s, idp) => {
    const page = await s.newPage();
    await continueWith(page, s, 'test', 'Test IdP');
    await signInAtIdp(page, idp, ALICE);

    await page.waitForURL((url) => url.href.startsWith(s.url('/connect/test/redirect')));
    const alert = page.locator('#alert');
    await alert.waitFor({ state: 'visible' });
    assert.match(await alert.innerText(), /Register action is actually not available\./);
    assert.deepEqual(
      (await page.context().cookies()).filter((c) => c.name === 'strapi_up_refresh'),
      [],
      'no session',
    );
    await page.getByRole('link', { name: /sign[ -]?in/i }).click();
    await page.waitForURL(s.url('/'));
    await page.locator('#login-form').waitFor({ state: 'visible' });
  }, { KEYWAY_ALLOW_REGISTER: 'false' }));

  test('Continue with GitHub authorizes at GitHub and lands on the main page', { timeout: TIMEOUT_MS }, withProvider(
    'github',
    'github-standin.mjs',
    (redirectUri) => [
      '--client-id', CLIENT.id,
      '--client-secret', CLIENT.secret,
      '--redirect-uri', redirectUri,
      '--user', JSON.stringify(OCTO),
    ],
    (github) => ({
      KEYWAY_SSO_GITHUB_CLIENT_ID: CLIENT.id,
      KEYWAY_SSO_GITHUB_CLIENT_SECRET: CLIENT.secret,
      KEYWAY_SSO_GITHUB_AUTH_URL: `${github.origin}/login/oauth/authorize`,
      KEYWAY_SSO_GITHUB_TOKEN_URL: `${github.origin}/login/oauth/access_token`,
      KEYWAY_SSO_GITHUB_API_URL: github.origin,
    }),
    async (s, github) => {
      const page = await s.newPage();
      await continueWith(page, s, 'github', 'GitHub');
      await page.waitForURL((url) => url.origin === github.origin && url.pathname === '/login/oauth/authorize');
      await page.locator('#authorize').click();
      await expectSignedIn(page, s, OCTO.emails[0].email);
    },
  ));
});
