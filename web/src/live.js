// The live page (active sessions, polled every second) and the watch view (xterm.js fed by
// the WebSocket /api/v1/sessions/{id}/watch).

import { get, post } from './api.js';
import { h, clear, fmtDuration, fmtTime, table, errorBox } from './dom.js';
import { createTerminal } from './term.js';

const POLL_MS = 1000;

export async function liveView(main, ctx) {
  const status = h('span.muted.poll-status');
  const body = h('div', { id: 'live-table' });
  main.append(
    h('div.page-head', h('h1', 'Live sessions'), status),
    body,
  );
  let timer = null;
  let stopped = false;
  let dialogOpen = false;
  const fetched = { rows: null, at: 0 };

  const render = () => {
    if (!fetched.rows) return;
    const since = performance.now() - fetched.at;
    clear(body).append(table(fetched.rows, [
      ['Person', (s) => s.user],
      ['Target', (s) => s.target],
      ['Client', (s) => s.client_addr],
      ['Started', (s) => fmtTime(s.started_at)],
      ['Duration', (s) => h('span.duration', fmtDuration(s.duration_us + since * 1000))],
      ['Last command', (s) => (s.last_command ? h('code.cmd', s.last_command) : h('span.muted', '—'))],
      ['', (s) => h('div.actions',
        h('a.button', { href: `#/live/${encodeURIComponent(s.id)}`, dataset: { action: 'watch', session: s.id } }, 'Watch'),
        h('a.button.secondary', { href: `#/sessions/${encodeURIComponent(s.id)}` }, 'Details'),
        h('button.danger', {
          type: 'button',
          dataset: { action: 'terminate', session: s.id },
          onclick: () => {
            dialogOpen = true;
            terminateDialog(s, () => { dialogOpen = false; poll(); });
          },
        }, 'Terminate'))],
    ], {
      empty: 'No active sessions.',
      rowProps: (s) => ({ dataset: { session: s.id, user: s.user, target: s.target } }),
    }));
  };

  async function poll() {
    clearTimeout(timer);
    if (stopped) return;
    try {
      const rows = await get('/live');
      if (stopped) return;
      fetched.rows = rows;
      fetched.at = performance.now();
      status.textContent = `${rows.length} active · updated ${new Date().toLocaleTimeString()}`;
      if (!dialogOpen) render();
    } catch (e) {
      if (stopped) return;
      clear(body).append(errorBox(e));
      if (e.status === 401 || e.status === 403) return;
    }
    timer = setTimeout(poll, POLL_MS);
  }
  await poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Asks for a reason, then POSTs terminate. `done` runs when the dialog closes. */
export function terminateDialog(s, done) {
  const reason = h('textarea', { name: 'reason', id: 'terminate-reason', rows: 3, required: true, placeholder: 'Why this session is being stopped' });
  const err = h('p.error.hidden', { role: 'alert' });
  const submit = h('button.danger', { type: 'submit', id: 'terminate-confirm' }, 'Terminate session');
  const dialog = h('dialog.modal', { id: 'terminate-dialog' });
  const close = () => {
    dialog.close();
    dialog.remove();
    done?.();
  };
  dialog.append(h('form', {
    method: 'dialog',
    onsubmit: async (ev) => {
      ev.preventDefault();
      if (!reason.value.trim()) {
        err.textContent = 'A reason is required: the person sees it, and it goes into the audit trail.';
        err.classList.remove('hidden');
        return;
      }
      submit.disabled = true;
      try {
        await post(`/sessions/${encodeURIComponent(s.id)}/terminate`, { reason: reason.value.trim() });
        close();
      } catch (e) {
        err.textContent = e.status === 409 ? 'The session is no longer live.' : e.message;
        err.classList.remove('hidden');
        submit.disabled = false;
      }
    },
  },
  h('h2', 'Terminate session'),
  h('p', `${s.user} on ${s.target}. They will see your name and this reason, then be disconnected.`),
  h('label', 'Reason', reason),
  err,
  h('div.actions',
    h('button.secondary', { type: 'button', onclick: close }, 'Cancel'),
    submit)));
  dialog.addEventListener('cancel', (ev) => { ev.preventDefault(); close(); });
  document.body.append(dialog);
  dialog.showModal();
  reason.focus();
}

export async function watchView(main, ctx, id) {
  if (!ctx.can('auditor')) {
    // The server refuses the stream anyway; say so without trying.
    main.append(h('div.error', { role: 'alert', dataset: { status: '403' } }, 'Only auditors watch live sessions.'));
    return null;
  }
  const info = h('div.watch-info.muted', 'Connecting…');
  const banner = h('div.banner.hidden', { id: 'watch-banner', role: 'status' });
  const termBox = h('div.term-box');
  const terminate = ctx.can('auditor')
    ? h('button.danger', {
      type: 'button',
      id: 'watch-terminate',
      onclick: () => terminateDialog(session || { id, user: '?', target: '?' }),
    }, 'Terminate')
    : null;
  main.append(
    h('div.page-head',
      h('h1', 'Watching ', h('code', id)),
      h('div.actions', h('a.button.secondary', { href: '#/live' }, 'Back to live'),
        h('a.button.secondary', { href: `#/sessions/${encodeURIComponent(id)}` }, 'Details'), terminate)),
    info, banner, termBox,
  );
  let session = null;
  get('/live').then((rows) => {
    session = rows.find((r) => r.id === id) || null;
    if (session && ctx.isCurrent()) {
      info.textContent = `${session.user} → ${session.target} from ${session.client_addr}, started ${fmtTime(session.started_at)}`;
    }
  }).catch(() => {});

  const term = createTerminal(termBox);
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/api/v1/sessions/${encodeURIComponent(id)}/watch`);
  let ended = false;
  const showBanner = (cls, text) => {
    banner.className = `banner ${cls}`;
    banner.textContent = text;
    banner.dataset.state = cls;
  };
  ws.addEventListener('open', () => {
    if (!session) info.textContent = 'Connected.';
  });
  ws.addEventListener('message', (ev) => {
    let m;
    try {
      m = JSON.parse(ev.data);
    } catch {
      return;
    }
    switch (m.type) {
      case 'screen':
        term.reset();
        if (m.cols && m.rows) term.resize(m.cols, m.rows);
        term.write(m.data || '', () => written(m.data));
        termBox.dataset.ready = '1';
        showBanner('live', 'Live');
        break;
      case 'output':
        term.write(m.data || '', () => written(m.data));
        break;
      case 'resize':
        if (m.cols && m.rows) term.resize(m.cols, m.rows);
        break;
      case 'end':
        ended = true;
        if (terminate) terminate.remove();
        if (/behind|slow|drop/i.test(m.reason || '')) {
          showBanner('dropped', `Dropped: ${m.reason}. `);
          banner.append(h('button.small', {
            type: 'button',
            id: 'watch-reconnect',
            onclick: () => window.dispatchEvent(new HashChangeEvent('hashchange')),
          }, 'Watch again from the current screen'));
        } else {
          const why = (m.reason || '').replace(/\.$/, '');
          showBanner('ended', why && !/^session ended$/i.test(why) ? `Session ended: ${why}.` : 'Session ended.');
        }
        break;
      default:
        break;
    }
  });
  ws.addEventListener('close', (ev) => {
    if (!ended && ctx.isCurrent()) {
      if (!termBox.dataset.ready) info.textContent = '';
      showBanner('closed', ev.code === 1000 ? 'The watch stream closed.'
        : 'The watch stream closed: the session may not be live, or you may not watch it.');
      if (!termBox.dataset.ready) {
        // Nothing was ever shown: say why in terms the auditor can act on.
        get(`/sessions/${encodeURIComponent(id)}`).then((s) => {
          if (s.status !== 'active') showBanner('ended', `This session is not live (${s.status}). Open its details to replay it.`);
        }).catch((e) => { if (ctx.isCurrent()) termBox.replaceWith(errorBox(e)); });
      }
    }
  });
  return () => {
    ws.close();
    term.dispose();
  };
}

/** Tells the benchmark (web/e2e/latency.mjs) that output has been parsed into the terminal. */
function written(data) {
  window.dispatchEvent(new CustomEvent('keepwatch:written', { detail: { data, at: performance.timeOrigin + performance.now() } }));
}
