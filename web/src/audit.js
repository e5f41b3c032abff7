// The audit trail (#/audit?actor=&session=&action=): every login, view, replay, search, watch
// and kill, newest first.

import { get, query } from './api.js';
import { h, clear, fmtTime, table, errorBox } from './dom.js';

export async function auditView(main, ctx) {
  const p = ctx.params;
  const actor = h('input', { name: 'actor', value: p.get('actor') || '', placeholder: 'any', autocomplete: 'off' });
  const session = h('input', { name: 'session', value: p.get('session') || '', placeholder: 'any', autocomplete: 'off' });
  const action = h('input', { name: 'action', value: p.get('action') || '', placeholder: 'any', autocomplete: 'off' });
  const form = h('form.filters', {
    id: 'audit-filters',
    onsubmit: (ev) => {
      ev.preventDefault();
      location.hash = `#/audit${query({ actor: actor.value.trim(), session: session.value.trim(), action: action.value.trim() })}`;
    },
  }, h('div.filter-row', h('label', 'Actor', actor), h('label', 'Session', session), h('label', 'Action', action),
    h('button.primary', { type: 'submit' }, 'Filter'), h('a.button.secondary', { href: '#/audit' }, 'Clear')));
  const body = h('section', { id: 'audit-list' }, h('p.muted', 'Loading…'));
  main.append(h('div.page-head', h('h1', 'Audit trail')), form, body);
  try {
    const rows = await get(`/audit${query({ actor: p.get('actor'), session: p.get('session'), action: p.get('action'), limit: 500 })}`);
    if (!ctx.isCurrent()) return null;
    clear(body).append(table(rows, [
      ['Time', (e) => fmtTime(e.at)],
      ['Actor', (e) => e.actor],
      ['Action', (e) => h('span.action', e.action)],
      ['Session', (e) => (e.session ? h('a', { href: `#/sessions/${encodeURIComponent(e.session)}` }, h('code', e.session)) : h('span.muted', '—'))],
      ['Client', (e) => e.client_addr || ''],
      ['Detail', (e) => (e.detail === null || e.detail === undefined ? ''
        : typeof e.detail === 'string' ? e.detail : h('code', JSON.stringify(e.detail)))],
    ], { empty: 'No audit events match.', rowProps: (e) => ({ class: 'audit-row', dataset: { action: e.action, actor: e.actor, session: e.session || '' } }) }));
  } catch (e) {
    if (ctx.isCurrent()) clear(body).append(errorBox(e));
  }
  return null;
}
