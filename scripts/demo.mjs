#!/usr/bin/env node
// rf in five minutes (well, about twenty seconds): a throwaway Redis, rf listening to it, a
// recognisable workload, a restore to a moment in the middle, and the proof that the restored
// instance holds exactly that moment's state and none of the later writes.
//
//   npm run demo            (builds first; needs redis-server 7 on PATH)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rfBin = path.join(root, 'dist', 'cli', 'main.js');
const work = mkdtempSync(path.join(os.tmpdir(), 'rf-demo-'));
const children = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const say = (text) => process.stdout.write(`\n\x1b[1m${text}\x1b[0m\n`);

function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (!process.env.RF_DEMO_KEEP) rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.on('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const { port } = s.address();
        s.close(() => resolve(port));
      });
    });
    if (port !== 6379) return port;
  }
}

/** A tiny RESP client: enough for a demo, no dependency. */
function connect(port) {
  const socket = net.connect(port, '127.0.0.1');
  let buf = '';
  const waiting = [];
  socket.on('data', (d) => {
    buf += d.toString('latin1');
    for (;;) {
      const reply = parse(buf);
      if (reply === null) break;
      buf = buf.slice(reply.used);
      waiting.shift()?.(reply.value);
    }
  });
  const call = (...args) =>
    new Promise((resolve) => {
      waiting.push(resolve);
      socket.write(
        `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')}`,
      );
    });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once('connect', () => resolve({ call, close: () => socket.end() }));
  });
}

function parse(s, at = 0) {
  const eol = s.indexOf('\r\n', at);
  if (eol < 0) return null;
  const head = s[at];
  const line = s.slice(at + 1, eol);
  if (head === '+' || head === '-') return { value: line, used: eol + 2 - at };
  if (head === ':') return { value: Number(line), used: eol + 2 - at };
  if (head === '$') {
    const n = Number(line);
    if (n < 0) return { value: null, used: eol + 2 - at };
    if (s.length < eol + 2 + n + 2) return null;
    return { value: s.slice(eol + 2, eol + 2 + n), used: eol + 2 + n + 2 - at };
  }
  if (head === '*') {
    const n = Number(line);
    const items = [];
    let pos = eol + 2;
    for (let i = 0; i < n; i++) {
      const item = parse(s, pos);
      if (item === null) return null;
      items.push(item.value);
      pos += item.used;
    }
    return { value: items, used: pos - at };
  }
  throw new Error(`unexpected reply ${JSON.stringify(s.slice(at, at + 20))}`);
}

async function startRedis(name, dir, extra = []) {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--logfile',
      path.join(dir, `${name}.log`),
      ...extra,
    ],
    { stdio: 'ignore' },
  );
  children.push(child);
  for (let i = 0; i < 100; i++) {
    try {
      const c = await connect(port);
      if ((await c.call('PING')) === 'PONG') return { port, client: c, child };
    } catch {}
    await sleep(100);
  }
  throw new Error(`${name} redis-server did not start`);
}

function rf(args) {
  const res = spawnSync(process.execPath, [rfBin, ...args], { encoding: 'utf8' });
  // The resolved time (stderr) comes first, as rf prints it before acting.
  process.stdout.write(res.stderr);
  process.stdout.write(res.stdout);
  if (res.status !== 0) throw new Error(`rf ${args[0]} exited ${res.status}`);
  return res.stdout;
}

async function main() {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    throw new Error('redis-server 7 is needed on PATH (apt-get install redis-server)');
  }
  say('1. A throwaway Redis master, with an append-only file');
  const masterDir = path.join(work, 'master');
  spawnSync('mkdir', ['-p', masterDir]);
  const master = await startRedis('master', masterDir, [
    '--appendonly',
    'yes',
    '--repl-diskless-sync-delay',
    '0',
  ]);
  console.log(`   redis-server on 127.0.0.1:${master.port}, data in ${masterDir}`);

  say('2. rf listen: a replica that archives every write');
  const store = path.join(work, 'rf-store');
  const listener = spawn(
    process.execPath,
    [rfBin, 'listen', '--source', `redis://127.0.0.1:${master.port}`, '--store', store],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(listener);
  let logText = '';
  listener.stdout.on('data', (d) => (logText += d));
  for (let i = 0; i < 100 && !logText.includes('first timeline started'); i++) await sleep(100);
  if (!logText.includes('first timeline started'))
    throw new Error(`rf listen did not start:\n${logText}`);
  console.log(`   rf listen --source redis://127.0.0.1:${master.port} --store ${store}`);

  say('3. A workload: an account balance and an order log, one change every 50 ms');
  const c = master.client;
  await c.call('SET', 'balance', '100');
  let middle = null;
  let middleState = null;
  for (let i = 1; i <= 40; i++) {
    await c.call('INCRBY', 'balance', '10');
    await c.call('RPUSH', 'orders', `order-${i}`);
    if (i === 20) {
      await sleep(30);
      middle = new Date().toISOString();
      middleState = {
        balance: await c.call('GET', 'balance'),
        orders: await c.call('LLEN', 'orders'),
      };
      console.log(
        `   at ${middle}: balance=${middleState.balance}, ${middleState.orders} orders  <- we will go back here`,
      );
      await sleep(30);
    }
    await sleep(50);
  }
  // Then a mistake: someone wipes the data.
  await c.call('FLUSHALL');
  console.log(
    `   ... 20 more changes, then FLUSHALL: the live master now has ${await c.call('DBSIZE')} keys`,
  );
  await sleep(1500);

  say('4. What can be restored');
  rf(['info', '--store', store]);

  say(`5. rf restore --until ${middle}`);
  const out = path.join(work, 'restored');
  rf(['restore', '--store', store, '--until', middle, '--out', out]);

  say('6. Boot the restored directory and look inside');
  const restored = await startRedis('restored', out, ['--appendonly', 'yes']);
  const balance = await restored.client.call('GET', 'balance');
  const orders = await restored.client.call('LLEN', 'orders');
  const last = await restored.client.call('LINDEX', 'orders', '-1');
  console.log(`   restored: balance=${balance}, ${orders} orders, last ${last}`);
  const ok =
    balance === middleState.balance &&
    orders === middleState.orders &&
    last === `order-${middleState.orders}`;
  say(
    ok
      ? 'The restored instance holds exactly the state of that moment, and none of the later writes.'
      : 'MISMATCH: the restored state differs from the moment recorded.',
  );
  listener.kill('SIGTERM');
  await new Promise((r) => listener.once('close', r));
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`demo failed: ${err.message}`);
    process.exit(1);
  },
);
