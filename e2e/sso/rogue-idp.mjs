#!/usr/bin/env node
// A deliberately faulty OpenID Connect provider, for the refusals a certified provider never gives a
// relying party the chance to make: id_tokens signed by the wrong key, expired, for another audience or
// issuer, or answering another nonce. Apart from the fault it behaves like a small correct provider
// (discovery, JWKS, code flow with PKCE S256, single-use codes, userinfo), so a test that passes with
// fault `none` and fails with a fault proves the relying party checked that one thing.
//
//   node e2e/sso/rogue-idp.mjs --port 0 --client-id keyway --client-secret s3cret \
//     --redirect-uri http://127.0.0.1:8080/api/connect/rogue/callback
//
// Prints `IdP listening on http://127.0.0.1:PORT` (also the issuer) once ready. /authorize approves at
// once, without any page. Controlled at run time:
//   POST /_fault {"fault": "none" | "wrong-key" | "expired" | "wrong-nonce" | "wrong-aud" | "wrong-iss" | "unverified-email"}
//   POST /_user  {"sub", "email", "email_verified", "preferred_username", "name"}   (replaces the user)
// Both answer 200 with the new state. The fault applies to the tokens minted after it was set.
// The token endpoint takes client_secret_basic and client_secret_post.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import {
  announce,
  clientOptions,
  listen,
  quietStdout,
  readBody,
  readParams,
  redirect,
  s256,
  send,
  settings,
  withQuery,
} from './common.mjs';

quietStdout();

const config = settings({
  ...clientOptions('IDP', {
    clientId: 'keyway',
    clientSecret: 'keyway-idp-secret',
    redirectUri: 'http://127.0.0.1:8080/api/connect/rogue/callback',
  }),
});

const FAULTS = new Set(['none', 'wrong-key', 'expired', 'wrong-nonce', 'wrong-aud', 'wrong-iss', 'unverified-email']);
let fault = 'none';
let user = {
  sub: 'rogue-sub-1',
  email: 'mallory@rogue.test',
  email_verified: true,
  preferred_username: 'mallory',
  name: 'Mallory Rogue',
};

// Key A is published; key B signs the `wrong-key` tokens under A's kid, so only the signature is wrong.
const KID = `rogue-${randomBytes(6).toString('hex')}`;
const keyA = await generateKeyPair('RS256', { extractable: true });
const keyB = await generateKeyPair('RS256');
const jwks = { keys: [{ ...(await exportJWK(keyA.publicKey)), kid: KID, alg: 'RS256', use: 'sig' }] };

/** code → what /authorize saw, until /token consumes it (60 s, once). */
const codes = new Map();
/** access token → the user claims it was issued for. */
const accessTokens = new Map();
const CODE_TTL_MS = 60_000;

const { origin } = await listen(config.port, route);

function discovery() {
  return {
    issuer: origin,
    authorization_endpoint: `${origin}/authorize`,
    token_endpoint: `${origin}/token`,
    userinfo_endpoint: `${origin}/userinfo`,
    jwks_uri: `${origin}/jwks`,
    response_types_supported: ['code'],
    grant_types_supported: ['authorization_code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    code_challenge_methods_supported: ['S256'],
    scopes_supported: ['openid', 'email', 'profile'],
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nonce', 'email', 'email_verified', 'preferred_username', 'name'],
  };
}

async function route(req, res) {
  const url = new URL(req.url, origin);
  const key = `${req.method} ${url.pathname}`;
  switch (key) {
    case 'GET /.well-known/openid-configuration':
      return send(res, 200, discovery());
    case 'GET /jwks':
      return send(res, 200, jwks);
    case 'GET /authorize':
      return authorize(res, url.searchParams);
    case 'POST /token':
      return token(req, res);
    case 'GET /userinfo':
    case 'POST /userinfo':
      return userinfo(req, res);
    case 'POST /_fault': {
      const body = JSON.parse((await readBody(req)) || '{}');
      if (!FAULTS.has(body.fault)) return send(res, 400, { error: `unknown fault ${body.fault}`, faults: [...FAULTS] });
      fault = body.fault;
      return send(res, 200, { fault });
    }
    case 'POST /_user': {
      const body = JSON.parse((await readBody(req)) || '{}');
      if (!body.sub) return send(res, 400, { error: 'a user needs a sub' });
      user = { email_verified: true, ...body, sub: String(body.sub) };
      return send(res, 200, user);
    }
    default:
      return send(res, 404, { error: 'not_found' });
  }
}

function authorize(res, q) {
  // Errors that cannot be trusted to a redirect (unknown client, unregistered redirect_uri) are shown.
  if (q.get('client_id') !== config['client-id']) return send(res, 400, { error: 'invalid_client' });
  const redirectUri = q.get('redirect_uri');
  if (!config['redirect-uri'].includes(redirectUri)) {
    return send(res, 400, { error: 'invalid_request', error_description: `redirect_uri ${redirectUri} is not registered` });
  }
  const state = q.get('state') ?? undefined;
  const fail = (error, error_description) => redirect(res, withQuery(redirectUri, { error, error_description, state }));
  if (q.get('response_type') !== 'code') return fail('unsupported_response_type', 'only code');
  if (!(q.get('scope') ?? '').split(' ').includes('openid')) return fail('invalid_scope', 'openid is required');
  if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) {
    return fail('invalid_request', 'PKCE with S256 is required');
  }
  const code = randomBytes(24).toString('base64url');
  codes.set(code, {
    clientId: q.get('client_id'),
    redirectUri,
    nonce: q.get('nonce') ?? undefined,
    challenge: q.get('code_challenge'),
    expires: Date.now() + CODE_TTL_MS,
    used: false,
  });
  return redirect(res, withQuery(redirectUri, { code, state }));
}

/** The client's id and secret from either a Basic header or the body; never both (RFC 6749 §2.3). */
function clientCredentials(req, params) {
  const header = req.headers.authorization ?? '';
  if (header.startsWith('Basic ')) {
    if (params.client_secret !== undefined) return null;
    const decoded = Buffer.from(header.slice(6), 'base64').toString();
    const i = decoded.indexOf(':');
    if (i < 0) return null;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before being joined.
    const unescape = (s) => decodeURIComponent(s.replace(/\+/g, ' '));
    return { id: unescape(decoded.slice(0, i)), secret: unescape(decoded.slice(i + 1)) };
  }
  if (params.client_id !== undefined && params.client_secret !== undefined) {
    return { id: params.client_id, secret: params.client_secret };
  }
  return null;
}

function same(a, b) {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
}

async function token(req, res) {
  const params = await readParams(req);
  const oauthError = (status, error, error_description) => send(res, status, { error, error_description });
  const client = clientCredentials(req, params);
  if (!client || client.id !== config['client-id'] || !same(client.secret, config['client-secret'])) {
    return oauthError(401, 'invalid_client', 'client authentication failed');
  }
  if (params.grant_type !== 'authorization_code') return oauthError(400, 'unsupported_grant_type', params.grant_type);
  const grant = codes.get(params.code);
  if (!grant || grant.used || grant.expires < Date.now() || grant.clientId !== client.id) {
    return oauthError(400, 'invalid_grant', 'unknown, used or expired code');
  }
  // Spent by this attempt whatever comes next, as a provider must (RFC 6749 §4.1.2).
  grant.used = true;
  if (params.redirect_uri !== grant.redirectUri) return oauthError(400, 'invalid_grant', 'redirect_uri mismatch');
  if (!params.code_verifier || s256(params.code_verifier) !== grant.challenge) {
    return oauthError(400, 'invalid_grant', 'PKCE verification failed');
  }

  const claims = { ...user };
  if (fault === 'unverified-email') claims.email_verified = false;
  const accessToken = randomBytes(24).toString('base64url');
  accessTokens.set(accessToken, claims);
  return send(res, 200, {
    access_token: accessToken,
    token_type: 'Bearer',
    expires_in: 3600,
    scope: 'openid email profile',
    id_token: await idToken(claims, grant),
  });
}

async function idToken(claims, grant) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { ...claims, auth_time: now };
  let iss = origin;
  let aud = grant.clientId;
  let nonce = grant.nonce;
  let [iat, exp] = [now, now + 600];
  if (fault === 'wrong-iss') iss = `${origin}/somebody-else`;
  if (fault === 'wrong-aud') aud = 'another-client';
  if (fault === 'wrong-nonce') nonce = randomBytes(16).toString('base64url');
  if (fault === 'expired') [iat, exp] = [now - 7200, now - 3600];
  if (nonce !== undefined) payload.nonce = nonce;
  const key = fault === 'wrong-key' ? keyB.privateKey : keyA.privateKey;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'RS256', kid: KID, typ: 'JWT' })
    .setIssuer(iss)
    .setAudience(aud)
    .setSubject(claims.sub)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(key);
}

function userinfo(req, res) {
  const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
  const claims = m && accessTokens.get(m[1]);
  if (!claims) {
    return send(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
  }
  return send(res, 200, claims);
}

announce('IdP', origin);
