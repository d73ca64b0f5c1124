#!/usr/bin/env node
// The README's picture of `rf ui`, taken from a store built the way one is in production: a
// throwaway redis-server, rf listen with fresh bases, a few minutes of uneven writes, a master
// restart (a gap and a new timeline), and the mistake the page is for: DEL of a key.
//
//   npm run build && node scripts/ui-screenshot.mjs [docs/rf-ui.png]
//
// Needs redis-server 7 and Debian's chromium (/usr/bin/chromium, or RF_TEST_CHROMIUM); about
// three minutes.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { connect as connectTo, freePort } from './bench/env.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rfBin = path.join(root, 'dist', 'cli', 'main.js');
const output = path.resolve(process.argv[2] ?? path.join(root, 'docs', 'rf-ui.png'));
const work = mkdtempSync(path.join(os.tmpdir(), 'rf-ui-shot-'));
// Relative, as an operator in the backup directory would type it: the page shows it as given.
const store = 'rf-data';
const children = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

function start(cmd, args, waitFor) {
  const child = spawn(cmd, args, { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (d) => {
      out += d.toString();
      if (waitFor.test(out)) resolve({ child, out: () => out });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code) => reject(new Error(`${cmd} exited ${code}\n${out}`)));
  });
}

const redisPort = await freePort();
const redisArgs = [
  '--port',
  String(redisPort),
  '--bind',
  '127.0.0.1',
  '--dir',
  work,
  '--save',
  '',
  '--repl-diskless-sync-delay',
  '0',
];
let redis = await start('redis-server', redisArgs, /Ready to accept connections/);
const connect = () => connectTo(redisPort);
let client = await connect();
const listen = await start(
  process.execPath,
  [
    rfBin,
    'listen',
    '--source',
    `redis://127.0.0.1:${redisPort}`,
    '--store',
    store,
    '--base-every',
    '45s',
  ],
  /first timeline started from the base/,
);

/** Writes for `seconds`, at a rate that rises and falls like a day's traffic, sped up. */
async function traffic(seconds, phase) {
  const began = Date.now();
  let n = 0;
  while (Date.now() - began < seconds * 1000) {
    const t = (Date.now() - began) / 1000;
    const rate = Math.round(40 + 35 * Math.sin((t + phase) / 9) + (Math.random() < 0.05 ? 120 : 0));
    const batch = [];
    for (let i = 0; i < rate / 4; i++) {
      const id = 1000 + Math.floor(Math.random() * 500);
      const pick = n++ % 4;
      if (pick === 0) batch.push(client.call('SET', `user:${id}`, `name-${id}-${n}`));
      else if (pick === 1)
        batch.push(client.call('HSET', `order:${n}`, 'user', String(id), 'qty', '2'));
      else if (pick === 2) batch.push(client.call('INCR', 'visits'));
      else batch.push(client.call('ZADD', 'leaderboard', String(n), `user:${id}`));
    }
    await Promise.all(batch);
    await sleep(250);
  }
}

await client.call('SET', 'user:42', 'ada');
await traffic(50, 0);
await client.call('HSET', 'user:42:profile', 'plan', 'pro');
await traffic(25, 50);
// The mistake the page is for.
await client.call('DEL', 'user:42', 'user:42:profile');
await traffic(15, 75);
// A master restart: a gap, then a new timeline from a new base.
redis.child.kill('SIGTERM');
await new Promise((r) => redis.child.once('close', r));
await sleep(3000);
redis = await start('redis-server', redisArgs, /Ready to accept connections/);
client = await connect();
await traffic(55, 90);
await client.call('SET', 'user:42', 'ada (restored by hand)');
await traffic(10, 145);
await sleep(1500);

const uiPort = await freePort();
const ui = await start(
  process.execPath,
  [rfBin, 'ui', '--store', store, '--listen', `127.0.0.1:${uiPort}`],
  /serving/,
);
const profile = path.join(work, 'chromium');
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.RF_TEST_CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 1280, height: 860 },
});
const page = context.pages()[0] ?? (await context.newPage());
await page.goto(`http://127.0.0.1:${uiPort}/`);
await page.waitForSelector('#chart[data-activity-loaded]');
await page.locator('#key').fill('user:42*');
await page.locator('#key-form button').click();
await page.waitForSelector('#key-log[data-state="ready"]');
// Just before the DEL: the row's "before" button.
await page
  .locator('#key-log tr[data-time]')
  .nth(2)
  .locator('button', { hasText: 'before' })
  .click();
await page.waitForSelector('#plan[data-state="ready"]');
await page.mouse.move(0, 0);
await page.screenshot({ path: output, fullPage: true });
process.stdout.write(`wrote ${output}\n`);
await context.close();
ui.child.kill('SIGTERM');
listen.child.kill('SIGTERM');
await sleep(500);
process.exit(0);
