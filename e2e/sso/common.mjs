// What the three sign-in peers (idp.mjs, rogue-idp.mjs, github-standin.mjs) share: reading their
// settings from flags or the environment, the one line on stdout that tells a test where they listen,
// bodies, and small HTML pages. Test processes read stdout for that line only, so everything else a
// peer (or a library inside it) prints goes to stderr.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

/** Routes console.log/info to stderr: oidc-provider prints notices with console.info. */
export function quietStdout() {
  console.log = console.error;
  console.info = console.error;
}

/**
 * Flags (`--name value`) with an environment fallback per option (`env: 'IDP_CLIENT_ID'`). A repeatable
 * option (`multiple: true`) takes its environment value split on commas and spaces, or a JSON array
 * when `json: true`.
 */
export function settings(spec) {
  const options = Object.fromEntries(
    Object.entries(spec).map(([name, o]) => [name, { type: 'string', multiple: !!o.multiple }]),
  );
  options.help = { type: 'boolean' };
  const { values } = parseArgs({ options, strict: true });
  if (values.help) {
    const lines = Object.entries(spec).map(
      ([name, o]) => `  --${name}${o.multiple ? ' (repeatable)' : ''}  [env ${o.env}]  ${o.help}`,
    );
    process.stdout.write(`options:\n${lines.join('\n')}\n`);
    process.exit(0);
  }
  const out = {};
  for (const [name, o] of Object.entries(spec)) {
    let value = values[name];
    const fromEnv = process.env[o.env];
    if ((value === undefined || value.length === 0) && fromEnv !== undefined && fromEnv !== '') {
      if (o.multiple) value = o.json ? JSON.parse(fromEnv) : fromEnv.split(/[\s,]+/).filter(Boolean);
      else value = fromEnv;
    } else if (o.multiple && o.json && value) {
      value = value.map((v) => JSON.parse(v));
    }
    if (value === undefined || (o.multiple && value.length === 0)) value = o.default;
    out[name] = value;
  }
  return out;
}

/**
 * The options every peer has: its port and the one client it knows (id, secret, redirect URIs), read
 * from flags or from `<prefix>_PORT`, `<prefix>_CLIENT_ID`, `<prefix>_CLIENT_SECRET` and
 * `<prefix>_REDIRECT_URIS`.
 */
export function clientOptions(prefix, { clientId, clientSecret, redirectUri, redirectHelp }) {
  return {
    port: { env: `${prefix}_PORT`, default: '0', help: 'port on 127.0.0.1 (0: any free one)' },
    'client-id': { env: `${prefix}_CLIENT_ID`, default: clientId, help: 'client_id of the one client' },
    'client-secret': { env: `${prefix}_CLIENT_SECRET`, default: clientSecret, help: 'its client_secret' },
    'redirect-uri': {
      env: `${prefix}_REDIRECT_URIS`,
      multiple: true,
      default: [redirectUri],
      help: `${redirectHelp ?? 'registered redirect_uri'} (env: comma-separated)`,
    },
  };
}

/**
 * Starts `handler` on 127.0.0.1:`port` (0: any free port). Resolves with the origin once listening;
 * `announce(origin)` prints the one stdout line after the caller finished setting up.
 */
export async function listen(port, handler) {
  const server = createServer((req, res) => {
    Promise.resolve(handler(req, res)).catch((e) => {
      console.error(e);
      if (!res.headersSent) send(res, 500, { error: 'server_error', error_description: String(e.message) });
      else res.destroy();
    });
  });
  await new Promise((done, fail) => {
    server.once('error', fail);
    server.listen(Number(port) || 0, '127.0.0.1', done);
  });
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      server.close();
      process.exit(0);
    });
  }
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

export function announce(label, origin) {
  process.stdout.write(`${label} listening on ${origin}\n`);
}

const BODY_LIMIT = 64 * 1024;

/** The request body as a string (at most 64 KiB). */
export async function readBody(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > BODY_LIMIT) throw new Error('body too large');
  }
  return body;
}

/** A form-encoded or JSON body as a plain object of strings. */
export async function readParams(req) {
  const raw = await readBody(req);
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim();
  if (type === 'application/json') return raw ? JSON.parse(raw) : {};
  return Object.fromEntries(new URLSearchParams(raw));
}

/** Answers JSON (objects, arrays), a string (as text/html unless a content type is given) or nothing. */
export function send(res, status, body, headers = {}) {
  const h = { 'cache-control': 'no-store', ...headers };
  let payload = '';
  if (body !== undefined && typeof body !== 'string') {
    h['content-type'] ??= 'application/json';
    payload = JSON.stringify(body);
  } else if (body !== undefined) {
    h['content-type'] ??= 'text/html; charset=utf-8';
    payload = body;
  }
  res.writeHead(status, h);
  res.end(payload);
}

export function redirect(res, location, status = 302) {
  res.writeHead(status, { location, 'cache-control': 'no-store' });
  res.end();
}

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A whole HTML page with a title and a body fragment. */
export function page(title, body) {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
${body}
</main>
</body>
</html>
`;
}

/** base64url(SHA-256(verifier)), the S256 code challenge of RFC 7636. */
export function s256(verifier) {
  return createHash('sha256').update(verifier).digest('base64url');
}

/** Appends query parameters to a URL that may already have some. */
export function withQuery(url, params) {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) u.searchParams.set(k, v);
  return u.href;
}
