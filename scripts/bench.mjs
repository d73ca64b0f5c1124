#!/usr/bin/env node
/**
 * npm run bench: rf measured side by side with the native limits and Redis's own alternatives,
 * every reference measured in the same run on the same machine.
 *
 *   node scripts/bench.mjs [--quick] [--json <file>] [--only <row,...>]
 *
 * RF_BENCH_CLI=/path/to/dist/cli/main.js runs that rf build in the child processes (rf listen,
 * rf restore, rf log), to compare a change against the tree's dist/. RF_BENCH_NICE=10 runs
 * `rf listen` at that nice level, as a unit with Nice=10 would on the master's host.
 * RF_BENCH_BEFORE_CLI=/path/to/old/dist/cli/main.js adds that build to row 1's rounds, beside
 * this tree's, so a change to the capture path is measured side by side in one run.
 *
 * Rows: 1 capture overhead, 2 capture lag, 3 offline capture rate, 4 storage, 5 restore,
 * 6 point-in-time precision, 7 seek, 8 memory, 9 restore --into, 10 rf log --key, 11 key index size,
 * 12 restore from the bucket, 13 upload RSS, 14 restore after a rolled base, 15 upload lag,
 * 16 cluster capture overhead, 17 cluster restore --out, 18 cluster listen RSS. `--only 1,5` runs just those (a row that shares
 * its setup with another runs that setup once).
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { archiveRows } from './bench/archive.mjs';
import { captureRows } from './bench/capture.mjs';
import { clusterRows } from './bench/cluster.mjs';
import { clusterRestoreRows } from './bench/cluster-restore.mjs';
import { cleanupSync, installCleanup, RF_LISTEN_NICE, RF_MAIN } from './bench/env.mjs';
import { renderTable, row } from './bench/format.mjs';
import { indexRows } from './bench/index.mjs';
import { intoRows } from './bench/into.mjs';
import { machine } from './bench/machine.mjs';
import { memoryRows } from './bench/memory.mjs';
import { offlineRows } from './bench/offline.mjs';
import { pitrRows } from './bench/pitr.mjs';
import { repoRows } from './bench/repo.mjs';
import { rolledRows } from './bench/rolled.mjs';
import { seekRows } from './bench/seek.mjs';
import { uploadRows } from './bench/upload.mjs';

/** Sizes per mode. Full: under ten minutes on 2 cores; quick: about one. */
const CONFIG = {
  full: {
    capture: { requestsPerTest: 300_000, reps: 7, warmUpPerTest: 60_000 },
    offline: { commands: 2_000_000, reps: 3 },
    archive: { baseKeys: 1_000_000, writes: 1_000_000, reps: 5 },
    pitr: { seconds: 8, intervalMs: 2, targets: 5 },
    seek: { writes: 10_000_000, lookups: 25 },
    memory: { snapshotBytes: 1024 ** 3, valueBytes: 1000 },
    into: { keys: 1_000_000, reps: 3 },
    index: { writes: 10_000_000, reps: 3 },
    repo: { writes: 2_000_000, reps: 3, baseBytes: 1024 ** 3 },
    rolled: { writes: 10_000_000, reps: 3 },
    cluster: {
      requestsPerTest: 300_000,
      reps: 5,
      warmUpPerTest: 20_000,
      rssRequestsPerTest: 20_000,
      baseKeys: 1_000_000,
      writes: 1_000_000,
      restoreReps: 3,
    },
  },
  quick: {
    capture: { requestsPerTest: 100_000, reps: 3, warmUpPerTest: 20_000 },
    offline: { commands: 300_000, reps: 1 },
    archive: { baseKeys: 100_000, writes: 200_000, reps: 1 },
    pitr: { seconds: 3, intervalMs: 2, targets: 2 },
    seek: { writes: 1_000_000, lookups: 10 },
    memory: { snapshotBytes: 256 * 1024 ** 2, valueBytes: 1000 },
    into: { keys: 100_000, reps: 1 },
    index: { writes: 1_000_000, reps: 1 },
    repo: { writes: 300_000, reps: 1, baseBytes: 256 * 1024 ** 2 },
    rolled: { writes: 1_000_000, reps: 1 },
    cluster: {
      requestsPerTest: 30_000,
      reps: 2,
      warmUpPerTest: 10_000,
      rssRequestsPerTest: 10_000,
      baseKeys: 100_000,
      writes: 200_000,
      restoreReps: 1,
    },
  },
};

/** Which scenario measures which rows. Scenarios run once even when several of their rows are wanted. */
const SCENARIOS = [
  { rows: [1, 2], name: 'capture', run: captureRows },
  { rows: [3], name: 'offline', run: offlineRows },
  { rows: [4, 5], name: 'archive', run: archiveRows },
  { rows: [6], name: 'pitr', run: pitrRows },
  { rows: [7], name: 'seek', run: seekRows },
  { rows: [8], name: 'memory', run: memoryRows },
  { rows: [9], name: 'into', run: intoRows },
  { rows: [10, 11], name: 'index', run: indexRows },
  { rows: [12, 13], name: 'repo', run: repoRows },
  { rows: [14], name: 'rolled', run: rolledRows },
  { rows: [15], name: 'upload', run: uploadRows },
  { rows: [16, 18], name: 'cluster', run: clusterRows },
  { rows: [17], name: 'cluster-restore', run: clusterRestoreRows },
];

const NAMES = {
  capture: 1,
  overhead: 1,
  lag: 2,
  offline: 3,
  rate: 3,
  storage: 4,
  restore: 5,
  pitr: 6,
  precision: 6,
  seek: 7,
  memory: 8,
  into: 9,
  log: 10,
  index: 11,
  bucket: 12,
  upload: 13,
  rolled: 14,
  keepup: 15,
  cluster: 16,
  'cluster-restore': 17,
  'cluster-rss': 18,
};

function usage(message) {
  if (message) console.error(`bench: ${message}`);
  console.error(
    'usage: node scripts/bench.mjs [--quick] [--json <file>] [--only <row,...>]\n' +
      '  rows: 1 capture overhead, 2 lag, 3 offline rate, 4 storage, 5 restore, 6 pitr, 7 seek, 8 memory,\n' +
      '        9 into, 10 rf log --key, 11 key index size, 12 restore from the bucket, 13 upload RSS,\n' +
      '        14 restore after a rolled base, 15 upload lag (keepup), 16 cluster capture overhead,\n' +
      '        17 cluster restore --out (cluster-restore), 18 cluster listen RSS (cluster-rss)',
  );
  process.exit(2);
}

function parseOnly(text) {
  const want = new Set();
  for (const part of text.split(',').map((s) => s.trim().toLowerCase())) {
    const n = NAMES[part] ?? Number.parseInt(part, 10);
    if (!Number.isInteger(n) || n < 1 || n > 18)
      usage(`--only: unknown row ${JSON.stringify(part)}`);
    want.add(n);
  }
  return want;
}

async function main() {
  let args;
  try {
    args = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        json: { type: 'string' },
        only: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (err) {
    usage(err.message);
  }
  if (args.help) usage();
  if (!existsSync(RF_MAIN))
    usage(`${RF_MAIN} is missing: run \`npm run build\` first (npm run bench does)`);
  const mode = args.quick ? 'quick' : 'full';
  const cfg = CONFIG[mode];
  const want =
    args.only === undefined
      ? new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18])
      : parseOnly(args.only);

  const began = performance.now();
  const since = () => `${((performance.now() - began) / 1000).toFixed(0).padStart(4)} s`;
  const progress = (msg) => console.error(`[${since()}] ${msg}`);
  installCleanup((signal) => progress(`${signal}: stopping every server and removing temp dirs`));

  const host = await machine();
  console.log(
    `rf bench, ${mode} run${mode === 'quick' ? ' (smaller sizes, fewer repetitions)' : ''}`,
  );
  console.log(`machine: ${host.line}`);
  if (process.env.RF_BENCH_CLI) console.log(`rf CLI: ${RF_MAIN} (RF_BENCH_CLI)`);
  if (process.env.RF_BENCH_BEFORE_CLI)
    console.log(`rf CLI before, in row 1 beside it: ${process.env.RF_BENCH_BEFORE_CLI}`);
  if (process.env.RF_BENCH_NICE) console.log(`rf listen at nice ${RF_LISTEN_NICE} (RF_BENCH_NICE)`);
  console.log('');

  const rows = [];
  for (const scenario of SCENARIOS) {
    const rowsWanted = new Set(scenario.rows.filter((r) => want.has(r)));
    if (rowsWanted.size === 0) continue;
    progress(`${scenario.name}: rows ${[...rowsWanted].join(', ')}`);
    const t0 = performance.now();
    try {
      rows.push(...(await scenario.run(cfg, rowsWanted, progress)));
    } catch (err) {
      progress(`${scenario.name} failed: ${err.stack ?? err}`);
      for (const id of rowsWanted) {
        rows.push(
          row({
            id: String(id),
            name: `${scenario.name} (failed)`,
            workload: '',
            rf: 'error',
            reference: '',
            met: false,
            notes: [`the run failed: ${String(err.message ?? err).split('\n')[0]}`],
          }),
        );
      }
    }
    progress(`${scenario.name} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }

  const seconds = (performance.now() - began) / 1000;
  console.log(renderTable(rows));
  console.log('');
  console.log(`${mode} run took ${seconds.toFixed(0)} s`);
  const short = rows.filter((r) => r.met === false);
  if (short.length > 0) {
    console.log(`short of target: ${short.map((r) => `${r.id} (${r.name})`).join(', ')}`);
  }
  if (args.json !== undefined) {
    const file = path.resolve(args.json);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(
      file,
      `${JSON.stringify({ mode, machine: host, startedAt: new Date(Date.now() - seconds * 1000).toISOString(), seconds, rows }, null, 2)}\n`,
    );
    console.log(`wrote ${file}`);
  }
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(cleanupSync);
