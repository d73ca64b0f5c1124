/**
 * Rows 4 and 5, on one history: a master with appendonly yes holds a base (DEBUG POPULATE, then
 * BGREWRITEAOF so its AOF is that base plus an empty incr file), rf attaches and takes the same
 * base, then redis-benchmark writes. Row 4 compares what each keeps on disk for those writes;
 * row 5 restores them: the master's own appendonlydir booted by redis-server (the native limit)
 * against `rf restore --out` + boot and `rf restore --target`.
 */
import { cp, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  diskUsage,
  median,
  removeDir,
  startRedis,
  tempDir,
  waitFor,
  waitReplicaOnline,
} from './env.mjs';
import { fmtBytes, fmtCount, fmtSeconds, row } from './format.mjs';
import { rfOk, startListen } from './rf.mjs';
import { BENCH_TESTS, redisBenchmark } from './workloads.mjs';

const BASE_VALUE_BYTES = 64;

/** Files of a Redis 7 appendonlydir by manifest type: b(ase), i(ncr), h(istory). */
async function aofParts(aofDir) {
  const manifest = await readFile(path.join(aofDir, 'appendonly.aof.manifest'), 'utf8');
  const parts = { b: 0, i: 0, h: 0 };
  for (const line of manifest.split('\n')) {
    const m = /^file (\S+) seq \d+ type ([bih])/.exec(line);
    if (m) parts[m[2]] += await diskUsage(path.join(aofDir, m[1]));
  }
  return { base: parts.b, incr: parts.i };
}

async function digest(client) {
  return String(await client.call('DEBUG', 'DIGEST'));
}

const BOOT_ARGS = ['--appendonly', 'yes', '--enable-debug-command', 'yes'];

/** Boots redis-server on a restored directory: its DEBUG DIGEST and how long it took to load. */
export async function bootDigest(dir) {
  const redis = await startRedis({ dir, args: BOOT_ARGS });
  try {
    return { digest: await digest(redis.client), readyMs: redis.readyMs };
  } finally {
    await redis.stop();
  }
}

async function bootAndCheck(dir, expected) {
  const { digest: got, readyMs } = await bootDigest(dir);
  if (got !== expected)
    throw new Error(
      `the instance booted from ${dir} has digest ${got}, the master had ${expected}`,
    );
  return readyMs;
}

export async function archiveRows(cfg, want, progress) {
  const { baseKeys, writes, reps } = cfg.archive;
  const perTest = Math.floor(writes / BENCH_TESTS.length);
  const masterDir = await tempDir('archive-master');
  const rfDir = await tempDir('archive-rf');
  const store = path.join(rfDir, 'store');
  const master = await startRedis({
    dir: masterDir,
    args: [
      '--appendonly',
      'yes',
      // No automatic rewrite: the AOF keeps the base + every write, the same data rf restores.
      '--auto-aof-rewrite-percentage',
      '0',
      '--repl-diskless-sync-delay',
      '0',
      '--enable-debug-command',
      'yes',
    ],
  });
  let listen = null;
  let history;
  try {
    await master.client.call(
      'DEBUG',
      'POPULATE',
      String(baseKeys),
      'key',
      String(BASE_VALUE_BYTES),
    );
    await master.client.call('BGREWRITEAOF');
    await waitFor(
      'BGREWRITEAOF to finish',
      async () => {
        const p = await master.info('persistence');
        return p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0';
      },
      300_000,
      20,
    );
    listen = await startListen(master.url, store, path.join(rfDir, 'listen.log'));
    await waitReplicaOnline(master.client, 300_000);
    const before = Number((await master.info('replication')).master_repl_offset);
    const aofBefore = await aofParts(path.join(masterDir, 'appendonlydir'));
    progress(
      `archive: base of ${fmtCount(baseKeys)} keys captured; writing ${fmtCount(perTest * BENCH_TESTS.length)}`,
    );
    const bench = await redisBenchmark(master.port, perTest);
    await master.client.call('SET', 'rf-bench:probe', String(Date.now()));
    await master.client.call('WAIT', '1', '120000');
    const after = Number((await master.info('replication')).master_repl_offset);
    const expected = await digest(master.client);
    const stopped = await listen.stop();
    listen = null;
    if (stopped.code !== 0) {
      throw new Error(
        `rf listen exited with ${stopped.code ?? stopped.signal} ${stopped.seconds.toFixed(1)} s after SIGTERM:\n${stopped.log}`,
      );
    }
    await master.stop();
    const aof = await aofParts(path.join(masterDir, 'appendonlydir'));
    history = {
      streamBytes: after - before,
      aofIncrBytes: aof.incr - aofBefore.incr,
      aofBaseBytes: aof.base,
      storeDbBytes: await diskUsage(path.join(store, 'db')),
      storeBaseBytes: await diskUsage(path.join(store, 'bases')),
      rps: bench.rps,
      expected,
    };
  } catch (err) {
    await listen?.stop();
    await master.stop();
    await removeDir(masterDir);
    await removeDir(rfDir);
    throw err;
  }

  const rows = [];
  const writesText = `base of ${fmtCount(baseKeys)} keys (DEBUG POPULATE, ${BASE_VALUE_BYTES} B values) + ${fmtCount(perTest * BENCH_TESTS.length)} redis-benchmark writes (${BENCH_TESTS.join(',')})`;
  if (want.has(4)) {
    const h = history;
    rows.push(
      row({
        id: '4',
        name: 'storage on disk',
        workload: `${writesText}; the master runs appendonly yes (appendfsync everysec, auto-aof-rewrite off)`,
        rf: `${(h.storeDbBytes / h.streamBytes).toFixed(2)} B per stream byte (${fmtBytes(h.storeDbBytes)} of LevelDB for ${fmtBytes(h.streamBytes)} of stream)`,
        reference: `AOF: ${(h.aofIncrBytes / h.streamBytes).toFixed(2)} B per stream byte (${fmtBytes(h.aofIncrBytes)} of incr AOF)`,
        ratio: h.storeDbBytes / h.aofIncrBytes,
        ratioText: `${(h.storeDbBytes / h.aofIncrBytes).toFixed(2)}× the AOF`,
        target: 'none (reported)',
        met: null,
        notes: [
          `bases: rf's snapshot ${fmtBytes(h.storeBaseBytes)}, the AOF's base RDB ${fmtBytes(h.aofBaseBytes)}; sizes are du (allocated blocks) once rf listen has stopped (LevelDB's log not yet compacted counts as it lies)`,
        ],
        data: h,
      }),
    );
  }

  if (want.has(5)) {
    try {
      rows.push(...(await restoreRows(history, masterDir, store, writesText, reps, progress)));
    } finally {
      await removeDir(masterDir);
      await removeDir(rfDir);
    }
  } else {
    await removeDir(masterDir);
    await removeDir(rfDir);
  }
  return rows;
}

async function nativeBoot(masterDir, expected) {
  const dir = await tempDir('archive-native');
  try {
    await cp(path.join(masterDir, 'appendonlydir'), path.join(dir, 'appendonlydir'), {
      recursive: true,
    });
    return (await bootAndCheck(dir, expected)) / 1000;
  } finally {
    await removeDir(dir);
  }
}

async function restoreOut(store, expected) {
  const dir = await tempDir('archive-out');
  try {
    const into = path.join(dir, 'restored');
    const r = await rfOk(['restore', '--store', store, '--until', 'latest', '--out', into], {
      measure: true,
    });
    const boot = (await bootAndCheck(into, expected)) / 1000;
    return { restore: r.ms / 1000, boot, total: r.ms / 1000 + boot, usage: r.usage };
  } finally {
    await removeDir(dir);
  }
}

async function restoreTarget(store, expected) {
  const t = await startRedis({ label: 'archive-target', args: ['--enable-debug-command', 'yes'] });
  try {
    const r = await rfOk(['restore', '--store', store, '--until', 'latest', '--target', t.url], {
      measure: true,
    });
    const got = await digest(t.client);
    if (got !== expected) throw new Error(`--target gave digest ${got}, expected ${expected}`);
    return { seconds: r.ms / 1000, usage: r.usage };
  } finally {
    await t.stop();
  }
}

/** The first line of an error, plus rf's own error line when a child process failed. */
function why(err) {
  const text = String(err?.message ?? err);
  const rfLine = /^(RfError|Error|TypeError)[^\n]*$/m.exec(text)?.[0];
  return `${text.split('\n')[0].slice(0, 160)}${rfLine ? ` — ${rfLine.slice(0, 200)}` : ''}`;
}

async function restoreRows(history, masterDir, store, writesText, reps, progress) {
  const native = [];
  const out = [];
  const target = [];
  let outError = null;
  let targetError = null;
  for (let rep = 0; rep < reps; rep++) {
    native.push(await nativeBoot(masterDir, history.expected));
    if (outError === null) {
      try {
        out.push(await restoreOut(store, history.expected));
      } catch (err) {
        outError = err;
      }
    }
    if (targetError === null) {
      try {
        target.push(await restoreTarget(store, history.expected));
      } catch (err) {
        targetError = err;
      }
    }
    progress(
      `restore ${rep + 1}/${reps}: native ${fmtSeconds(native.at(-1))}, --out ${out.length > 0 ? `${fmtSeconds(out.at(-1).restore)} + boot ${fmtSeconds(out.at(-1).boot)}` : 'failed'}, --target ${target.length > 0 ? fmtSeconds(target.at(-1).seconds) : 'failed'}`,
    );
  }
  const nat = median(native);
  const workload = `${writesText}; median of ${reps}; every restored instance checked with DEBUG DIGEST against the master`;
  const reference = `${fmtSeconds(nat)}: redis-server booting a copy of the master's own appendonlydir until loading:0`;
  const rows = [];
  if (outError !== null) {
    rows.push(failed('5a', 'restore --out, then boot', workload, reference, '≤ 1.2×', outError));
  } else {
    const outTotal = median(out.map((o) => o.total));
    rows.push(
      row({
        id: '5a',
        name: 'restore --out, then boot',
        workload,
        rf: `${fmtSeconds(outTotal)} (rf restore ${fmtSeconds(median(out.map((o) => o.restore)))} + boot ${fmtSeconds(median(out.map((o) => o.boot)))})`,
        reference,
        ratio: outTotal / nat,
        target: '≤ 1.2×',
        met: outTotal / nat <= 1.2,
        notes: [
          `rf restore --out: peak RSS ${fmtBytes(median(out.map((o) => o.usage?.peakRssBytes)))}, CPU ${median(out.map((o) => o.usage?.cpuSeconds)).toFixed(2)} s`,
        ],
        data: { native, out },
      }),
    );
  }
  if (targetError !== null) {
    rows.push(
      failed(
        '5b',
        'restore --target (empty redis-server)',
        workload,
        reference,
        '≤ 1.5×',
        targetError,
      ),
    );
  } else {
    const tgt = median(target.map((t) => t.seconds));
    rows.push(
      row({
        id: '5b',
        name: 'restore --target (empty redis-server)',
        workload,
        rf: `${fmtSeconds(tgt)} rf restore --target`,
        reference,
        ratio: tgt / nat,
        target: '≤ 1.5×',
        met: tgt / nat <= 1.5,
        notes: [
          `rf restore --target: peak RSS ${fmtBytes(median(target.map((t) => t.usage?.peakRssBytes)))}, CPU ${median(target.map((t) => t.usage?.cpuSeconds)).toFixed(2)} s`,
        ],
        data: { native, target },
      }),
    );
  }
  return rows;
}

function failed(id, name, workload, reference, target, err) {
  return row({
    id,
    name,
    workload,
    rf: 'failed',
    reference,
    target,
    met: false,
    notes: [`rf failed: ${why(err)}`],
  });
}
