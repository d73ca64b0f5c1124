/**
 * Processes, ports and temp dirs for the benchmark. Everything started here is tracked, so an
 * error, Ctrl-C or a normal exit stops every server and removes every temp dir it made.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { RedisClient } from '../../dist/resp/client.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The CLI the child processes run; RF_BENCH_CLI points it at another build, to measure a change. */
export const RF_MAIN = process.env.RF_BENCH_CLI
  ? path.resolve(process.env.RF_BENCH_CLI)
  : path.join(ROOT, 'dist', 'cli', 'main.js');
/**
 * RF_BENCH_BEFORE_CLI: another rf build (an older tree's dist/cli/main.js) that row 1 also runs,
 * in every round beside this one, to measure a change side by side.
 */
export const RF_BEFORE_MAIN = process.env.RF_BENCH_BEFORE_CLI
  ? path.resolve(process.env.RF_BENCH_BEFORE_CLI)
  : null;
/** RF_BENCH_NICE: the nice level `rf listen` runs at (0, the default, leaves it alone). */
export const RF_LISTEN_NICE = niceLevel(process.env.RF_BENCH_NICE);

function niceLevel(text) {
  if (text === undefined || text === '') return 0;
  const n = Number(text);
  if (!Number.isInteger(n) || n < -20 || n > 19) {
    throw new Error(`RF_BENCH_NICE must be an integer from -20 to 19, got ${JSON.stringify(text)}`);
  }
  return n;
}
const HOST = '127.0.0.1';
/** A Redis that is not ours listens there. */
const FORBIDDEN_PORT = 6379;
const TIME = '/usr/bin/time';

const children = new Set();
const dirs = new Set();
let cleaning = false;

/** Kills what is still running and removes the temp dirs; synchronous, so it works in 'exit'. */
export function cleanupSync() {
  if (cleaning) return;
  cleaning = true;
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  children.clear();
  dirs.clear();
}

/** Stops everything on Ctrl-C, SIGTERM, an uncaught error or process exit. */
export function installCleanup(onSignal) {
  process.on('exit', cleanupSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      onSignal?.(signal);
      cleanupSync();
      process.exit(130);
    });
  }
}

export function spawnTracked(cmd, args, options = {}) {
  const child = spawn(cmd, args, { stdio: 'ignore', ...options });
  children.add(child);
  child.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      children.delete(child);
      resolve({ code: -1, signal: null, error: err });
    });
  });
  return child;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopProcess(child, graceMs = 20_000) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exited;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  const result = await child.exited;
  clearTimeout(timer);
  return result;
}

/**
 * Runs a command to completion. With `measure`, it runs under /usr/bin/time so the peak RSS and
 * CPU seconds come from the kernel's rusage (exact, unlike polling /proc).
 */
export async function run(cmd, args, options = {}) {
  const { timeoutMs = 600_000, measure = false, stdoutFile, env } = options;
  let file = cmd;
  let argv = args;
  let timeFile = null;
  if (measure && existsSync(TIME)) {
    timeFile = path.join(os.tmpdir(), `rf-bench-time-${process.pid}-${performance.now()}.txt`);
    file = TIME;
    argv = ['-f', '%M %U %S', '-o', timeFile, cmd, ...args];
  }
  const outFd = stdoutFile === undefined ? 'pipe' : openSync(stdoutFile, 'w');
  const started = performance.now();
  const child = spawnTracked(file, argv, {
    stdio: ['ignore', outFd, 'pipe'],
    ...(env === undefined ? {} : { env: { ...process.env, ...env } }),
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c) => {
    stdout += c;
  });
  child.stderr?.on('data', (c) => {
    stderr += c;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await child.exited;
  const ms = performance.now() - started;
  clearTimeout(timer);
  if (typeof outFd === 'number') closeSync(outFd);
  let usage = null;
  if (timeFile !== null) {
    try {
      const last = readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '';
      const [rssKb, user, sys] = last.split(' ').map(Number);
      usage = { peakRssBytes: rssKb * 1024, cpuSeconds: user + sys };
    } catch {
      usage = null;
    }
    rmSync(timeFile, { force: true });
  }
  return { code, signal, stdout, stderr, ms, usage };
}

/** Like run(), but a non-zero exit is an error that shows the command's output. */
export async function runOk(cmd, args, options = {}) {
  const r = await run(cmd, args, options);
  if (r.code !== 0) {
    const shown = [cmd, ...args].join(' ');
    throw new Error(
      `\`${shown}\` exited with ${r.code ?? r.signal}\n${r.stderr.slice(-2000)}${r.stdout.slice(-2000)}`,
    );
  }
  return r;
}

export async function tempDir(label) {
  const dir = await mkdtemp(path.join(os.tmpdir(), `rf-bench-${label}-`));
  dirs.add(dir);
  return dir;
}

export async function removeDir(dir) {
  await rm(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/** Listens on `port` (0: any) for a moment; the port it got, or null when it is taken. */
function probePort(port) {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.on('error', () => resolve(null));
    probe.listen(port, HOST, () => {
      const got = probe.address().port;
      probe.close(() => resolve(got));
    });
  });
}

/**
 * A TCP port nothing listens on right now, never 6379. With `bus`, one whose cluster bus port
 * (+10000) is free too.
 */
export async function freePort(bus = false) {
  for (;;) {
    const port = await probePort(0);
    if (port === null || port === FORBIDDEN_PORT) continue;
    if (!bus) return port;
    if (port + 10_000 <= 65_535 && (await probePort(port + 10_000)) !== null) return port;
  }
}

export function connect(port, options = {}) {
  if (port === FORBIDDEN_PORT) throw new Error('refusing to talk to port 6379: not our Redis');
  return RedisClient.connect(
    { host: HOST, port, db: 0, tls: false },
    { timeoutMs: 600_000, ...options },
  );
}

/**
 * Starts redis-server on a free port in `dir` (a new temp dir unless given) and waits until it
 * answers and has finished loading (INFO persistence loading:0). `readyMs` is that wait, measured
 * from the spawn: the boot time of whatever the dir holds.
 */
export async function startRedis(options = {}) {
  const { args = [], label = 'redis', readyTimeoutMs = 300_000, clusterBus = false } = options;
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await tempDir(label));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort(clusterBus);
    const logfile = path.join(dir, `redis-${port}.log`);
    const argv = [
      '--port',
      String(port),
      '--bind',
      HOST,
      '--save',
      '',
      '--appendonly',
      'no',
      '--logfile',
      logfile,
      '--dir',
      dir,
      ...args,
    ];
    const started = performance.now();
    const child = spawnTracked('redis-server', argv);
    let client = null;
    let readyMs;
    try {
      const probe = await waitReady(port, child, logfile, readyTimeoutMs);
      readyMs = performance.now() - started;
      probe.destroy();
      // The probe's short timeout suits polling; DEBUG POPULATE or WAIT need a long one.
      client = await connect(port);
    } catch (err) {
      if (child.exitCode !== null && readText(logfile).includes('Address already in use')) {
        if (attempt < 5) continue;
      }
      await stopProcess(child);
      throw err;
    }
    return {
      port,
      dir,
      child,
      pid: child.pid,
      url: `redis://${HOST}:${port}`,
      readyMs,
      client,
      logfile,
      async info(section) {
        return client.info(section);
      },
      async stop() {
        client.destroy();
        await stopProcess(child);
        if (ownDir) await removeDir(dir);
      },
    };
  }
}

async function waitReady(port, child, logfile, timeoutMs) {
  const deadline = performance.now() + timeoutMs;
  let client = null;
  while (performance.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server on port ${port} exited at start:\n${tail(readText(logfile))}`);
    }
    if (client === null) {
      try {
        client = await connect(port, { timeoutMs: 2_000 });
      } catch {
        await sleep(2);
        continue;
      }
    }
    try {
      const info = await client.info('persistence');
      if (info.loading === '0') {
        // Our own log saying Ready proves the port is ours, not a server that took it since.
        if (readText(logfile).includes('Ready to accept connections')) return client;
      }
    } catch {
      // -LOADING on some commands; keep polling
    }
    await sleep(2);
  }
  client?.destroy();
  throw new Error(
    `redis-server on port ${port} not ready in ${timeoutMs} ms\n${tail(readText(logfile))}`,
  );
}

function readText(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export function tail(text, lines = 20) {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Polls `fn` until it returns a truthy value; throws naming `what` after `timeoutMs`. */
export async function waitFor(what, fn, timeoutMs = 60_000, intervalMs = 5) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (performance.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** INFO replication's slave0 line as an object ({ state, offset, … }), or null. */
export function firstReplica(info) {
  const line = info.slave0;
  if (line === undefined) return null;
  return Object.fromEntries(line.split(',').map((kv) => kv.split('=')));
}

/** Waits until exactly one replica is attached and online. */
export async function waitReplicaOnline(master, timeoutMs = 120_000) {
  return waitFor(
    'the replica to be online',
    async () => {
      const r = firstReplica(await master.info('replication'));
      return r?.state === 'online' ? r : null;
    },
    timeoutMs,
    10,
  );
}

export async function waitNoReplica(master, timeoutMs = 30_000) {
  await waitFor(
    'the replica to detach',
    async () => (await master.info('replication')).connected_slaves === '0',
    timeoutMs,
    10,
  );
}

/** Peak resident set (VmHWM) of a running process, in bytes; null once it has exited. */
export function peakRss(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

const TICKS = 100;
/** User + system CPU seconds a running process has used so far. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return null;
  }
}

/** Bytes a directory tree occupies on disk, as du counts them (allocated blocks). */
export async function diskUsage(p) {
  const s = await stat(p);
  if (!s.isDirectory()) return s.blocks * 512;
  let total = s.blocks * 512;
  for (const name of await readdir(p)) total += await diskUsage(path.join(p, name));
  return total;
}

/** Apparent size (sum of file lengths) of a tree. */
export async function apparentSize(p) {
  const s = await stat(p);
  if (!s.isDirectory()) return s.size;
  let total = 0;
  for (const name of await readdir(p)) total += await apparentSize(path.join(p, name));
  return total;
}

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export { sleep };
