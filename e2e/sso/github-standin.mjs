#!/usr/bin/env node
// A loopback stand-in for GitHub's OAuth app endpoints, which tests cannot reach: the authorization page
// (github.com/login/oauth/authorize), the token exchange (github.com/login/oauth/access_token) and the
// two REST calls a sign-in needs (api.github.com/user and /user/emails), all on one origin. It follows
// GitHub's documentation where a client can tell the difference: errors of the token endpoint are
// HTTP 200 with {error, error_description, error_uri}; the answer is form-encoded unless the client asks
// for JSON; scopes come back comma-separated; tokens work with `Bearer` and `token`; the REST API refuses
// requests without a User-Agent (403), bad tokens (401 Bad credentials) and /user/emails without the
// user:email (or user) scope (404).
//
//   node e2e/sso/github-standin.mjs --port 0 --client-id gh-client --client-secret gh-secret \
//     --redirect-uri http://127.0.0.1:8080/api/connect/github/callback \
//     --user '{"login":"octo","id":583231,"name":"Octo Cat","emails":[{"email":"octo@github.test","primary":true,"verified":true,"visibility":"public"}]}'
//
// Prints `GitHub stand-in listening on http://127.0.0.1:PORT` once ready: that origin is Keyway's
// AUTH_URL (ORIGIN/login/oauth/authorize), TOKEN_URL (ORIGIN/login/oauth/access_token) and API_URL
// (ORIGIN). The user is taken to be signed in to GitHub already: the authorization page only asks to
// authorize (button #authorize) or cancel (#cancel, which sends error=access_denied). The user's public
// `email` on /user is its first verified email with visibility "public" (or `email` if given, even null).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  announce,
  clientOptions,
  escapeHtml,
  listen,
  page,
  quietStdout,
  readParams,
  redirect,
  s256,
  send,
  settings,
  withQuery,
} from './common.mjs';

quietStdout();

const config = settings({
  ...clientOptions('GITHUB', {
    clientId: 'keyway-github',
    clientSecret: 'keyway-github-secret',
    redirectUri: 'http://127.0.0.1:8080/api/connect/github/callback',
    redirectHelp: 'accepted redirect_uri; the first is used when a request names none',
  }),
  user: {
    env: 'GITHUB_USER',
    default: JSON.stringify({
      login: 'octocat',
      id: 583231,
      name: 'The Octocat',
      emails: [{ email: 'octocat@github.test', primary: true, verified: true, visibility: 'public' }],
    }),
    help: 'the signed-in user as JSON: {login, id, name, email?, emails: [{email, primary, verified, visibility}]}',
  },
});

const user = JSON.parse(config.user);
if (!user.login || typeof user.id !== 'number') throw new Error(`the user needs a login and a numeric id: ${config.user}`);
user.emails ??= [];
const publicEmail =
  'email' in user ? user.email : (user.emails.find((e) => e.verified && e.visibility === 'public')?.email ?? null);

const DOCS = 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors';
const TOKEN_ERRORS = {
  incorrect_client_credentials: ['The client_id and/or client_secret passed are incorrect.', 'incorrect-client-credentials'],
  redirect_uri_mismatch: ['The redirect_uri MUST match the registered callback URL for this application.', 'redirect-uri-mismatch'],
  bad_verification_code: ['The code passed is incorrect or expired.', 'bad-verification-code'],
};
const CODE_TTL_MS = 10 * 60_000;

/** Authorization pages shown but not answered yet, by id. */
const pending = new Map();
/** code → the authorization it grants (single use). */
const codes = new Map();
/** access token → granted scopes. */
const tokens = new Map();

const { origin } = await listen(config.port, route);

async function route(req, res) {
  const url = new URL(req.url, origin);
  if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') return authorizePage(res, url.searchParams);
  const decision = /^\/login\/oauth\/authorize\/([\w-]+)$/.exec(url.pathname);
  if (req.method === 'POST' && decision) return decide(req, res, decision[1]);
  if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') return accessToken(req, res);
  if (req.method === 'GET' && url.pathname === '/user') return api(req, res, () => [200, userBody()]);
  if (req.method === 'GET' && url.pathname === '/user/emails') {
    return api(req, res, (scopes) =>
      scopes.has('user:email') || scopes.has('user')
        ? [200, user.emails.map(({ email, primary, verified, visibility }) => ({ email, primary, verified, visibility: visibility ?? null }))]
        : [404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user', status: '404' }],
    );
  }
  return send(res, 404, page('Not Found', '<p>This is not the web page you are looking for.</p>'));
}

function authorizePage(res, q) {
  if (q.get('client_id') !== config['client-id']) {
    return send(res, 404, page('Not Found', '<p id="error">No OAuth app with that client_id.</p>'));
  }
  const redirectUri = q.get('redirect_uri') ?? config['redirect-uri'][0];
  if (!config['redirect-uri'].includes(redirectUri)) {
    return send(res, 400, page('Redirect URI mismatch', `<p id="error">The redirect_uri is not associated with this application: ${escapeHtml(redirectUri)}</p>`));
  }
  const challenge = q.get('code_challenge');
  const method = q.get('code_challenge_method');
  if (challenge && method !== 'S256') {
    return redirect(res, withQuery(redirectUri, { error: 'invalid_request', error_description: 'code_challenge_method must be S256', state: q.get('state') }));
  }
  const id = randomBytes(12).toString('base64url');
  pending.set(id, { redirectUri, state: q.get('state'), scope: q.get('scope') ?? '', challenge });
  const scopes = (q.get('scope') ?? '').split(/[\s,]+/).filter(Boolean);
  return send(
    res,
    200,
    page(
      `Authorize ${config['client-id']}`,
      `<p>Signed in as <strong id="login">${escapeHtml(user.login)}</strong>.</p>
<p>This application asks for: <span id="scopes">${escapeHtml(scopes.join(' ') || '(no scope: public information only)')}</span></p>
<form id="authorize-form" method="post" action="/login/oauth/authorize/${id}">
<button id="authorize" type="submit" name="decision" value="allow">Authorize</button>
<button id="cancel" type="submit" name="decision" value="deny">Cancel</button>
</form>`,
    ),
  );
}

async function decide(req, res, id) {
  const request = pending.get(id);
  if (!request) return send(res, 404, page('Not Found', '<p id="error">This authorization request is gone.</p>'));
  pending.delete(id);
  const { decision } = await readParams(req);
  if (decision === 'deny') {
    return redirect(
      res,
      withQuery(request.redirectUri, {
        error: 'access_denied',
        error_description: 'The user has denied your application access.',
        error_uri: `${DOCS}/#access-denied`,
        state: request.state,
      }),
    );
  }
  const code = randomBytes(10).toString('hex');
  codes.set(code, { ...request, expires: Date.now() + CODE_TTL_MS });
  return redirect(res, withQuery(request.redirectUri, { code, state: request.state }));
}

function same(a, b) {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
}

async function accessToken(req, res) {
  const params = await readParams(req);
  const json = (req.headers.accept ?? '').includes('application/json');
  const answer = (body) =>
    json
      ? send(res, 200, body)
      : send(res, 200, new URLSearchParams(body).toString(), { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' });
  const fail = (error) => {
    const [description, anchor] = TOKEN_ERRORS[error];
    return answer({ error, error_description: description, error_uri: `${DOCS}/#${anchor}` });
  };

  // GitHub documents the credentials in the body; HTTP Basic works there too.
  let { client_id: id, client_secret: secret } = params;
  const basic = /^Basic (\S+)$/.exec(req.headers.authorization ?? '');
  if (basic && secret === undefined) {
    const decoded = Buffer.from(basic[1], 'base64').toString();
    const i = decoded.indexOf(':');
    [id, secret] = [decodeURIComponent(decoded.slice(0, i)), decodeURIComponent(decoded.slice(i + 1))];
  }
  if (id !== config['client-id'] || !same(secret ?? '', config['client-secret'])) return fail('incorrect_client_credentials');

  const grant = codes.get(params.code);
  if (!grant || grant.expires < Date.now()) return fail('bad_verification_code');
  codes.delete(params.code);
  if (params.redirect_uri !== undefined && params.redirect_uri !== grant.redirectUri) return fail('redirect_uri_mismatch');
  // A code issued for a PKCE challenge is only good with the matching verifier.
  if (grant.challenge && (!params.code_verifier || s256(params.code_verifier) !== grant.challenge)) {
    return fail('bad_verification_code');
  }
  const token = `gho_${randomBytes(18).toString('hex')}`;
  const scopes = grant.scope.split(/[\s,]+/).filter(Boolean);
  tokens.set(token, new Set(scopes));
  return answer({ access_token: token, token_type: 'bearer', scope: scopes.join(',') });
}

/** A REST call: User-Agent required, then a token (`Bearer` or `token`) whose scopes `answer` sees. */
function api(req, res, answer) {
  const headers = { 'x-github-media-type': 'github.v3; format=json' };
  if (!req.headers['user-agent']) {
    return send(
      res,
      403,
      'Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n',
      { 'content-type': 'text/plain; charset=utf-8' },
    );
  }
  const m = /^(?:Bearer|token) (\S+)$/i.exec(req.headers.authorization ?? '');
  const scopes = m && tokens.get(m[1]);
  if (!scopes) {
    return send(res, 401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest', status: '401' }, headers);
  }
  const [status, body] = answer(scopes);
  return send(res, status, body, { ...headers, 'x-oauth-scopes': [...scopes].join(', ') });
}

function userBody() {
  return {
    login: user.login,
    id: user.id,
    node_id: Buffer.from(`04:User${user.id}`).toString('base64'),
    avatar_url: `https://avatars.githubusercontent.com/u/${user.id}?v=4`,
    gravatar_id: '',
    url: `https://api.github.com/users/${user.login}`,
    html_url: `https://github.com/${user.login}`,
    type: 'User',
    site_admin: false,
    name: user.name ?? null,
    company: null,
    blog: '',
    location: null,
    email: publicEmail,
    hireable: null,
    bio: null,
    twitter_username: null,
    public_repos: 0,
    public_gists: 0,
    followers: 0,
    following: 0,
    created_at: '2011-01-25T18:44:36Z',
    updated_at: '2026-01-01T00:00:00Z',
  };
}

announce('GitHub stand-in', origin);
