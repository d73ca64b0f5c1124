/** The rf CLI as the benchmark drives it: the built dist/cli/main.js, in child processes. */
import { openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { RemoteKv } from '../../dist/daemon/control-client.js';
import { storePaths } from '../../dist/store/store.js';
import {
  RF_LISTEN_NICE,
  RF_MAIN,
  run,
  runOk,
  spawnTracked,
  stopProcess,
  tail,
  waitFor,
} from './env.mjs';

/**
 * Starts `rf listen` on `store`, logging to store/../listen.log. Returns once its control socket
 * answers; the caller waits for the master to list it online. `cli` runs another build.
 */
export async function startListen(sourceUrl, store, logFile, extra = [], cli = RF_MAIN) {
  const fd = openSync(logFile, 'a');
  const nice = RF_LISTEN_NICE === 0 ? [] : ['nice', '-n', String(RF_LISTEN_NICE)];
  const [cmd, ...args] = [
    ...nice,
    process.execPath,
    cli,
    'listen',
    '--source',
    sourceUrl,
    '--store',
    store,
    '--log-level',
    'warn',
    ...extra,
  ];
  const child = spawnTracked(cmd, args, { stdio: ['ignore', fd, fd] });
  const socket = storePaths(store).socket;
  let control = null;
  await waitFor(
    'rf listen to open its control socket',
    async () => {
      if (child.exitCode !== null) {
        throw new Error(`rf listen exited at start:\n${tail(readFileSync(logFile, 'utf8'))}`);
      }
      control = await RemoteKv.connect(store, socket, 500);
      return control;
    },
    60_000,
    20,
  );
  return {
    child,
    pid: child.pid,
    store,
    logFile,
    /** The daemon's session status: receivedOffset, durableOffset, phase… */
    async status() {
      const s = await control.status();
      return s?.session ?? null;
    },
    /** SIGTERM (rf commits what it holds and exits 0); `log` is the tail of its log. */
    async stop() {
      await control.close().catch(() => undefined);
      const t0 = performance.now();
      const { code, signal } = await stopProcess(child, 60_000);
      const seconds = (performance.now() - t0) / 1000;
      return { code, signal, seconds, log: tail(readFileSync(logFile, 'utf8'), 12) };
    },
  };
}

/** Runs `rf <args>`; with `measure`, under /usr/bin/time for peak RSS and CPU. */
export function rf(args, options = {}) {
  return run(process.execPath, [RF_MAIN, ...args], options);
}

export function rfOk(args, options = {}) {
  return runOk(process.execPath, [RF_MAIN, ...args], options);
}

let logWired = null;
/** Whether this build has `rf log`: the bench also runs against builds from before it. */
export async function hasLogCommand() {
  if (logWired === null) {
    const r = await rf(['--help']);
    logWired = /^\s+log\b/m.test(r.stdout);
  }
  return logWired;
}

/** `@<unix seconds>.<ms>`: the exact millisecond, zone-free. */
export function atMs(ms) {
  return `@${(ms / 1000).toFixed(3)}`;
}

export function listenLog(dir) {
  return path.join(dir, 'listen.log');
}
