// Session detail (#/sessions/{id}?at_us=N): metadata, verify result, channels, transfers, and
// the player with its command list. The detail request is what the server audits as
// `session_viewed` and is where it verifies the recording.

import { get, post, del } from './api.js';
import { h, clear, fmtDuration, fmtTime, fmtOffset, table, errorBox } from './dom.js';
import { Player } from './player.js';

const SPEEDS = [0.5, 1, 2, 4, 8, 16];

/** A table over objects whose fields the API may extend: one column per key seen. */
/** A statement outcome's class: `failed` (an ERROR), `refused` (by keepwatch) or `ok`. */
function outcomeClass(outcome) {
  if (!outcome) return 'failed';
  if (outcome.startsWith('ERROR') || outcome.startsWith('no result')) return 'failed';
  if (outcome.startsWith('refused by keepwatch')) return 'refused';
  return 'ok';
}

function genericTable(rows, { empty, skip = [] } = {}) {
  const keys = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!keys.includes(k) && !skip.includes(k)) keys.push(k);
  return table(rows, keys.map((k) => [k.replace(/_/g, ' '), (r) => cell(k, r[k])]), { empty });
}

function cell(key, v) {
  if (v === null || v === undefined) return h('span.muted', '—');
  if (key.endsWith('_us') && typeof v === 'number') return fmtOffset(v);
  if ((key.endsWith('_at') || key === 'at') && typeof v === 'string') return fmtTime(v);
  if (key === 'sha256' && typeof v === 'string') return h('code.hash', { title: v }, v.slice(0, 16), '…');
  if (typeof v === 'object') return h('code', JSON.stringify(v));
  return String(v);
}

/**
 * The session's tags as chips; an auditor or admin removes one with its ×, or adds some
 * (space-separated) with the field beside them. The server checks the tags and audits each
 * change; the chips show what it answers.
 */
function tagEditor(ctx, id, initial) {
  const box = h('span.tags', { id: 'session-tags' });
  const err = h('span.error-inline', { id: 'tag-error' });
  const path = `/sessions/${encodeURIComponent(id)}/tags`;
  const run = async (request) => {
    err.textContent = '';
    try {
      const answer = await request();
      show(answer.tags || []);
    } catch (e) {
      err.textContent = e.message;
    }
  };
  const show = (tags) => {
    clear(box);
    if (!tags.length) box.append(h('span.muted', '—'));
    for (const t of tags) {
      const remove = ctx.can('auditor')
        ? h('button.tag-remove', {
          type: 'button', title: `Remove tag ${t}`, dataset: { action: 'untag', tag: t },
          onclick: () => run(() => del(`${path}/${encodeURIComponent(t)}`)),
        }, '×')
        : null;
      box.append(h('span.tag', { dataset: { tag: t } }, t, remove));
    }
  };
  show(initial);
  if (!ctx.can('auditor')) return box;
  const input = h('input', { id: 'tag-input', name: 'tag', placeholder: 'add tag', autocomplete: 'off' });
  const form = h('form.tag-form', {
    onsubmit: (ev) => {
      ev.preventDefault();
      const tags = input.value.split(/\s+/).filter(Boolean);
      if (!tags.length) return;
      run(() => post(path, { tags })).then(() => { if (!err.textContent) input.value = ''; });
    },
  }, input, h('button.secondary', { type: 'submit', id: 'tag-add' }, 'Add'));
  return h('span', box, form, err);
}

export async function sessionView(main, ctx, id) {
  main.append(h('p.muted', 'Loading session and verifying its recording…'));
  const s = await get(`/sessions/${encodeURIComponent(id)}`);
  if (!ctx.isCurrent()) return null;
  clear(main);

  const verify = s.verify || {};
  // The key the verdict trusts: the console's own. Compare it with the fingerprint written
  // down at `keepwatch init`, kept where the gateway cannot write.
  const keyNote = h('p.muted.key-fingerprint', { id: 'key-fingerprint' },
    `Signing key ${verify.key_fingerprint || 'unknown'}: compare with the fingerprint written down at init; `,
    h('code', 'keepwatch verify --fingerprint'), ' checks against it.');
  const verifyBox = verify.intact
    ? h('div.verify.ok', { id: 'verify', dataset: { intact: 'true' } }, '✔ Recording intact: hash chain and signatures verified.', keyNote)
    : h('div.verify.bad', { id: 'verify', dataset: { intact: 'false' } },
      h('strong', '✘ Recording failed verification'),
      h('ul', (verify.problems || ['no verify result']).map((p) => h('li', p))), keyNote);

  const meta = h('dl.meta', [
    ['Person', s.user], ['Target', s.target],
    ['Target login', s.target_login && s.target_host ? `${s.target_login}@${s.target_host}` : ''],
    s.stated_reason ? ['Why opened', h('span.stated-reason', s.stated_reason)] : null,
    ['Client', s.client_addr], ['Started', fmtTime(s.started_at)], ['Ended', fmtTime(s.ended_at) || '—'],
    ['Duration', fmtDuration(s.duration_us)], ['Status', h(`span.status.status-${s.status}`, s.status)],
    s.reason ? ['Why it ended', s.reason] : null,
    ['Tags', tagEditor(ctx, id, s.tags || [])],
  ].filter(Boolean).map(([k, v]) => [h('dt', k), h('dd', v)]));

  const actions = h('div.actions',
    s.status === 'active' && ctx.can('auditor') ? h('a.button', { href: `#/live/${encodeURIComponent(id)}` }, 'Watch live') : null,
    ctx.can('auditor') ? h('a.button.secondary', { href: `/api/v1/sessions/${encodeURIComponent(id)}/export`, download: `${id}.cast` }, 'Export asciicast') : null,
    h('a.button.secondary', { href: '#/sessions' }, 'All sessions'));

  const allCommands = (s.commands || []).slice().sort((a, b) => a.offset_us - b.offset_us);
  let commands = allCommands;
  const ttys = (s.channels || []).filter((c) => c.pty_term);

  // Player
  const termBox = h('div.term-box.player-term');
  const playBtn = h('button.primary', { type: 'button', id: 'play', title: 'Play/pause (space)' }, 'Play');
  const prevBtn = h('button.secondary', { type: 'button', id: 'prev-cmd', title: 'Previous command (p)' }, '‹ Prev');
  const nextBtn = h('button.secondary', { type: 'button', id: 'next-cmd', title: 'Next command (n)' }, 'Next ›');
  const speed = h('select', { id: 'speed', title: 'Speed ([ and ])' }, SPEEDS.map((v) => h('option', { value: v, selected: v === 1 }, `${v}×`)));
  const skipIdle = h('input', { type: 'checkbox', id: 'skip-idle', checked: true });
  const clock = h('span.clock', { id: 'clock' }, '0:00.0');
  const fill = h('div.seek-fill');
  const head = h('div.seek-head');
  const markers = h('div.seek-markers');
  const seekbar = h('div.seekbar', { id: 'seekbar', tabIndex: 0, role: 'slider', 'aria-label': 'Seek' }, fill, markers, head);
  const seekInfo = h('span.muted.seek-info', { id: 'seek-info' });
  const cmdList = h('ol.cmd-list', { id: 'cmd-list' });
  const cmdTitle = h('h3', { id: 'cmd-title' });
  const channelSel = ttys.length > 1
    ? h('select', { id: 'channel', title: 'Terminal channel' }, ttys.map((c) => h('option', { value: c.channel }, `channel ${c.channel}`)))
    : null;
  const playerErr = h('div');

  main.append(
    h('div.page-head', h('h1', 'Session ', h('code', id)), actions),
    verifyBox,
    h('div.detail-grid', meta),
    h('section.player', { id: 'player' },
      h('div.player-bar', prevBtn, playBtn, nextBtn, clock,
        channelSel ? h('label.inline', 'Terminal ', channelSel) : null,
        h('label.inline', 'Speed ', speed), h('label.inline', skipIdle, ' skip idle'), seekInfo),
      seekbar,
      playerErr,
      h('div.player-main', termBox, h('aside.cmd-pane', cmdTitle, cmdList)),
      h('p.muted.keys', 'Keys: space play/pause · ←/→ 5 s · [ ] speed · n/p next/previous command')),
    h('h2', 'Channels'),
    genericTable(s.channels || [], { empty: 'No channels.' }),
    h('h2', 'File transfers'),
    genericTable(s.transfers || [], { empty: 'No file transfers.' }),
  );

  let player = null;
  let currentIdx = -1;
  let cmdItems = [];
  /** The command list and seek-bar markers for the commands of the channel being played. */
  const showCommands = () => {
    const mine = allCommands.filter((c) => String(c.channel) === String(player.channel));
    commands = mine.length ? mine : allCommands;
    currentIdx = -1;
    // A database session's commands are its statements: a timeline with each outcome.
    const sql = commands.length > 0 && commands.every((c) => c.kind === 'sql');
    cmdTitle.textContent = `${sql ? 'Statements' : 'Commands'} (${commands.length})`;
    cmdItems = commands.map((c, i) => h('li', {
      dataset: { seq: c.seq, offset: c.offset_us, idx: i },
      onclick: () => player && player.seek(c.offset_us),
    }, h('span.cmd-time', fmtOffset(c.offset_us)), ' ', h('code.cmd', c.command || '(empty)'),
    ...(sql ? [' ', h(`span.outcome.${outcomeClass(c.outcome)}`, c.outcome || 'no result')] : [])));
    clear(cmdList);
    if (cmdItems.length) cmdList.append(...cmdItems);
    else cmdList.append(h('li.muted', 'No commands were extracted from this session.'));
    clear(markers);
    const d = player.duration || 1;
    for (const c of commands) {
      const m = h(`span.marker${sql ? `.${outcomeClass(c.outcome)}` : ''}`, { title: `${fmtOffset(c.offset_us)} ${c.command || ''}${sql ? ` → ${c.outcome || 'no result'}` : ''}` });
      m.style.left = `${Math.min(100, (c.offset_us / d) * 100)}%`;
      markers.append(m);
    }
  };

  const update = () => {
    if (!player) return;
    const d = player.duration || 1;
    const pct = Math.min(100, (player.pos / d) * 100);
    fill.style.width = `${pct}%`;
    head.style.left = `${pct}%`;
    clock.textContent = `${fmtOffset(player.pos)} / ${fmtOffset(player.duration)}`;
    playBtn.textContent = player.playing ? 'Pause' : 'Play';
    seekbar.setAttribute('aria-valuenow', String(Math.round(player.pos)));
    if (player.lastSeekMs !== null) seekInfo.textContent = `seek ${player.lastSeekMs.toFixed(0)} ms`;
    let idx = -1;
    for (let i = 0; i < commands.length && commands[i].offset_us <= player.pos; i++) idx = i;
    if (idx !== currentIdx) {
      if (cmdItems[currentIdx]) cmdItems[currentIdx].classList.remove('current');
      currentIdx = idx;
      if (cmdItems[idx]) {
        cmdItems[idx].classList.add('current');
        cmdItems[idx].scrollIntoView({ block: 'nearest' });
      }
      cmdList.dataset.current = idx >= 0 ? String(commands[idx].seq) : '';
    }
    termBox.dataset.pos = String(Math.round(player.pos));
  };

  const seekFromPointer = (ev) => {
    const r = seekbar.getBoundingClientRect();
    const frac = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
    player.seek(frac * player.duration);
  };
  let dragging = false;
  seekbar.addEventListener('pointerdown', (ev) => {
    if (!player) return;
    dragging = true;
    seekbar.setPointerCapture(ev.pointerId);
    seekFromPointer(ev);
  });
  seekbar.addEventListener('pointermove', (ev) => { if (dragging) seekFromPointer(ev); });
  seekbar.addEventListener('pointerup', () => { dragging = false; });

  const jumpCommand = (dir) => {
    if (!player || !commands.length) return;
    if (dir > 0) {
      const c = commands.find((x) => x.offset_us > player.pos + 1000);
      if (c) player.seek(c.offset_us);
    } else {
      // Within 1 s after a command's start, "previous" goes to the one before it.
      const before = commands.filter((x) => x.offset_us < player.pos - 1e6);
      player.seek(before.length ? before[before.length - 1].offset_us : 0);
    }
  };
  playBtn.addEventListener('click', () => player && player.toggle());
  prevBtn.addEventListener('click', () => jumpCommand(-1));
  nextBtn.addEventListener('click', () => jumpCommand(1));
  speed.addEventListener('change', () => { if (player) player.speed = Number(speed.value); });
  skipIdle.addEventListener('change', () => { if (player) player.skipIdle = skipIdle.checked; });
  const setSpeed = (delta) => {
    const i = Math.min(SPEEDS.length - 1, Math.max(0, SPEEDS.indexOf(Number(speed.value)) + delta));
    speed.value = String(SPEEDS[i]);
    speed.dispatchEvent(new Event('change'));
  };
  const onKey = (ev) => {
    if (!player || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = (ev.target && ev.target.tagName) || '';
    if (['INPUT', 'TEXTAREA', 'SELECT'].includes(tag) || document.querySelector('dialog[open]')) return;
    switch (ev.key) {
      case ' ': player.toggle(); break;
      case 'ArrowLeft': player.seek(player.pos - 5e6); break;
      case 'ArrowRight': player.seek(player.pos + 5e6); break;
      case '[': setSpeed(-1); break;
      case ']': setSpeed(1); break;
      case 'n': jumpCommand(1); break;
      case 'p': jumpCommand(-1); break;
      case 'Home': player.seek(0); break;
      case 'End': player.seek(player.duration); break;
      default: return;
    }
    ev.preventDefault();
  };
  document.addEventListener('keydown', onKey);

  const startPlayer = async (channel) => {
    if (player) player.dispose();
    clear(termBox);
    player = new Player(termBox, id, { channel, durationUs: s.duration_us || 0, onChange: update });
    window.keepwatchConsole.player = player;
    await player.open();
    if (channelSel) channelSel.value = String(player.channel);
    showCommands();
  };
  if (channelSel) {
    channelSel.addEventListener('change', () => {
      startPlayer(channelSel.value).then(update).catch((e) => playerErr.append(errorBox(e)));
    });
  }
  try {
    await startPlayer('');
    const at = Number(ctx.params.get('at_us'));
    if (ctx.params.has('at_us') && Number.isFinite(at)) await player.seek(at);
    update();
    termBox.dataset.ready = '1';
  } catch (e) {
    if (!ctx.isCurrent()) {
      // the router disposes of this view through the cleanup below
    } else if (e.status === 404) {
      playerErr.append(h('p.notice', 'This session has no terminal output to replay (see its channels and transfers below).'));
    } else {
      playerErr.append(errorBox(e));
    }
  }
  return () => {
    document.removeEventListener('keydown', onKey);
    player.dispose();
    if (window.keepwatchConsole.player === player) window.keepwatchConsole.player = null;
  };
}
