#!/usr/bin/env node
// A real OpenID Connect provider for Keyway's SSO tests: panva's certified `oidc-provider`, with one
// confidential client and fixed test users, on 127.0.0.1 over plain http. The only parts written here
// are the login page (/interaction/:uid, stable ids #login, #password, #submit, #cancel for Playwright and
// the HTTP tests) and automatic consent, so a sign-in is one form and nothing else.
//
//   node e2e/sso/idp.mjs --port 0 --client-id keyway --client-secret s3cret \
//     --redirect-uri http://127.0.0.1:8080/api/connect/test/callback \
//     --user '{"sub":"alice-sub","login":"alice","password":"alice-idp-pw","email":"alice@idp.test"}'
//
// Prints `IdP listening on http://127.0.0.1:PORT` (also the issuer) once ready, nothing else on stdout.
// Every option has an environment fallback (see `--help`); users are JSON objects with `sub`, `login`
// (or `username`), `password`, `email`, `email_verified` (default true) and `name`. The client is
// registered with one token endpoint authentication method, `client_secret_basic` unless
// `--token-auth-method client_secret_post`, and discovery advertises only that one. PKCE (S256) is
// required. The id_token carries email, email_verified, preferred_username (= login) and name.
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import {
  announce,
  clientOptions,
  escapeHtml,
  listen,
  page,
  quietStdout,
  readParams,
  send,
  settings,
} from './common.mjs';

quietStdout();

const config = settings({
  ...clientOptions('IDP', {
    clientId: 'keyway',
    clientSecret: 'keyway-idp-secret',
    redirectUri: 'http://127.0.0.1:8080/api/connect/test/callback',
  }),
  'token-auth-method': {
    env: 'IDP_TOKEN_AUTH_METHOD',
    default: 'client_secret_basic',
    help: 'client_secret_basic or client_secret_post',
  },
  user: {
    env: 'IDP_USERS',
    multiple: true,
    json: true,
    default: [
      {
        sub: 'alice-sub',
        login: 'alice',
        password: 'alice-idp-pw',
        email: 'alice@idp.test',
        email_verified: true,
        name: 'Alice Idp',
      },
    ],
    help: 'a test user as JSON (env IDP_USERS: a JSON array)',
  },
});

const users = config.user.map((u) => ({
  sub: String(u.sub),
  login: u.login ?? u.username,
  password: u.password,
  email: u.email,
  email_verified: u.email_verified ?? true,
  name: u.name ?? u.login ?? u.username,
}));
for (const u of users) {
  if (!u.sub || !u.login || !u.password) throw new Error(`a user needs sub, login and password: ${JSON.stringify(u)}`);
}
if (!['client_secret_basic', 'client_secret_post'].includes(config['token-auth-method'])) {
  throw new Error(`--token-auth-method ${config['token-auth-method']}: use client_secret_basic or client_secret_post`);
}

const SCOPES = 'openid email profile';

async function signingKeys() {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { keys: [{ ...jwk, kid: `idp-${randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' }] };
}

// The issuer names the port, so the socket is bound before the provider exists.
let callback;
const { origin } = await listen(config.port, (req, res) => route(req, res));

const provider = new Provider(origin, {
  clients: [
    {
      client_id: config['client-id'],
      client_secret: config['client-secret'],
      redirect_uris: config['redirect-uri'],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: config['token-auth-method'],
    },
  ],
  clientAuthMethods: [config['token-auth-method']],
  responseTypes: ['code'],
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  // Scope claims go into the id_token too, not only userinfo: what most relying parties read.
  conformIdTokenClaims: false,
  jwks: await signingKeys(),
  // Fresh per run: cookies only have to outlive one test.
  cookies: { keys: [randomBytes(32).toString('hex')] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  // First-party client: consent is implied, so the grant is made here instead of on a consent page.
  async loadExistingGrant(ctx) {
    const { client, session } = ctx.oidc;
    const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    if (!session.accountId) return undefined;
    const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope(SCOPES);
    await grant.save();
    return grant;
  },
  async findAccount(_ctx, id) {
    const user = users.find((u) => u.sub === id);
    if (!user) return undefined;
    return {
      accountId: user.sub,
      async claims() {
        return {
          sub: user.sub,
          email: user.email,
          email_verified: user.email_verified,
          preferred_username: user.login,
          name: user.name,
        };
      },
    };
  },
});
provider.on('server_error', (_ctx, e) => console.error('oidc-provider server_error:', e));
callback = provider.callback();

const INTERACTION = /^\/interaction\/([\w-]+)(?:\/(login|abort))?$/;

async function route(req, res) {
  const { pathname } = new URL(req.url, origin);
  const m = INTERACTION.exec(pathname);
  if (!m) return callback(req, res);
  const [, uid, action] = m;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (e) {
    // No interaction cookie, or an expired interaction: the browser has to start over at the client.
    return send(res, 400, page('Sign-in expired', `<p id="error" role="alert">${escapeHtml(e.message)}</p>`));
  }
  if (details.uid !== uid) return send(res, 400, page('Sign-in expired', '<p id="error" role="alert">wrong interaction</p>'));

  if (req.method === 'GET' && !action) {
    if (details.prompt.name === 'login') return send(res, 200, loginPage(uid, details.params));
    // A consent prompt (a client asking for prompt=consent): granted at once, as loadExistingGrant does.
    const grant = new provider.Grant({ clientId: details.params.client_id, accountId: details.session.accountId });
    grant.addOIDCScope(SCOPES);
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  if (req.method === 'POST' && action === 'abort') {
    const result = { error: 'access_denied', error_description: 'End-User aborted interaction' };
    return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'login') {
    const { login = '', password = '' } = await readParams(req);
    const user = users.find((u) => u.login === login && u.password === password);
    if (!user) return send(res, 200, loginPage(uid, details.params, login, 'Invalid login or password.'));
    return provider.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
  }
  return send(res, 405, page('Method not allowed', ''));
}

function loginPage(uid, params, login = '', error = null) {
  const alert = error ? `<p id="error" role="alert">${escapeHtml(error)}</p>\n` : '';
  return page(
    'Sign in to the Test IdP',
    `<p>Client <code id="client">${escapeHtml(params.client_id)}</code> asks you to sign in.</p>
${alert}<form id="login-form" method="post" action="/interaction/${escapeHtml(uid)}/login">
<p><label for="login">Username</label> <input id="login" name="login" autocomplete="username" required autofocus value="${escapeHtml(login)}"></p>
<p><label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button id="submit" type="submit">Sign in</button>
<button id="cancel" type="submit" formaction="/interaction/${escapeHtml(uid)}/abort" formnovalidate>Cancel</button></p>
</form>`,
  );
}

announce('IdP', origin);
