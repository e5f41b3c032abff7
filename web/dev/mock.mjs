// A stand-in API (docs/api.md shapes, fake data) for working on the console without the
// backend: `node web/dev/mock.mjs [port]`, then open http://127.0.0.1:PORT/ (login with any
// name; the name "user" gets the user role). Serves web/src and the xterm files with the same
// strict Content-Security-Policy as the real server. No WebSocket: the watch view shows a
// closed stream here.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const web = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const vendor = {
  '/vendor/xterm.mjs': 'node_modules/@xterm/xterm/lib/xterm.mjs',
  '/vendor/xterm.css': 'node_modules/@xterm/xterm/css/xterm.css',
  '/vendor/addon-webgl.mjs': 'node_modules/@xterm/addon-webgl/lib/addon-webgl.mjs',
};
const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css' };
const CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

const now = Date.now();
const iso = (ms) => new Date(ms).toISOString();
const DUR = 600e6;
const commands = [];
const events = [];
for (let i = 0, t = 0; t < DUR; i++) {
  const cmd = ['ls -la /etc', 'systemctl restart nginx', 'tail -n 20 /var/log/syslog', 'df -h', 'uptime'][i % 5];
  commands.push({ seq: i + 1, channel: 0, kind: 'shell', at: iso(now - 3600e3 + t / 1e3), offset_us: t, end_offset_us: t + 2e6, command: cmd, prompt: 'root@web01:~# ', confidence: 1, full_screen: false });
  events.push([t, 'o', `root@web01:~# ${cmd}\r\n`]);
  for (let j = 0; j < 5; j++) events.push([t + 300e3 + j * 100e3, 'o', `output line ${j} of command ${i + 1} (${cmd})\r\n`]);
  t += 7e6 + (i % 7 === 0 ? 30e6 : 0);
}
const sessions = [
  { id: 's-0001', user: 'alice', target: 'web01', target_host: '10.0.0.5', target_login: 'root', client_addr: '127.0.0.1:50412', status: 'closed', reason: null, started_at: iso(now - 3600e3), ended_at: iso(now - 3000e3), duration_us: DUR, channels: [{ id: 0, kind: 'shell', opened_at: iso(now - 3600e3), exit_status: 0, term: 'xterm-256color', cols: 100, rows: 30 }], transfers: [], commands, verify: { intact: true, problems: [] } },
  { id: 's-0002', user: 'bob', target: 'db01', target_host: '10.0.0.6', target_login: 'postgres', client_addr: '127.0.0.1:50999', status: 'active', reason: null, started_at: iso(now - 120e3), ended_at: null, duration_us: 120e6, channels: [], transfers: [{ id: 't1', direction: 'download', path: '/etc/passwd', size: 1234, sha256: 'ab'.repeat(32) }], commands: commands.slice(0, 3), verify: { intact: false, problems: ['chunk 7: hash chain broken'] } },
];
const audit = [];
const addAudit = (actor, action, session, detail) => audit.unshift({ id: audit.length + 1, at: iso(Date.now()), actor, action, session, client_addr: '127.0.0.1', detail });
let me = null;

function send(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Security-Policy': CSP });
  res.end(JSON.stringify(body));
}

http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  let body = '';
  for await (const c of req) body += c;
  if (!p.startsWith('/api/')) {
    const file = vendor[p] ? path.join(web, vendor[p]) : path.join(web, 'src', p === '/' ? 'index.html' : path.normalize(p));
    if (!file.startsWith(web) || !fs.existsSync(file)) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'Content-Type': types[path.extname(file)] || 'application/octet-stream', 'Content-Security-Policy': CSP });
    res.end(fs.readFileSync(file));
    return;
  }
  if (p === '/api/v1/login') {
    const { name } = JSON.parse(body || '{}');
    me = { name, role: name === 'user' ? 'user' : name === 'auditor' ? 'auditor' : 'admin', csrf: 'csrf-1' };
    addAudit(name, 'login', null, null);
    res.setHeader('Set-Cookie', 'kw_session=mock; HttpOnly; SameSite=Strict; Path=/');
    return send(res, 200, me);
  }
  if (!me || !(req.headers.cookie || '').includes('kw_session=mock')) return send(res, 401, { error: 'not logged in' });
  if (req.method !== 'GET' && req.headers['x-csrf-token'] !== me.csrf) return send(res, 403, { error: 'missing X-CSRF-Token' });
  if (p === '/api/v1/me') return send(res, 200, me);
  if (p === '/api/v1/logout') { me = null; return send(res, 200, {}); }
  if (p === '/api/v1/live') return send(res, 200, sessions.filter((s) => s.status === 'active').map((s) => ({ ...s, duration_us: Date.now() * 1000 - Date.parse(s.started_at) * 1000, last_command: 'psql -c "select 1"' })));
  if (p === '/api/v1/sessions') return send(res, 200, sessions.map(({ commands: _c, verify: _v, transfers: _t, ...s }) => s));
  if (p === '/api/v1/search') {
    const q = url.searchParams.get('q') || '';
    addAudit(me.name, 'searched', null, q);
    return send(res, 200, commands.filter((c) => c.command.includes(q)).slice(0, 20).map((c) => ({ session: 's-0001', user: 'alice', target: 'web01', seq: c.seq, channel: 0, kind: 'command', at: c.at, offset_us: c.offset_us, command: c.command, snippet: c.command.replace(q, `«${q}»`) })));
  }
  if (p === '/api/v1/audit') return send(res, 200, audit);
  if (p === '/api/v1/people') return send(res, 200, [{ name: 'admin', role: 'admin' }, { name: 'alice', role: 'user' }]);
  if (p === '/api/v1/targets') return send(res, 200, [{ name: 'web01', host: '10.0.0.5', port: 22, login: 'root' }]);
  if (p === '/api/v1/grants') return send(res, 200, [{ user: 'alice', target: 'web01' }]);
  let m = /^\/api\/v1\/sessions\/([^/]+)(\/\w+)?$/.exec(p);
  if (m) {
    const s = sessions.find((x) => x.id === m[1]);
    if (!s) return send(res, 404, { error: `no session ${m[1]}` });
    if (!m[2]) { addAudit(me.name, 'session_viewed', s.id, null); return send(res, 200, s); }
    if (m[2] === '/terminate') { addAudit(me.name, 'session_terminated', s.id, JSON.parse(body).reason); return send(res, 200, {}); }
    if (m[2] === '/replay') {
      const from = Number(url.searchParams.get('from_us') || 0);
      const until = Number(url.searchParams.get('until_us') || DUR);
      if (!from) addAudit(me.name, 'recording_replayed', s.id, null);
      // Keyframe every 60 s: the screen is just the last 5 lines before it.
      const kfAt = Math.floor(from / 60e6) * 60e6;
      const before = events.filter((e) => e[0] < kfAt).slice(-5).map((e) => e[2]).join('');
      return send(res, 200, { channel: 0, cols: 100, rows: 30, duration_us: DUR, keyframe: kfAt ? { at_us: kfAt, screen: `\x1b[2J\x1b[H${before}` } : null, events: events.filter((e) => e[0] >= kfAt && e[0] <= until) });
    }
  }
  send(res, 404, { error: `no route ${p}` });
}).listen(Number(process.argv[2] || 8099), '127.0.0.1', function () { console.log(`mock console on http://127.0.0.1:${this.address().port}/`); });
