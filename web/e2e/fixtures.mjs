// Fixtures for the browser tests and the latency benchmark, after
// crates/keepwatch/tests/it/support.rs: a throwaway sshd target, the real keepwatch binary in a
// temp data directory, an interactive `ssh -tt` client, and headless Debian Chromium.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const TARGET_USER = 'kwtest';
export const TARGET_PASSWORD = 'kwtest-pass-1';
export const CHROMIUM = process.env.KEEPWATCH_CHROMIUM || '/usr/bin/chromium';
const SETUP_HINT = 'run `bash scripts/test.sh` once as root: it installs openssh-server, chromium and nodejs/npm and creates the local user kwtest';

export function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

/** Polls `f` (sync or async) until it returns a truthy value, or throws naming `what`. */
export async function waitFor(what, f, timeoutMs = 20000, everyMs = 25) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function checkPrerequisites() {
  const missing = [];
  if (!fs.existsSync('/usr/sbin/sshd')) missing.push('/usr/sbin/sshd (apt-get install openssh-server)');
  if (spawnSync('ssh', ['-V']).error) missing.push('ssh (apt-get install openssh-client)');
  if (spawnSync('id', [TARGET_USER]).status !== 0) missing.push(`the local user ${TARGET_USER}`);
  if (!fs.existsSync(CHROMIUM)) missing.push(`${CHROMIUM} (apt-get install chromium)`);
  if (missing.length) fail(`missing ${missing.join(', ')}: ${SETUP_HINT}`);
}

export async function loadPlaywright() {
  try {
    return await import('playwright-core');
  } catch {
    fail('playwright-core is not installed: run `npm ci` in web/ (scripts/test.sh does)');
  }
  return null;
}

export async function launchBrowser() {
  const { chromium } = await loadPlaywright();
  // SwiftShader gives headless Chromium WebGL, which xterm.js renders with under the CSP.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--enable-unsafe-swiftshader', '--no-sandbox'] });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

function keygen(file, type = 'ed25519') {
  const r = spawnSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', file]);
  if (r.status !== 0) fail(`ssh-keygen failed: ${r.stderr}`);
}

/** An OpenSSH server on a free loopback port that lets kwtest in with its password. */
export async function startSshd(dir) {
  fs.mkdirSync('/run/sshd', { recursive: true });
  const hk = path.join(dir, 'host_key');
  keygen(hk);
  const hostKeyLine = fs.readFileSync(`${hk}.pub`, 'utf8').split(/\s+/).slice(0, 2).join(' ');
  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  fs.writeFileSync(config, `Port ${port}\nListenAddress 127.0.0.1\nHostKey ${hk}\nPidFile ${dir}/sshd.pid\n`
    + 'PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM yes\nStrictModes no\n'
    + 'MaxStartups 100\nMaxSessions 50\nSubsystem sftp internal-sftp\n');
  const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: 'ignore' });
  await waitFor('sshd to listen', () => canConnect(port), 10000);
  return { port, hostKeyLine, stop: () => child.kill() };
}

/** The real keepwatch binary on a temp data directory. */
export class Gateway {
  constructor(bin, dir) {
    this.bin = bin;
    this.dir = dir;
    this.data = path.join(dir, 'data');
    this.log = '';
    this.child = null;
  }

  kw(args, stdin = '') {
    const r = spawnSync(this.bin, ['--data-dir', this.data, ...args], {
      input: stdin, encoding: 'utf8', env: { ...process.env, KEEPWATCH_LOG: 'warn' },
    });
    if (r.error) fail(`cannot run ${this.bin}: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`keepwatch ${args.join(' ')} failed: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** A person with a password and (for `user`s) an SSH key; returns the key file. */
  addPerson(name, role, password) {
    const key = path.join(this.dir, `${name}_key`);
    const args = ['user', 'add', name, '--role', role, '--password-stdin'];
    if (role === 'user') {
      keygen(key);
      args.push('--ssh-key', `${key}.pub`);
    }
    this.kw(args, password);
    return key;
  }

  addTarget(name, sshd) {
    this.kw(['target', 'add', name, '--host', '127.0.0.1', '--port', String(sshd.port), '--login', TARGET_USER,
      '--password-stdin', '--host-key', sshd.hostKeyLine], TARGET_PASSWORD);
  }

  async start() {
    this.child = spawn(this.bin, ['--data-dir', this.data, 'run', '--ssh-listen', '127.0.0.1:0', '--web-listen', '127.0.0.1:0',
      '--pg-listen', '127.0.0.1:0'], {
      stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KEEPWATCH_LOG: process.env.KEEPWATCH_LOG || 'info' },
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d) => { this.log += d; });
    const portOf = (what) => waitFor(`the gateway's "${what}" line on stderr`, () => {
      if (this.child.exitCode !== null) throw new Error(`keepwatch run exited: ${this.log}`);
      const line = this.log.split('\n').find((l) => l.includes(what));
      return line ? Number(line.trim().split(':').pop()) : null;
    }, 30000);
    this.sshPort = await portOf('SSH gateway listening on');
    this.pgPort = await portOf('PostgreSQL gateway listening on');
    this.webPort = await portOf('web listening on');
    this.base = `http://127.0.0.1:${this.webPort}`;
  }

  stop() {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}

/** `ssh -tt LOGIN@127.0.0.1` through the gateway with `key`, stdin piped for typing. */
export class Interactive {
  constructor(gateway, login, key) {
    this.out = '';
    this.err = '';
    this.exit = null;
    this.child = spawn('ssh', ['-tt', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-o', 'IdentitiesOnly=yes',
      '-i', key, '-p', String(gateway.sshPort), `${login}@127.0.0.1`], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (d) => { this.out += d; });
    this.child.stderr.on('data', (d) => { this.err += d; });
    this.child.on('exit', (code, signal) => { this.exit = { code, signal }; });
  }

  send(text) {
    this.child.stdin.write(text);
  }

  waitOutput(needle, timeoutMs = 20000) {
    return waitFor(`${JSON.stringify(needle)} in the ssh client's output`, () => this.out.includes(needle) || (this.exit && Promise.reject(new Error(`ssh exited ${JSON.stringify(this.exit)}: ${this.err}`))), timeoutMs);
  }

  kill() {
    if (this.exit === null) this.child.kill();
  }
}

/** Logs in through the form and waits for the top bar. */
export async function login(page, base, name, password) {
  await page.goto(`${base}/`);
  await page.waitForSelector('#login-name');
  await page.fill('#login-name', name);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
  await page.waitForSelector('#topbar:not(.hidden)', { timeout: 10000 });
}
