// Live-view latency benchmark (issue 4), run by bench/console.sh:
//   node web/e2e/latency.mjs live /path/to/keepwatch
//     byte written by the target → parsed into the watching page's xterm buffer, p50/p99, with
//     1 watcher and with 20 (1 measuring page + 19 WebSocket watchers in another page).
//   node web/e2e/latency.mjs seek /path/to/keepwatch DATA_DIR SESSION_ID
//     seek latency in the player (request + reset + keyframe + events, until xterm has parsed
//     it) on a long recording already in DATA_DIR.
// Prints a JSON line per measurement. The target prints `KWM<unix ns>` markers from a shell
// loop; the page takes the time when xterm's write callback fires for the output carrying it
// (same machine, same clock).

import fs from 'node:fs';
import path from 'node:path';
import {
  checkPrerequisites, launchBrowser, startSshd, Gateway, Interactive, login, tempDir, fail, waitFor,
} from './fixtures.mjs';

const [mode, bin, ...rest] = process.argv.slice(2);
if (!['live', 'seek'].includes(mode) || !bin || !fs.existsSync(bin)) {
  fail('usage: latency.mjs live KEEPWATCH_BIN | latency.mjs seek KEEPWATCH_BIN DATA_DIR SESSION_ID');
}
checkPrerequisites();
const AUDITOR = ['bench-auditor', 'bench-pw-5'];
const MARKERS = Number(process.env.KW_MARKERS || 300);
const INTERVAL_S = process.env.KW_INTERVAL || '0.02';

function pct(xs, p) {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const installProbe = (page) => page.evaluate(() => {
  window.kwLat = [];
  window.addEventListener('keepwatch:written', (e) => {
    const re = /KWM(\d{19})/g;
    let m;
    while ((m = re.exec(e.detail.data)) !== null) {
      const sentUs = Number(BigInt(m[1]) / 1000n);
      window.kwLat.push((e.detail.at * 1000 - sentUs) / 1000);
    }
  });
});

async function live() {
  const dir = tempDir('kw-lat-');
  const sshd = await startSshd(dir);
  const gw = new Gateway(bin, dir);
  gw.kw(['init']);
  const key = gw.addPerson('alice', 'user', 'alice-pw-9');
  gw.addPerson(AUDITOR[0], 'auditor', AUDITOR[1]);
  gw.addTarget('web01', sshd);
  gw.kw(['grant', 'alice', 'web01']);
  await gw.start();
  const browser = await launchBrowser();
  const ssh = new Interactive(gw, 'alice@web01', key);
  try {
    ssh.send('echo bench-ready-$((1+1))\n');
    await ssh.waitOutput('bench-ready-2');
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    const page = await ctx.newPage();
    await login(page, gw.base, ...AUDITOR);
    await page.goto(`${gw.base}/#/live`);
    const row = await page.waitForSelector('#live-table tr[data-user="alice"]');
    const id = await row.getAttribute('data-session');
    await page.goto(`${gw.base}/#/live/${id}`);
    await page.waitForSelector('.term-box[data-ready]');
    await installProbe(page);

    const run = async (watchers) => {
      await page.evaluate(() => { window.kwLat = []; });
      let other = null;
      if (watchers > 1) {
        other = await ctx.newPage();
        await other.goto(`${gw.base}/#/sessions`);
        await other.evaluate(({ sid, n }) => new Promise((resolve, reject) => {
          window.kwSockets = [];
          let open = 0;
          for (let i = 0; i < n; i++) {
            const ws = new WebSocket(`ws://${location.host}/api/v1/sessions/${sid}/watch`);
            ws.onmessage = () => {};
            ws.onopen = () => { if (++open === n) resolve(); };
            ws.onerror = () => reject(new Error('watch socket failed'));
            window.kwSockets.push(ws);
          }
        }), { sid: id, n: watchers - 1 });
      }
      const done = `bench-done-${watchers}-$((2*3))`;
      ssh.send(`for i in $(seq 1 ${MARKERS}); do echo "KWM$(date +%s%N)"; sleep ${INTERVAL_S}; done; echo ${done}\n`);
      await ssh.waitOutput(`bench-done-${watchers}-6`, 120000);
      await waitFor('the page to receive every marker', () => page.evaluate((n) => window.kwLat.length >= n, MARKERS), 20000);
      const lat = await page.evaluate(() => window.kwLat);
      if (other) await other.close();
      if (process.env.KW_DEBUG) console.error(JSON.stringify(lat.map((x, i) => [i, +x.toFixed(1)]).filter(([, x]) => x > 50)));
      const r = { measurement: 'live', watchers, markers: lat.length, p50_ms: +pct(lat, 50).toFixed(2), p99_ms: +pct(lat, 99).toFixed(2), max_ms: +Math.max(...lat).toFixed(2) };
      console.log(JSON.stringify(r));
      return r;
    };
    await run(1);
    await run(20);
  } finally {
    ssh.kill();
    await browser.close();
    gw.stop();
    sshd.stop();
  }
}

async function seek() {
  const [dataDir, sessionId] = rest;
  if (!dataDir || !sessionId) fail('seek mode needs DATA_DIR SESSION_ID');
  const dir = tempDir('kw-seek-');
  const gw = new Gateway(bin, dir);
  gw.data = path.resolve(dataDir);
  try {
    gw.addPerson(AUDITOR[0], 'auditor', AUDITOR[1]);
  } catch (e) {
    if (!/exists/i.test(e.message)) throw e;
  }
  await gw.start();
  const browser = await launchBrowser();
  try {
    const page = await (await browser.newContext({ viewport: { width: 1200, height: 800 } })).newPage();
    await login(page, gw.base, ...AUDITOR);
    await page.goto(`${gw.base}/#/sessions/${sessionId}`);
    await page.waitForSelector('.player-term[data-ready]', { timeout: 120000 });
    const duration = await page.evaluate(() => window.keepwatchConsole.player.duration);
    const n = Number(process.env.KW_SEEKS || 40);
    const times = await page.evaluate(async ({ duration, n }) => {
      const p = window.keepwatchConsole.player;
      const out = [];
      let x = 0.5;
      for (let i = 0; i < n; i++) {
        x = (x * 9301 + 0.49297) % 1; // deterministic spread over the whole recording
        p.lastFetchMs = null;
        out.push([await p.seek(Math.floor(x * duration)), p.lastFetchMs]);
      }
      return out;
    }, { duration, n });
    const total = times.map((x) => x[0]);
    const fetchMs = times.map((x) => x[1]).filter((x) => x !== null);
    console.log(JSON.stringify({
      measurement: 'seek', duration_s: Math.round(duration / 1e6), seeks: total.length,
      p50_ms: +pct(total, 50).toFixed(1), p99_ms: +pct(total, 99).toFixed(1), max_ms: +Math.max(...total).toFixed(1),
      fetch_p50_ms: +pct(fetchMs, 50).toFixed(1), fetch_p99_ms: +pct(fetchMs, 99).toFixed(1),
    }));
  } finally {
    await browser.close();
    gw.stop();
  }
}

if (mode === 'live') await live(); else await seek();
process.exit(0);
