/**
 * Row 9, `rf restore --into` on one archive: a base of DEBUG POPULATE keys captured by rf listen,
 * and a replay that writes no key (a PUBLISH). 9a copies every key into an empty instance with
 * --into, against --target loading the same instance from the same archive; 9b selects 1,000
 * keys of them, against the full --target restore; 9c is rf's own peak RSS during the 9a runs
 * (VmHWM of the rf process, not of its scratch redis-server). The keys the replay leaves alone
 * are read from the base, so the scratch server rebuilds none here: the best case, which a
 * replay that writes keys moves away from by the rebuild of those keys.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  median,
  peakRss,
  RF_MAIN,
  removeDir,
  spawnTracked,
  startRedis,
  tempDir,
  waitReplicaOnline,
} from './env.mjs';
import { fmtBytes, fmtCount, fmtSeconds, row } from './format.mjs';
import { rfOk, startListen } from './rf.mjs';

const VALUE_BYTES = 64;
/** key:1000 … key:1999 of DEBUG POPULATE's key:0 … key:N-1. */
const SELECTION = 'key:1???';

/** Runs rf to completion, sampling its own VmHWM (its children's memory is not counted). */
async function rfSampled(args) {
  const started = performance.now();
  const child = spawnTracked(process.execPath, [RF_MAIN, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c) => {
    stderr += c;
  });
  let peak = 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, peakRss(child.pid) ?? 0);
  }, 20);
  const { code, signal } = await child.exited;
  clearInterval(timer);
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0)
    throw new Error(`rf ${args.join(' ')} exited with ${code ?? signal}\n${stderr.slice(-2000)}`);
  return { seconds, peakRssBytes: peak };
}

async function emptyTarget() {
  return startRedis({ label: 'into-target', args: ['--enable-debug-command', 'yes'] });
}

async function digest(client) {
  return String(await client.call('DEBUG', 'DIGEST'));
}

async function archive(keys, progress) {
  const masterDir = await tempDir('into-master');
  const rfDir = await tempDir('into-rf');
  const store = path.join(rfDir, 'store');
  const master = await startRedis({
    dir: masterDir,
    args: ['--repl-diskless-sync-delay', '0', '--enable-debug-command', 'yes'],
  });
  let listen = null;
  try {
    await master.client.call('DEBUG', 'POPULATE', String(keys), 'key', String(VALUE_BYTES));
    listen = await startListen(master.url, store, path.join(rfDir, 'listen.log'));
    await waitReplicaOnline(master.client, 300_000);
    // A write after the base that creates no key, so `latest` is past the whole base.
    await master.client.call('PUBLISH', 'rf-bench', 'end');
    await master.client.call('WAIT', '1', '120000');
    const expected = await digest(master.client);
    await listen.stop();
    listen = null;
    progress(`into: base of ${fmtCount(keys)} keys captured`);
    return { store, expected, dirs: [masterDir, rfDir] };
  } finally {
    await listen?.stop();
    await master.stop();
  }
}

export async function intoRows(cfg, _want, progress) {
  const { keys, reps } = cfg.into;
  const a = await archive(keys, progress);
  const target = [];
  const all = [];
  const some = [];
  try {
    for (let rep = 0; rep < reps; rep++) {
      const t = await emptyTarget();
      try {
        const r = await rfOk([
          'restore',
          '--store',
          a.store,
          '--until',
          'latest',
          '--target',
          t.url,
        ]);
        if ((await digest(t.client)) !== a.expected) throw new Error('--target: digest differs');
        target.push(r.ms / 1000);
      } finally {
        await t.stop();
      }
      const i = await emptyTarget();
      try {
        all.push(
          await rfSampled(['restore', '--store', a.store, '--until', 'latest', '--into', i.url]),
        );
        if ((await digest(i.client)) !== a.expected) throw new Error('--into: digest differs');
      } finally {
        await i.stop();
      }
      const s = await emptyTarget();
      try {
        const args = ['restore', '--store', a.store, '--until', 'latest', '--into', s.url];
        some.push(await rfSampled([...args, '--key', SELECTION]));
        const n = Number(await s.client.call('DBSIZE'));
        if (n !== 1000) throw new Error(`--into --key ${SELECTION} wrote ${n} keys, not 1000`);
      } finally {
        await s.stop();
      }
      progress(
        `into ${rep + 1}/${reps}: --target ${fmtSeconds(target.at(-1))}, --into ${fmtSeconds(all.at(-1).seconds)} (rf peak ${fmtBytes(all.at(-1).peakRssBytes)}), 1,000 keys ${fmtSeconds(some.at(-1).seconds)}`,
      );
    }
  } finally {
    for (const d of a.dirs) await removeDir(d);
  }
  const tgt = median(target);
  const full = median(all.map((r) => r.seconds));
  const sel = median(some.map((r) => r.seconds));
  const peak = Math.max(...all.map((r) => r.peakRssBytes));
  const workload = `base of ${fmtCount(keys)} keys (DEBUG POPULATE, ${VALUE_BYTES} B values) archived by rf listen; median of ${reps}; every target checked with DEBUG DIGEST`;
  const reference = `${fmtSeconds(tgt)}: rf restore --target into the same empty instance`;
  return [
    row({
      id: '9a',
      name: 'restore --into an empty instance',
      workload,
      rf: `${fmtSeconds(full)} rf restore --into (RESTORE of every key, read from the base: the replay names none)`,
      reference,
      ratio: full / tgt,
      target: '≤ 2×',
      met: full / tgt <= 2,
      data: { target, all },
    }),
    row({
      id: '9b',
      name: 'restore --into, 1,000 keys selected',
      workload: `the 9a archive, --key '${SELECTION}' (1,000 of ${fmtCount(keys)} keys)`,
      rf: `${fmtSeconds(sel)} rf restore --into --key`,
      reference: `${reference}: the full restore`,
      ratio: sel / tgt,
      target: 'none (reported)',
      met: null,
      notes: [
        'the walk of the 1M-key base for the selected keys dominates; a replay that names keys adds their rebuild',
      ],
      data: { some },
    }),
    row({
      id: '9c',
      name: 'memory: rf restore --into peak RSS',
      workload: `the 9a runs (${fmtCount(keys)} keys), VmHWM of the rf process sampled every 20 ms`,
      rf: fmtBytes(peak),
      reference: 'none (the scratch redis-server holds the dataset, apart from rf)',
      target: 'flat (< 200 MB)',
      met: peak < 200 * 1024 * 1024,
      data: { peak },
    }),
  ];
}
