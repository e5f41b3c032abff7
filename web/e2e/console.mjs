// End-to-end test of the web console (issue 4) in headless Debian Chromium driven by
// playwright-core, against the real keepwatch binary, a real sshd target and a real `ssh`
// client typing. Run by scripts/e2e.sh: `node web/e2e/console.mjs /path/to/keepwatch`.
//
// An auditor logs in, sees the live session, watches typed output appear, searches a command,
// opens the replay at the hit and seeks, terminates the session (the ssh client receives the
// message and exits), and the audit page shows each step. A `user` cannot reach another
// person's session. Screenshots of each page go to web/e2e/artifacts/.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  checkPrerequisites, launchBrowser, startSshd, Gateway, Interactive, login, waitFor, tempDir, fail,
} from './fixtures.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const artifacts = path.join(here, 'artifacts');
const bin = process.argv[2] || process.env.KEEPWATCH_BIN;
if (!bin || !fs.existsSync(bin)) fail(`no keepwatch binary at ${bin}: build it with \`cargo build -p keepwatch\` and pass its path (scripts/e2e.sh does)`);
checkPrerequisites();
fs.mkdirSync(artifacts, { recursive: true });

const AUDITOR = ['audra', 'audra-pw-31'];
const BOB = ['bob', 'bob-pw-77'];
const ADMIN = ['ada', 'ada-pw-13'];
const REASON = 'e2e: suspicious activity';
// The PostgreSQL the statement timeline's session goes to (scripts/test.sh checks it is up).
const PG_HOST = process.env.KEEPWATCH_E2E_PG_HOST || '127.0.0.1';
const PG_PORT = process.env.KEEPWATCH_E2E_PG_PORT || '5432';

const dir = tempDir('kw-e2e-');
const sshd = await startSshd(dir);
const gw = new Gateway(bin, dir);
let browser = null;
let ssh = null;
let passed = 0;
let current = null;

async function cleanup() {
  if (ssh) ssh.kill();
  if (browser) await browser.close().catch(() => {});
  gw.stop();
  sshd.stop();
}

async function step(name, f) {
  const t0 = Date.now();
  try {
    await f();
    passed++;
    console.log(`ok ${passed} - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    console.log(`not ok - ${name}: ${e.message}`);
    if (current) await current.screenshot({ path: path.join(artifacts, 'failure.png'), fullPage: true }).catch(() => {});
    console.log('--- gateway log (tail) ---');
    console.log(gw.log.split('\n').slice(-40).join('\n'));
    if (ssh) console.log(`--- ssh stdout (tail) ---\n${ssh.out.slice(-2000)}\n--- ssh stderr ---\n${ssh.err}`);
    console.log(`console: ${passed} passed, 1 failed`);
    await cleanup();
    process.exit(1);
  }
}

/** Saves a screenshot, and fails when the page shows a JavaScript placeholder. */
async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
  const text = await page.evaluate(() => document.body.innerText);
  const bad = /\b(undefined|null|NaN|\[object Object\])\b/.exec(text);
  if (bad) throw new Error(`page ${name} shows ${JSON.stringify(bad[0])}: ${text.slice(Math.max(0, bad.index - 80), bad.index + 40)}`);
}
const termText = (page) => page.evaluate(() => (window.keepwatchConsole ? window.keepwatchConsole.terminalText() : ''));
const waitTerm = (page, needle, timeout = 15000) => page.waitForFunction(
  (n) => window.keepwatchConsole && window.keepwatchConsole.terminalText().includes(n), needle, { timeout, polling: 50 },
);

let aliceKey;
let sessionId;
let auditor;

await step('set up: data dir, people (alice user, audra auditor, bob user), target, grant; gateway running', async () => {
  gw.kw(['init']);
  // Tiny replay pages, so the player has to follow the server's pages (issue 10).
  const toml = path.join(gw.data, 'keepwatch.toml');
  const cfg = fs.readFileSync(toml, 'utf8');
  if (!cfg.includes('replay_max_events = 20000')) throw new Error('keepwatch.toml has no replay_max_events to lower');
  fs.writeFileSync(toml, cfg.replace('replay_max_events = 20000', 'replay_max_events = 4'));
  aliceKey = gw.addPerson('alice', 'user', 'alice-pw-9');
  gw.addPerson(BOB[0], 'user', BOB[1]);
  gw.addPerson(AUDITOR[0], 'auditor', AUDITOR[1]);
  gw.addPerson(ADMIN[0], 'admin', ADMIN[1]);
  gw.addTarget('web01', sshd);
  gw.kw(['grant', 'alice', 'web01']);
  // A database target: the machine's PostgreSQL (trust auth, so the vaulted password is not
  // asked for), reached by the PostgreSQL front end.
  gw.kw(['target', 'add', 'pgdb', '--protocol', 'postgres', '--host', PG_HOST, '--port', PG_PORT, '--login', 'postgres',
    '--password-stdin', '--database', 'postgres', '--tls', 'require'], 'unused-under-trust');
  gw.kw(['grant', 'alice', 'pgdb']);
  await gw.start();
});

await step('alice opens a shell through the gateway with a real ssh client', async () => {
  ssh = new Interactive(gw, 'alice@web01', aliceKey);
  ssh.send('echo ready-$((20+1))\n');
  await ssh.waitOutput('ready-21');
});

browser = await launchBrowser();

await step('the auditor logs in and sees the live session (person, target, client, last command)', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  auditor = await ctx.newPage();
  current = auditor;
  auditor.on('pageerror', (e) => console.log(`  page error: ${e.message}`));
  await login(auditor, gw.base, ...AUDITOR);
  await auditor.goto(`${gw.base}/#/live`);
  const row = await auditor.waitForSelector('#live-table tr[data-user="alice"][data-target="web01"]', { timeout: 10000 });
  sessionId = await row.getAttribute('data-session');
  if (!sessionId) throw new Error('the live row has no session id');
  // The list updates without a reload: the duration keeps moving.
  const d0 = await auditor.textContent(`#live-table tr[data-session="${sessionId}"] .duration`);
  await auditor.waitForFunction(([id, d]) => {
    const el = document.querySelector(`#live-table tr[data-session="${id}"] .duration`);
    return el && el.textContent !== d;
  }, [sessionId, d0], { timeout: 5000 });
  await shot(auditor, '1-live');
});

await step('watch: the current screen, then typed output appears in the terminal', async () => {
  await auditor.click(`#live-table tr[data-session="${sessionId}"] [data-action="watch"]`);
  await auditor.waitForSelector('.term-box[data-ready]', { timeout: 10000 });
  await waitTerm(auditor, 'ready-21'); // the screen as it was before we watched
  const t0 = Date.now();
  ssh.send('echo typed-$((6*7))-by-alice\n');
  await waitTerm(auditor, 'typed-42-by-alice');
  console.log(`  typed output reached the watch view in ${Date.now() - t0} ms`);
  await shot(auditor, '2-watch');
});

let bobPage;
await step("a user (bob) cannot watch alice's live session: the WebSocket is refused, nothing arrives", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  bobPage = await ctx.newPage();
  current = bobPage;
  await login(bobPage, gw.base, ...BOB);
  const r = await bobPage.evaluate((id) => new Promise((resolve) => {
    const ws = new WebSocket(`ws://${location.host}/api/v1/sessions/${id}/watch`);
    const got = [];
    ws.onmessage = (e) => got.push(String(e.data));
    ws.onclose = () => resolve({ opened: ws.readyState, got });
    ws.onerror = () => {};
  }), sessionId);
  if (r.got.length) throw new Error(`bob's watch socket received ${JSON.stringify(r.got).slice(0, 200)}`);
  await bobPage.goto(`${gw.base}/#/live/${sessionId}`);
  await bobPage.waitForSelector('.error[data-status]', { timeout: 10000 });
  if ((await termText(bobPage)).includes('ready-21')) throw new Error("bob's watch view shows alice's screen");
  await shot(bobPage, '4a-user-watch-denied');
  current = auditor;
});

await step('search finds a command; the hit opens the replay at that moment', async () => {
  ssh.send('printf "needle-%s\\n" kw-e2e-haystack\n');
  await ssh.waitOutput('needle-kw-e2e-haystack');
  // The indexer extracts the command once the next prompt appears; search until it is there.
  await auditor.goto(`${gw.base}/#/sessions?q=kw-e2e-haystack`);
  await waitFor('a search hit for kw-e2e-haystack', async () => {
    await auditor.waitForSelector('#search-results table, #search-results .empty, #search-results .error', { timeout: 10000 });
    if (await auditor.$(`#search-results tr.search-hit[data-session="${sessionId}"]`)) return true;
    // Not indexed yet: search again with the button (the same hash re-runs the route).
    await auditor.evaluate(() => { document.getElementById('search-results').replaceChildren(); });
    await auditor.click('#search-submit');
    return false;
  }, 20000, 300);
  // The session is live, so its index is behind: the results say so, naming it.
  if (!(await auditor.$(`#search-unindexed a[data-session="${sessionId}"]`))) {
    throw new Error('the search results do not name the live session as not fully indexed');
  }
  await shot(auditor, '3-search');
  await auditor.click(`#search-results tr.search-hit[data-session="${sessionId}"] [data-action="open-hit"]`);
  await auditor.waitForSelector('.player-term[data-ready]', { timeout: 15000 });
  if (!/[?&]at_us=\d+/.test(auditor.url())) throw new Error(`the hit did not open the player at a time: ${auditor.url()}`);
  // At the hit: the player stands at the hit's offset, the command list highlights the
  // command, and the screen shows what came before it.
  const at = Number(new URL(auditor.url()).hash.split('at_us=')[1]);
  await auditor.waitForFunction((t) => Number(document.querySelector('.player-term').dataset.pos) === t, at, { timeout: 10000 });
  const currentCmd = await auditor.textContent('#cmd-list li.current');
  if (!currentCmd || !currentCmd.includes('kw-e2e-haystack')) throw new Error(`the command list highlights ${JSON.stringify(currentCmd)}, not the hit`);
  await waitTerm(auditor, 'typed-42-by-alice');
  const verify = await auditor.getAttribute('#verify', 'data-intact');
  console.log(`  verify on open: intact=${verify}`);
  // Issue 9: the console shows the fingerprint of the key its verdict trusts.
  const fp = await auditor.textContent('#key-fingerprint');
  if (!/SHA256:[A-Za-z0-9+/]{43}/.test(fp || '')) throw new Error(`no signing key fingerprint shown: ${JSON.stringify(fp)}`);
  await shot(auditor, '4-replay-at-hit');
});

await step('the player seeks (seek bar, keyboard, next command) and follows the command list', async () => {
  const pos = () => auditor.getAttribute('.player-term', 'data-pos').then(Number);
  // Seek to the very start: the screen shows what was there then, not the later output.
  await auditor.keyboard.press('Home');
  await auditor.waitForFunction(() => Number(document.querySelector('.player-term').dataset.pos) === 0, null, { timeout: 10000 });
  const atStart = await termText(auditor);
  if (atStart.includes('typed-42-by-alice')) throw new Error('after seeking to 0 the terminal still shows later output');
  // Seek bar: a click at 99% goes near the end, where the later output is on screen.
  const box = await (await auditor.$('#seekbar')).boundingBox();
  await auditor.mouse.click(box.x + box.width * 0.99, box.y + box.height / 2);
  await auditor.waitForFunction(() => Number(document.querySelector('.player-term').dataset.pos) > 0, null, { timeout: 10000 });
  await waitTerm(auditor, 'typed-42-by-alice');
  const seekMs = await auditor.evaluate(() => window.keepwatchConsole.player.lastSeekMs);
  console.log(`  seek by click: ${seekMs?.toFixed(1)} ms; position ${(await pos()) / 1e6} s`);
  // n/p walk the command list and highlight the current command.
  await auditor.keyboard.press('Home');
  await auditor.waitForFunction(() => Number(document.querySelector('.player-term').dataset.pos) === 0, null, { timeout: 10000 });
  const commands = await auditor.$$eval('#cmd-list li[data-seq]', (l) => l.length);
  if (commands > 0) {
    await auditor.keyboard.press('n');
    await auditor.waitForSelector('#cmd-list li.current', { timeout: 5000 });
  } else {
    console.log('  (no commands were extracted yet for this live session; n/p not exercised)');
  }
  // Space plays from the start (idle gaps skipped) and pauses.
  await auditor.keyboard.press('Home');
  await auditor.keyboard.press(' ');
  await auditor.waitForFunction(() => document.getElementById('play').textContent === 'Pause', null, { timeout: 5000 });
  await auditor.waitForFunction(() => Number(document.querySelector('.player-term').dataset.pos) > 1e6, null, { timeout: 10000 });
  await auditor.keyboard.press(' ');
  await auditor.waitForFunction(() => document.getElementById('play').textContent === 'Play', null, { timeout: 5000 });
  await auditor.keyboard.press('End');
  await waitTerm(auditor, 'typed-42-by-alice');
  await shot(auditor, '5-replay-seeked');
});

await step('terminate with a reason: the ssh client gets the message and exits', async () => {
  // A second tab keeps watching: it must say the session ended.
  const watcher = await auditor.context().newPage();
  await watcher.goto(`${gw.base}/#/live/${sessionId}`);
  await watcher.waitForSelector('.term-box[data-ready]', { timeout: 10000 });
  await auditor.goto(`${gw.base}/#/live`);
  // The live list shows the last command the person ran.
  await auditor.waitForFunction((id) => {
    const c = document.querySelector(`#live-table tr[data-session="${id}"] code.cmd`);
    return c && c.textContent.includes('kw-e2e-haystack');
  }, sessionId, { timeout: 10000 });
  await shot(auditor, '6a-live-last-command');
  await auditor.click(`#live-table tr[data-session="${sessionId}"] [data-action="terminate"]`);
  await auditor.waitForSelector('#terminate-dialog[open]');
  await auditor.fill('#terminate-reason', REASON);
  await shot(auditor, '6-terminate-dialog');
  await auditor.click('#terminate-confirm');
  await waitFor('the ssh client to exit', () => ssh.exit !== null, 20000);
  const all = ssh.out + ssh.err;
  const want = `keepwatch: session terminated by ${AUDITOR[0]}: ${REASON}`;
  if (!all.includes(want)) throw new Error(`the ssh client did not print ${JSON.stringify(want)}; got ${JSON.stringify(all.slice(-400))}`);
  await auditor.waitForFunction((id) => !document.querySelector(`#live-table tr[data-session="${id}"]`), sessionId, { timeout: 10000 });
  await watcher.waitForSelector('#watch-banner[data-state="ended"]', { timeout: 10000 });
  console.log(`  the watching tab says: ${await watcher.textContent('#watch-banner')}`);
  await shot(watcher, '7a-watch-ended');
  await watcher.close();
  await auditor.goto(`${gw.base}/#/sessions/${sessionId}`);
  await auditor.waitForSelector('.status-terminated', { timeout: 15000 });
  await shot(auditor, '7-session-terminated');
});

await step('the ended session plays to its end across replay pages of 4 events each', async () => {
  await auditor.waitForSelector('.player-term[data-ready]', { timeout: 15000 });
  await auditor.selectOption('#speed', '16').catch(() => {});
  await auditor.keyboard.press('Home');
  await auditor.waitForFunction(() => Number(document.querySelector('.player-term').dataset.pos) === 0, null, { timeout: 10000 });
  await auditor.keyboard.press(' ');
  await auditor.waitForFunction(() => {
    const p = window.keepwatchConsole.player;
    return p.duration > 0 && p.pos >= p.duration && !p.playing;
  }, null, { timeout: 60000, polling: 100 });
  const pages = await auditor.evaluate(() => window.keepwatchConsole.player.pages || 0);
  if (pages < 1) throw new Error('the player never fetched a second page of a window');
  await waitTerm(auditor, 'typed-42-by-alice');
  console.log(`  played to the end following ${pages} more page(s)`);
  await shot(auditor, '7b-replay-played-through-pages');
});

await step('the audit page shows the watch, search, view, replay and kill by the auditor', async () => {
  await auditor.goto(`${gw.base}/#/audit?actor=${AUDITOR[0]}`);
  await auditor.waitForSelector('#audit-list table', { timeout: 10000 });
  const actions = await auditor.$$eval('#audit-list tr.audit-row', (rows) => rows.map((r) => `${r.dataset.action} ${r.dataset.session}`));
  const need = ['session_watched', 'searched', 'session_viewed', 'recording_replayed', 'session_terminated'];
  const missing = need.filter((a) => !actions.some((x) => x.startsWith(`${a} `) && (a === 'searched' || x.endsWith(` ${sessionId}`))));
  if (missing.length) throw new Error(`audit page lacks ${missing.join(', ')}; it shows ${JSON.stringify(actions)}`);
  await shot(auditor, '8-audit');
});

await step('an auditor tags the session on its page and takes a tag off (issue 13)', async () => {
  await auditor.goto(`${gw.base}/#/sessions/${sessionId}`);
  await auditor.waitForSelector('#tag-input', { timeout: 15000 });
  await auditor.fill('#tag-input', 'Incident-7 scratch');
  await auditor.click('#tag-add');
  await auditor.waitForSelector('#session-tags .tag[data-tag="scratch"]', { timeout: 10000 });
  await auditor.click('#session-tags [data-action="untag"][data-tag="scratch"]');
  await auditor.waitForFunction(() => !document.querySelector('#session-tags .tag[data-tag="scratch"]'), null, { timeout: 10000 });
  const tags = await auditor.$$eval('#session-tags .tag', (l) => l.map((t) => t.dataset.tag));
  if (JSON.stringify(tags) !== '["incident-7"]') throw new Error(`the session shows tags ${JSON.stringify(tags)}`);
  await auditor.fill('#tag-input', 'no/spaces allowed?');
  await auditor.click('#tag-add');
  await auditor.waitForFunction(() => /a tag is/.test(document.getElementById('tag-error')?.textContent || ''), null, { timeout: 10000 });
  await shot(auditor, '7c-session-tagged');
});

await step('the session list filters by person, status and time range', async () => {
  const rows = async (q) => {
    // Empty the list first, so the wait below sees this query's answer, not the last one's.
    await auditor.evaluate(() => document.getElementById('session-list')?.replaceChildren());
    await auditor.goto(`${gw.base}/#/sessions?${q}`);
    await auditor.waitForSelector('#session-list table, #session-list .empty, #session-list .error', { timeout: 10000 });
    if (await auditor.$('#session-list .error')) throw new Error(`#/sessions?${q}: ${await auditor.textContent('#session-list .error')}`);
    return auditor.$$eval('#session-list tr.session-row', (l) => l.map((r) => r.dataset.session));
  };
  const hour = 3600e3;
  const since = new Date(Date.now() - hour).toISOString();
  const future = new Date(Date.now() + hour).toISOString();
  const cases = [
    ['user=alice&status=terminated', true],
    [`target=web01&since=${encodeURIComponent(since)}`, true],
    ['user=bob', false],
    ['status=closed', false],
    [`since=${encodeURIComponent(future)}`, false],
    ['tag=incident-7', true],
    ['tag=none-such', false],
  ];
  for (const [q, want] of cases) {
    const got = (await rows(q)).includes(sessionId);
    if (got !== want) throw new Error(`#/sessions?${q} ${want ? 'lacks' : 'shows'} the session`);
  }
  await rows('user=alice&status=terminated');
  await shot(auditor, '8a-sessions-filtered');
});

await step("a user (bob) cannot reach alice's session: API 404/403, nothing shown", async () => {
  const page = bobPage;
  current = page;
  const api = await page.evaluate(async (id) => {
    const out = {};
    for (const p of [`/api/v1/sessions/${id}`, `/api/v1/sessions/${id}/replay`, '/api/v1/live', '/api/v1/audit']) {
      const r = await fetch(p);
      out[p] = { status: r.status, body: await r.text() };
    }
    const list = await (await fetch('/api/v1/sessions')).json();
    out.list = list.map((s) => s.id);
    const answer = await (await fetch('/api/v1/search?q=kw-e2e-haystack')).json();
    out.hits = answer.hits.length;
    out.unindexed = JSON.stringify(answer.not_fully_indexed);
    return out;
  }, sessionId);
  for (const [p, r] of Object.entries(api)) {
    if (p === 'list' || p === 'hits' || p === 'unindexed') continue;
    if (![403, 404].includes(r.status)) throw new Error(`bob got HTTP ${r.status} for ${p}: ${r.body.slice(0, 200)}`);
    if (r.body.includes('kw-e2e-haystack') || r.body.includes('alice')) throw new Error(`bob's ${r.status} for ${p} leaks data: ${r.body.slice(0, 200)}`);
  }
  if (api.list.includes(sessionId)) throw new Error("alice's session is in bob's session list");
  if (api.hits !== 0) throw new Error(`bob's search found ${api.hits} hits in alice's session`);
  if (api.unindexed.includes(sessionId)) throw new Error(`bob's search names alice's live session: ${api.unindexed}`);
  // Nav hides what the role cannot do.
  const navLive = await page.isVisible('#nav a[data-route="live"]');
  const navAudit = await page.isVisible('#nav a[data-route="audit"]');
  if (navLive || navAudit) throw new Error('a user sees the Live/Audit links');
  await page.goto(`${gw.base}/#/sessions/${sessionId}`);
  await page.waitForSelector('.error[data-status]', { timeout: 10000 });
  if (await page.$('.player-term')) throw new Error("a player was shown for alice's session to bob");
  const text = await page.textContent('main');
  if (text.includes('kw-e2e-haystack') || text.includes('web01')) throw new Error(`bob's page shows alice's data: ${text.slice(0, 300)}`);
  await shot(page, '9-user-denied');
  await page.goto(`${gw.base}/#/sessions`);
  await page.waitForSelector('#session-list table, #session-list .empty', { timeout: 10000 });
  await shot(page, '10-user-sessions');
});

await step('an admin adds a person, targets (a host key, or trust on first use ticked: never by default; the password never comes back), a user token for a person, and a grant', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await ctx.newPage();
  current = page;
  await login(page, gw.base, ...ADMIN);
  await page.goto(`${gw.base}/#/admin`);
  await page.waitForSelector('#add-target');
  await page.fill('#add-person input[name="name"]', 'carol');
  await page.selectOption('#add-person select[name="role"]', 'user');
  await page.fill('#add-person input[name="password"]', 'carol-pw-55');
  await page.click('#add-person button[type="submit"]');
  await page.waitForSelector('#admin-people tr.person-row[data-name="carol"]', { timeout: 10000 });
  const secret = 'web02-Secret-9931';
  await page.fill('#add-target input[name="name"]', 'web02');
  await page.fill('#add-target input[name="host"]', '127.0.0.1');
  await page.fill('#add-target input[name="port"]', String(sshd.port));
  await page.fill('#add-target input[name="login"]', 'kwtest');
  await page.fill('#add-target input[name="password"]', secret);
  // Neither a host key nor trust on first use: refused, with what to do.
  await page.click('#add-target button[type="submit"]');
  await page.waitForSelector('#add-target p.error:not(.hidden)', { timeout: 10000 });
  const refusal = await page.textContent('#add-target p.error');
  if (!refusal.includes('needs its host key') || !refusal.includes('trust_on_first_use')) throw new Error(`a target without a host key: ${refusal}`);
  if (await page.$('#admin-targets tr.target-row[data-target="web02"]')) throw new Error('a target without a host key was added');
  await page.fill('#add-target input[name="host_key"]', `${sshd.hostKeyLine} comment`);
  await page.click('#add-target button[type="submit"]');
  await page.waitForSelector('#admin-targets tr.target-row[data-target="web02"]', { timeout: 10000 });
  const pinned = await page.evaluate(async () => (await (await fetch('/api/v1/targets')).json()).find((t) => t.name === 'web02'));
  if (pinned.host_key !== sshd.hostKeyLine || pinned.trust_on_first_use) throw new Error(`web02 is not pinned to its key: ${JSON.stringify(pinned)}`);
  // Or trust on first use, chosen explicitly.
  await page.fill('#add-target input[name="name"]', 'web03');
  await page.fill('#add-target input[name="host"]', '127.0.0.1');
  await page.fill('#add-target input[name="port"]', String(sshd.port));
  await page.fill('#add-target input[name="login"]', 'kwtest');
  await page.fill('#add-target input[name="password"]', secret);
  await page.fill('#add-target input[name="host_key"]', '');
  await page.check('#add-target input[name="trust_on_first_use"]');
  await page.click('#add-target button[type="submit"]');
  await page.waitForSelector('#admin-targets tr.target-row[data-target="web03"]', { timeout: 10000 });
  // A user token acts for a person: refused without one, made with one.
  await page.fill('#create-token input[name="name"]', 'carol-ci');
  await page.selectOption('#create-token select[name="role"]', 'user');
  await page.click('#create-token button[type="submit"]');
  await page.waitForSelector('#create-token p.error:not(.hidden)', { timeout: 10000 });
  await page.selectOption('#create-token select[name="person"]', 'carol');
  await page.click('#create-token button[type="submit"]');
  await page.waitForSelector('#create-token p.notice:not(.hidden)', { timeout: 10000 });
  const tokenNote = await page.textContent('#create-token p.notice');
  const token = tokenNote.match(/kw_[0-9a-f]+/)?.[0];
  if (!token) throw new Error(`no token shown: ${tokenNote}`);
  const seen = await page.evaluate(async (t) => (await fetch('/api/v1/sessions', { headers: { Authorization: `Bearer ${t}` }, credentials: 'omit' })).json(), token);
  if (seen.some((s) => s.user !== 'carol')) throw new Error(`carol's token sees others' sessions: ${JSON.stringify(seen).slice(0, 300)}`);
  await page.selectOption('#add-grant select[name="user"]', 'carol');
  await page.selectOption('#add-grant select[name="target"]', 'web02');
  await page.click('#add-grant button[type="submit"]');
  await page.waitForSelector('#admin-grants tr.grant-row[data-user="carol"][data-target="web02"]', { timeout: 10000 });
  const html = await page.content();
  const api = await page.evaluate(async () => (await fetch('/api/v1/targets')).text());
  if (html.includes(secret) || api.includes(secret)) throw new Error('the target password came back from the server');
  await shot(page, '11-admin');
  // An auditor sees no Admin link and the API refuses it.
  const st = await auditor.evaluate(async () => (await fetch('/api/v1/people')).status);
  if (st !== 403) throw new Error(`an auditor got HTTP ${st} for /api/v1/people`);
  if (await auditor.isVisible('#nav a[data-route="admin"]')) throw new Error('an auditor sees the Admin link');
});

await step('a database session: its statements form a timeline with outcomes, and a search hit opens the replay at the statement', async () => {
  current = auditor;
  const conn = `host=127.0.0.1 port=${gw.pgPort} user=alice@pgdb dbname=postgres sslmode=require connect_timeout=10`;
  const r = spawnSync('psql', [conn, '-X', '-At', '-c', "SELECT 'kw-e2e-sql-' || 40 + 2", '-c', 'SELECT * FROM kw_e2e_no_such_table'], {
    encoding: 'utf8', env: { ...process.env, PGPASSWORD: 'alice-pw-9' },
  });
  if (r.error) throw new Error(`cannot run psql: ${r.error.message} (apt-get install postgresql-client; scripts/test.sh does)`);
  if (!r.stdout.includes('kw-e2e-sql-42')) {
    throw new Error(`psql through the gateway failed (is PostgreSQL up on ${PG_HOST}:${PG_PORT}? pg_ctlcluster 15 main start): ${r.stdout}${r.stderr}`);
  }
  await auditor.goto(`${gw.base}/#/sessions?q=kw-e2e-sql`);
  await waitFor('a search hit for the statement', async () => {
    await auditor.waitForSelector('#search-results table, #search-results .empty, #search-results .error', { timeout: 10000 });
    if (await auditor.$('#search-results tr.search-hit [data-action="open-hit"]')) return true;
    await auditor.evaluate(() => { document.getElementById('search-results').replaceChildren(); });
    await auditor.click('#search-submit');
    return false;
  }, 20000, 300);
  await auditor.click('#search-results tr.search-hit [data-action="open-hit"]');
  await auditor.waitForSelector('.player-term[data-ready]', { timeout: 15000 });
  const title = await auditor.textContent('#cmd-title');
  if (!/Statements \(2\)/.test(title || '')) throw new Error(`the list is titled ${JSON.stringify(title)}, not a timeline of 2 statements`);
  const currentCmd = await auditor.textContent('#cmd-list li.current');
  if (!currentCmd || !currentCmd.includes('kw-e2e-sql-')) throw new Error(`the timeline highlights ${JSON.stringify(currentCmd)}, not the hit`);
  const ok = await auditor.textContent('#cmd-list li .outcome.ok');
  const failed = await auditor.textContent('#cmd-list li .outcome.failed');
  if (ok !== 'SELECT 1') throw new Error(`the first statement's outcome shows ${JSON.stringify(ok)}`);
  if (!failed || !failed.startsWith('ERROR 42P01')) throw new Error(`the failed statement's outcome shows ${JSON.stringify(failed)}`);
  if (await auditor.$$eval('.seek-markers .marker.failed', (m) => m.length) !== 1) throw new Error('no red marker for the failed statement');
  await waitTerm(auditor, "=> SELECT 'kw-e2e-sql-'").catch(async (e) => {
    throw new Error(`${e.message}; the terminal shows ${JSON.stringify((await termText(auditor)).slice(-400))}`);
  });
  await shot(auditor, '12-statements');
});

await step("the Report link opens the report of the period picked beside it, with its charts", async () => {
  await auditor.goto(`${gw.base}/#/sessions`);
  await auditor.waitForSelector('#report-period:not(.hidden)', { timeout: 10000 });
  await auditor.selectOption('#report-period', '7d');
  const href = await auditor.getAttribute('#report-link', 'href');
  if (href !== '/api/v1/report?format=html&since=7d') throw new Error(`the Report link is ${href}`);
  const report = await auditor.context().newPage();
  await report.goto(`${gw.base}${href}`);
  await report.waitForSelector('svg', { timeout: 10000 });
  const text = (await report.textContent('body')) || '';
  const from = text.match(/started from (\d{4}-\d{2}-\d{2})T/);
  const days = from ? (Date.now() - Date.parse(`${from[1]}T00:00:00Z`)) / 86400e3 : NaN;
  if (!(days >= 7 && days < 8)) throw new Error(`the report covers ${from && from[1]}, not the last 7 days: ${text.slice(0, 200)}`);
  await shot(report, '12-report-7d');
  await report.close();
  if (await bobPage.isVisible('#report-period')) throw new Error('a user sees the report period picker');
});

await step('a verify round that finds a damaged recording raises a banner for the auditor', async () => {
  if (await auditor.isVisible('#verify-alert')) throw new Error('the verify banner shows before any problem');
  const file = path.join(gw.data, 'recordings', `${sessionId}.kwr`);
  const bytes = fs.readFileSync(file);
  bytes[Math.floor(bytes.length / 2)] ^= 1;
  fs.writeFileSync(file, bytes);
  const r = spawnSync(gw.bin, ['--data-dir', gw.data, 'verify', '--all'], { encoding: 'utf8' });
  if (r.status !== 1) throw new Error(`verify --all exited ${r.status}, not 1: ${r.stdout}${r.stderr}`);
  await auditor.reload();
  await auditor.waitForSelector('#verify-alert:not(.hidden)', { timeout: 10000 });
  const text = await auditor.textContent('#verify-alert');
  if (!/[1-9]\d* problem\(s\)/.test(text || '')) throw new Error(`the banner says ${JSON.stringify(text)}`);
  await shot(auditor, '13-verify-alert');
});

console.log(`console: ${passed} passed, 0 failed`);
await cleanup();
process.exit(0);
