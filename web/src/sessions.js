// The session list (filters person/target/status/time range/tag) and the search box over commands
// and output (/api/v1/search); a hit opens the player at that moment. The filters live in the
// hash (#/sessions?user=..&q=..) so Back and reload keep them.

import { get, query } from './api.js';
import { h, clear, fmtDuration, fmtTime, fmtOffset, table, snippet, errorBox } from './dom.js';

const STATUSES = ['active', 'closed', 'terminated', 'interrupted', 'refused'];

/** datetime-local value (local time) → RFC 3339 UTC, or '' */
function toRfc3339(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

function toLocalInput(rfc) {
  if (!rfc) return '';
  const d = new Date(rfc);
  if (Number.isNaN(d.getTime())) return '';
  const off = d.getTimezoneOffset() * 60000;
  return new Date(d.getTime() - off).toISOString().slice(0, 16);
}

export async function sessionsView(main, ctx) {
  const p = ctx.params;
  const f = {
    user: h('input', { name: 'user', value: p.get('user') || '', placeholder: 'any', autocomplete: 'off' }),
    target: h('input', { name: 'target', value: p.get('target') || '', placeholder: 'any', autocomplete: 'off' }),
    status: h('select', { name: 'status' },
      h('option', { value: '' }, 'any'),
      STATUSES.map((s) => h('option', { value: s, selected: p.get('status') === s }, s))),
    since: h('input', { name: 'since', type: 'datetime-local', value: toLocalInput(p.get('since')) }),
    until: h('input', { name: 'until', type: 'datetime-local', value: toLocalInput(p.get('until')) }),
    tag: h('input', { name: 'tag', id: 'tag-filter', value: p.get('tag') || '', placeholder: 'any', autocomplete: 'off' }),
  };
  const q = h('input', {
    name: 'q', id: 'search-q', type: 'search', value: p.get('q') || '',
    placeholder: 'Search commands and output, e.g. systemctl restart', autocomplete: 'off',
  });
  const commandsOnly = h('input', { type: 'checkbox', name: 'commands_only', checked: p.get('commands_only') === 'true' });
  if (ctx.me.role === 'user') {
    f.user.value = '';
    f.user.disabled = true;
    f.user.placeholder = ctx.me.name;
  }
  const go = (ev) => {
    ev.preventDefault();
    const next = query({
      user: f.user.value.trim(), target: f.target.value.trim(), status: f.status.value,
      since: toRfc3339(f.since.value), until: toRfc3339(f.until.value), tag: f.tag.value.trim(),
      q: q.value.trim(), commands_only: commandsOnly.checked ? 'true' : '',
    });
    const hash = `#/sessions${next}`;
    if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
    else location.hash = hash;
  };
  const form = h('form.filters', { onsubmit: go, id: 'session-filters' },
    h('div.search-row', q, h('label.inline', commandsOnly, ' commands only'),
      h('button.primary', { type: 'submit', id: 'search-submit' }, 'Search')),
    h('div.filter-row',
      h('label', 'Person', f.user), h('label', 'Target', f.target), h('label', 'Status', f.status),
      h('label', 'From', f.since), h('label', 'To', f.until), h('label', 'Tag', f.tag),
      h('button.secondary', { type: 'submit' }, 'Apply'),
      h('a.button.secondary', { href: '#/sessions' }, 'Clear')));
  const results = h('section', { id: 'search-results' });
  const list = h('section', { id: 'session-list' });
  main.append(h('div.page-head', h('h1', 'Sessions')), form, results, list);

  const filters = {
    user: p.get('user') || '', target: p.get('target') || '', since: p.get('since') || '', until: p.get('until') || '',
    tag: p.get('tag') || '',
  };
  const text = p.get('q');
  const jobs = [];
  if (text) {
    results.append(h('p.muted', 'Searching…'));
    jobs.push(get(`/search${query({ q: text, ...filters, commands_only: p.get('commands_only') || '', limit: 200 })}`).then((answer) => {
      if (!ctx.isCurrent()) return;
      const hits = answer.hits;
      clear(results).append(...[
        h('h2', `${hits.length} hit${hits.length === 1 ? '' : 's'} for “${text}”`),
        unindexedBanner(answer.not_fully_indexed, answer.not_fully_indexed_total),
        answer.stopped_early
          ? h('div.banner.dropped', { id: 'search-stopped' },
            'The search read as much output as one search may and stopped: older output was not searched. Narrow it by person, target or time.')
          : null,
        table(hits, [
          ['When', (x) => fmtTime(x.at)],
          ['Person', (x) => x.user],
          ['Target', (x) => x.target],
          ['At', (x) => fmtOffset(x.offset_us)],
          ['Kind', (x) => (x.in_output ? `${x.kind} output` : x.kind)],
          ['Match', (x) => h('div.hit',
            x.command ? h('code.cmd', x.command) : null,
            x.snippet ? h('div.snippet', snippet(x.snippet)) : null)],
          ['', (x) => h('a.button', {
            href: `#/sessions/${encodeURIComponent(x.session)}?at_us=${Math.max(0, Math.round(x.offset_us))}`,
            dataset: { action: 'open-hit', session: x.session },
          }, 'Replay here')],
        ], { empty: 'No matches.', rowProps: (x) => ({ class: 'search-hit', dataset: { session: x.session } }) }),
      ].filter(Boolean));
    }).catch((e) => { if (ctx.isCurrent()) clear(results).append(errorBox(e)); }));
  }
  list.append(h('p.muted', 'Loading sessions…'));
  jobs.push(get(`/sessions${query({ ...filters, status: p.get('status') || '', limit: 500 })}`).then((rows) => {
    if (!ctx.isCurrent()) return;
    clear(list);
    if (text) list.append(h('h2', 'Sessions'));
    list.append(
      table(rows, [
        ['Started', (s) => fmtTime(s.started_at)],
        ['Session', (s) => h('code.id', { title: s.id }, s.id.length > 12 ? `${s.id.slice(0, 12)}…` : s.id)],
        ['Person', (s) => s.user],
        ['Target', (s) => h('span', s.target, s.target_host ? h('span.muted', ` ${s.target_login || ''}@${s.target_host}`) : null)],
        ['Client', (s) => s.client_addr],
        ['Duration', (s) => fmtDuration(s.duration_us)],
        ['Status', (s) => h(`span.status.status-${s.status}`, s.status)],
        ['Tags', (s) => h('span.tags', (s.tags || []).map((t) => h('span.tag', t)))],
        ['', (s) => h('div.actions',
          h('a.button', { href: `#/sessions/${encodeURIComponent(s.id)}`, dataset: { action: 'open', session: s.id } }, 'Open'),
          s.status === 'active' && ctx.can('auditor')
            ? h('a.button.secondary', { href: `#/live/${encodeURIComponent(s.id)}` }, 'Watch') : null)],
      ], { empty: 'No sessions match.', rowProps: (s) => ({ class: 'session-row', dataset: { session: s.id } }) }),
    );
  }).catch((e) => { if (ctx.isCurrent()) clear(list).append(errorBox(e)); }));
  await Promise.all(jobs);
  return null;
}

// Sessions a search could match whose index is not complete: named, never silently left out.
function unindexedBanner(gaps, total) {
  if (!gaps || gaps.length === 0) return null;
  const count = Math.max(total || 0, gaps.length);
  const progress = (g) => {
    if (g.state === 'error') return `not indexed: ${g.error || 'error'}`;
    if (g.state === 'rebuilding') return 'output stored before the upgrade not searchable yet';
    if (g.bytes_recorded) return `${Math.floor((100 * g.bytes_indexed) / Math.max(1, g.bytes_recorded))}% indexed`;
    return 'indexing';
  };
  return h('div.banner.dropped', { id: 'search-unindexed' },
    `${count} session${count === 1 ? ' is' : 's are'} not fully indexed yet; matches there may be missing: `,
    ...gaps.slice(0, 20).flatMap((g, i) => [
      i ? ', ' : '',
      h('a', { href: `#/sessions/${encodeURIComponent(g.session)}`, dataset: { session: g.session } },
        `${g.user}@${g.target} (${g.session_status}, ${progress(g)})`),
    ]),
    count > 20 ? ` and ${count - 20} more` : '');
}
