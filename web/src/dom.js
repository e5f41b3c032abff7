// Small DOM helpers: elements are built with classes and properties only (the console runs
// under a strict Content-Security-Policy: no inline style or script, no HTML from strings).

import { ApiError } from './api.js';

/** h('div.a.b', {onclick: f, title: 'x'}, child, 'text', [more]) */
export function h(spec, props, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.classList.add(...classes);
  if (props !== null && props !== undefined
    && (typeof props !== 'object' || props instanceof Node || Array.isArray(props))) {
    children.unshift(props); // h('td', 0) shows "0"
    props = null;
  }
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.classList.add(...String(v).split(/\s+/).filter(Boolean));
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && k !== 'list' && k !== 'form') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** "1h 02m 03s" from microseconds. */
export function fmtDuration(us) {
  if (us === null || us === undefined) return '';
  let s = Math.max(0, Math.floor(us / 1e6));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  s %= 60;
  if (h) return `${h}h ${String(m).padStart(2, '0')}m ${String(s).padStart(2, '0')}s`;
  if (m) return `${m}m ${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}

/** "12:03.4" (a position inside a recording) from microseconds. */
export function fmtOffset(us) {
  const t = Math.max(0, us) / 1e6;
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = (t % 60).toFixed(1).padStart(4, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

export function fmtTime(rfc3339) {
  if (!rfc3339) return '';
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

/** A table from rows and [header, cell(row)] columns; empty text when there are no rows. */
export function table(rows, columns, { empty = 'Nothing to show.', rowProps } = {}) {
  if (!rows.length) return h('p.muted.empty', empty);
  return h('table.grid',
    h('thead', h('tr', columns.map(([name]) => h('th', name)))),
    h('tbody', rows.map((r) => h('tr', rowProps ? rowProps(r) : null,
      columns.map(([, cell]) => h('td', cell(r)))))));
}

/** The text of a search snippet with «marks» turned into <mark> elements. */
export function snippet(text) {
  const out = [];
  const re = /«([^»]*)»/g;
  let last = 0;
  let m;
  while ((m = re.exec(text || '')) !== null) {
    out.push(text.slice(last, m.index), h('mark', m[1]));
    last = re.lastIndex;
  }
  out.push((text || '').slice(last));
  return out;
}

/** An alert box for a failed request, worded by status. */
export function errorBox(e) {
  const status = e instanceof ApiError ? e.status : 0;
  const text = status === 403
    ? 'Your role may not see this.'
    : status === 404
      ? 'Not found (or not yours to see).'
      : e.message || String(e);
  return h('div.error', { role: 'alert', dataset: { status: String(status) } }, text);
}
