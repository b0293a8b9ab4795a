// Keyway's hosted login app: the custom-login flow, done safely.
//
// The access token lives only in this page's memory. The refresh token lives in an HttpOnly cookie
// (the refresh endpoint's cookie mode), which no script can read; each page load trades it for a fresh
// access token, so a reload restores the session and nothing long-lived sits in script-readable storage.
'use strict';

const API = '/api';
const COOKIE_MODE = { 'x-strapi-refresh-cookie': 'httpOnly' };
const base = document.body.dataset.base || '/';

let accessToken = null;

async function call(path, { method = 'GET', body, auth = false, cookie = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (cookie) Object.assign(headers, COOKIE_MODE);
  if (auth && accessToken) headers.Authorization = `Bearer ${accessToken}`;
  const res = await fetch(API + path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    // An empty or non-JSON answer: the status says enough.
  }
  return { ok: res.ok, status: res.status, data };
}

function showAlert(el, message) {
  el.textContent = message;
  el.hidden = false;
  el.focus();
}

function serverMessage(result) {
  return result.data && result.data.error && result.data.error.message;
}

/** Disables the form's button while `work` runs; Enter submits through the form itself. */
function onSubmit(form, work) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      await work(new FormData(form));
    } finally {
      button.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });
}

/** Trades the refresh cookie for an access token; false when there is no live session. */
async function restoreSession() {
  const result = await call('/auth/refresh', { method: 'POST', body: {}, cookie: true });
  accessToken = result.ok && result.data ? result.data.jwt : null;
  return accessToken !== null;
}

// The reasons worth telling a user who typed the right password; anything else stays "Login failed!".
const TOLD_REASONS = [
  'Your account has been blocked by an administrator',
  'Your account email is not confirmed',
  'Too many requests, please try again later.',
];

function loginPage() {
  const form = document.getElementById('login-form');
  const alertBox = document.getElementById('alert');
  onSubmit(form, async (fields) => {
    alertBox.hidden = true;
    const result = await call('/auth/local', {
      method: 'POST',
      cookie: true,
      body: { identifier: fields.get('identifier'), password: fields.get('password') },
    });
    if (result.ok) {
      window.location.assign(`${base}home`);
      return;
    }
    const reason = serverMessage(result);
    const told = TOLD_REASONS.includes(reason) || result.status === 429;
    showAlert(alertBox, told && reason ? `Login failed! ${reason}` : 'Login failed!');
  });
}

function formatDate(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

function show(sectionId) {
  document.getElementById('checking').hidden = true;
  for (const id of ['protected', 'unauthorized']) {
    document.getElementById(id).hidden = id !== sectionId;
  }
}

function showUnauthorized() {
  accessToken = null;
  show('unauthorized');
  document.getElementById('unauthorized-title').focus();
}

async function renderSessions() {
  const list = document.getElementById('sessions');
  const alertBox = document.getElementById('sessions-alert');
  const result = await call('/auth/sessions', { auth: true });
  if (!result.ok) {
    if (result.status === 401) showUnauthorized();
    return;
  }
  list.replaceChildren();
  for (const session of result.data.data) {
    const item = document.createElement('li');
    item.dataset.sessionId = session.id;
    const meta = document.createElement('span');
    meta.className = 'meta';
    const name = document.createElement('span');
    name.textContent = session.deviceName || 'Unknown device';
    const when = document.createElement('small');
    when.textContent = `Signed in ${formatDate(session.loginAt)}`;
    meta.append(name, when);
    item.append(meta);
    if (session.current) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = 'This device';
      item.append(badge);
    } else {
      const end = document.createElement('button');
      end.type = 'button';
      end.className = 'secondary';
      end.textContent = 'Sign out this device';
      end.setAttribute('aria-label', `Sign out ${name.textContent}, ${when.textContent}`);
      end.addEventListener('click', async () => {
        end.disabled = true;
        const done = await call(`/auth/sessions/${encodeURIComponent(session.id)}`, {
          method: 'DELETE',
          auth: true,
        });
        if (done.ok) {
          item.remove();
        } else {
          end.disabled = false;
          showAlert(alertBox, 'That device could not be signed out. Try again.');
        }
      });
      item.append(end);
    }
    list.append(item);
  }
}

async function homePage() {
  document.getElementById('logout').addEventListener('click', async (event) => {
    event.currentTarget.disabled = true;
    await call('/auth/logout', { method: 'POST', body: {}, auth: true, cookie: true });
    accessToken = null;
    window.location.assign(base);
  });

  // The secured query: only a successful /users/me shows the protected view.
  if (!(await restoreSession())) return showUnauthorized();
  const me = await call('/users/me', { auth: true });
  if (!me.ok) return showUnauthorized();
  const user = me.data;
  document.getElementById('user-name').textContent = user.username;
  document.getElementById('profile-username').textContent = user.username;
  document.getElementById('profile-email').textContent = user.email;
  document.getElementById('profile-role').textContent = user.role ? user.role.name : '';
  document.getElementById('profile-since').textContent = formatDate(user.createdAt);
  show('protected');
  await renderSessions();
}

function registerPage() {
  const form = document.getElementById('register-form');
  const alertBox = document.getElementById('alert');
  onSubmit(form, async (fields) => {
    alertBox.hidden = true;
    const result = await call('/auth/local/register', {
      method: 'POST',
      body: {
        username: fields.get('username'),
        email: fields.get('email'),
        password: fields.get('password'),
      },
    });
    if (!result.ok) {
      showAlert(alertBox, serverMessage(result) || 'Registration failed.');
      return;
    }
    if (!result.data.refreshToken) {
      form.hidden = true;
      const done = document.getElementById('done');
      done.textContent = 'Almost there: we sent you an email. Follow its link to confirm your address.';
      done.hidden = false;
      return;
    }
    // Registration answers with the refresh token in the body; one refresh in cookie mode moves the
    // session into the HttpOnly cookie before the page forgets the body.
    await call('/auth/refresh', {
      method: 'POST',
      cookie: true,
      body: { refreshToken: result.data.refreshToken },
    });
    window.location.assign(`${base}home`);
  });
}

function forgotPage() {
  const form = document.getElementById('forgot-form');
  const alertBox = document.getElementById('alert');
  onSubmit(form, async (fields) => {
    alertBox.hidden = true;
    const result = await call('/auth/forgot-password', {
      method: 'POST',
      body: { email: fields.get('email') },
    });
    if (!result.ok) {
      showAlert(alertBox, serverMessage(result) || 'That did not work. Try again.');
      return;
    }
    form.hidden = true;
    const done = document.getElementById('done');
    done.hidden = false;
    done.focus();
  });
}

/** The landing page of a single sign-on: trades the one-time code for a session, or says why not. */
async function ssoPage() {
  const provider = document.getElementById('sso').dataset.provider;
  const params = new URLSearchParams(window.location.search);
  // The code works once; keep it out of the history and of any reload.
  window.history.replaceState(null, '', window.location.pathname);
  const fail = (message) => {
    document.getElementById('sso').hidden = true;
    const section = document.getElementById('sso-failed');
    section.hidden = false;
    document.getElementById('alert').textContent = message;
    document.getElementById('sso-failed-title').focus();
  };
  if (params.get('error') || !params.get('code')) {
    fail(params.get('error_description') || params.get('error') || 'The sign-in did not complete.');
    return;
  }
  const code = encodeURIComponent(params.get('code'));
  const result = await call(`/auth/${encodeURIComponent(provider)}/callback?code=${code}`, { cookie: true });
  if (result.ok) {
    window.location.replace(`${base}home`);
    return;
  }
  fail(serverMessage(result) || 'The sign-in did not complete.');
}

const pages = {
  login: loginPage,
  sso: ssoPage,
  home: homePage,
  register: registerPage,
  'forgot-password': forgotPage,
};
const start = pages[document.body.dataset.page];
if (start) start();
