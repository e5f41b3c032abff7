// The Keepwatch console: login, then hash routes (#/live, #/sessions, #/sessions/{id}?at_us=N,
// #/audit, #/admin). Each view renders into <main> and returns a cleanup function that the
// router calls when the route changes (timers, WebSockets, terminals).

import { get, post, setCsrf, onUnauthorized } from './api.js';
import { h, clear, errorBox } from './dom.js';
import { liveView, watchView } from './live.js';
import { sessionsView } from './sessions.js';
import { sessionView } from './session.js';
import { auditView } from './audit.js';
import { adminView } from './admin.js';

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');
let me = null;
let cleanup = null;
let generation = 0;

const RANK = { user: 0, auditor: 1, admin: 2 };
export const can = (role) => me && RANK[me.role] >= RANK[role];

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(qs || '') };
}

function defaultRoute() {
  return can('auditor') ? '#/live' : '#/sessions';
}

async function route() {
  const gen = ++generation;
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      console.error(e);
    }
    cleanup = null;
  }
  if (!me) return showLogin();
  const { parts, params } = parseHash();
  const [top, id, sub] = parts;
  for (const a of document.querySelectorAll('#nav [data-role], #nav a')) {
    a.classList.toggle('hidden', Boolean(a.dataset.role) && !can(a.dataset.role));
    a.classList.toggle('active', a.dataset.route === top);
  }
  clear(main);
  const ctx = { me, can, params, isCurrent: () => gen === generation };
  let view;
  if (top === 'live' && !id) view = liveView;
  else if (top === 'live' && id) view = (el, c) => watchView(el, c, id);
  else if (top === 'sessions' && id && sub === 'watch') view = (el, c) => watchView(el, c, id);
  else if (top === 'sessions' && id) view = (el, c) => sessionView(el, c, id);
  else if (top === 'sessions') view = sessionsView;
  else if (top === 'audit') view = auditView;
  else if (top === 'admin') view = adminView;
  else {
    location.replace(defaultRoute());
    return;
  }
  try {
    cleanup = (await view(main, ctx)) || null;
    if (gen !== generation && cleanup) {
      cleanup();
      cleanup = null;
    }
  } catch (e) {
    if (gen !== generation) return;
    clear(main).append(errorBox(e));
  }
}


function showLogin(message) {
  topbar.classList.add('hidden');
  clear(main);
  const name = h('input', { name: 'name', id: 'login-name', autocomplete: 'username', required: true });
  const password = h('input', {
    name: 'password', id: 'login-password', type: 'password', autocomplete: 'current-password', required: true,
  });
  const err = h('p.error.hidden', { role: 'alert', id: 'login-error' });
  const button = h('button.primary', { type: 'submit', id: 'login-submit' }, 'Log in');
  const form = h('form.login', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      button.disabled = true;
      err.classList.add('hidden');
      try {
        const who = await post('/login', { name: name.value, password: password.value });
        signedIn(who);
        // /me also says whether the last verify round found a problem.
        get('/me').then(signedIn, () => {});
        if (!location.hash || location.hash === '#/' || location.hash === '#/login') {
          location.hash = defaultRoute();
        } else route();
      } catch (e) {
        err.textContent = e.status === 401 ? 'Wrong name or password.' : e.message;
        err.classList.remove('hidden');
        button.disabled = false;
        password.select();
      }
    },
  },
  h('h1', 'Keepwatch'),
  h('p.muted', 'Sign in with the password from ', h('code', 'keepwatch user add'), '.'),
  message ? h('p.notice', message) : null,
  h('label', 'Name', name),
  h('label', 'Password', password),
  err,
  button);
  main.append(h('div.login-wrap', form));
  name.focus();
}

function signedIn(who) {
  me = who;
  setCsrf(who.csrf);
  document.getElementById('who').textContent = `${who.name} · ${who.role}`;
  topbar.classList.remove('hidden');
  document.body.dataset.role = who.role;
  showVerifyAlert(who.verify_alert);
}

// The Report link opens the report of the period chosen beside it.
const reportPeriod = document.getElementById('report-period');
reportPeriod.addEventListener('change', () => {
  const since = encodeURIComponent(reportPeriod.value);
  document.getElementById('report-link').href = `/api/v1/report?format=html&since=${since}`;
});

// A verify round that found a problem stays in view (auditors and admins) until one finds none.
function showVerifyAlert(alert) {
  const el = document.getElementById('verify-alert');
  el.classList.toggle('hidden', !alert);
  el.replaceChildren();
  if (!alert) return;
  el.append(
    `Verify found a problem (${alert.at}, ${alert.by}): ${alert.detail}. `,
    h('a', { href: '#/audit' }, 'See the audit trail'),
    ', and run ',
    h('code', 'keepwatch verify --all'),
    ' for the full report.',
  );
}

onUnauthorized(() => {
  if (!me) return;
  me = null;
  setCsrf(null);
  if (cleanup) cleanup();
  cleanup = null;
  showLogin('Your session ended; sign in again.');
});

document.getElementById('logout').addEventListener('click', async () => {
  try {
    await post('/logout');
  } catch {
    // logged out either way
  }
  me = null;
  setCsrf(null);
  showVerifyAlert(null);
  if (cleanup) cleanup();
  cleanup = null;
  location.hash = '#/login';
  showLogin();
});

window.addEventListener('hashchange', () => {
  if (me) route();
});

try {
  signedIn(await get('/me'));
  route();
} catch (e) {
  if (e.status && e.status !== 401) console.warn(e.message);
  showLogin();
}
