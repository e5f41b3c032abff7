// Screenshots of every page against a running console (the mock or the real server):
// `node web/dev/shots.mjs http://127.0.0.1:8099 NAME PASSWORD` → web/e2e/artifacts/dev-*.png.
// Prints console errors and CSP violations.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [base = 'http://127.0.0.1:8099', name = 'admin', password = 'x', session = 's-0001'] = process.argv.slice(2);
const out = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../e2e/artifacts');
fs.mkdirSync(out, { recursive: true });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--enable-unsafe-swiftshader'] });
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.log('console:', m.type(), m.text()); });
page.on('pageerror', (e) => console.log('pageerror:', e.message));
await page.goto(base + '/');
await page.fill('#login-name', name);
await page.fill('#login-password', password);
await page.click('#login-submit');
await page.waitForSelector('#topbar:not(.hidden)');
for (const [n, hash, sel] of [['live', '#/live', '#live-table'], ['sessions', '#/sessions?q=restart', '#search-results table, #search-results .empty'], ['session', `#/sessions/${session}?at_us=200000000`, '.player-term[data-ready]'], ['audit', '#/audit', '#audit-list table, #audit-list .empty'], ['admin', '#/admin', '#admin-grants h2']]) {
  await page.goto(base + '/' + hash);
  await page.waitForSelector(sel, { timeout: 10000 }).catch((e) => console.log(n, e.message));
  await page.screenshot({ path: path.join(out, `dev-${n}.png`), fullPage: true });
  console.log('shot', n, await page.evaluate(() => window.keepwatchConsole && window.keepwatchConsole.renderer));
}
await browser.close();
