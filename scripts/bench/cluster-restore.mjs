/**
 * Row 17: `rf restore --out` of a 3-shard cluster archive against the native limit, the slowest
 * shard's own AOF load. Every master keeps an AOF (appendonly yes, no automatic rewrite): a base
 * (redis-benchmark SETs, then BGREWRITEAOF) plus every write after it; rf listen --cluster takes
 * the same base and then the writes. The reference boots a copy of each master's appendonlydir
 * until loading:0; rf restores every shard (in parallel, one store reader) and each restored
 * directory is booted and its DEBUG DIGEST checked against its master's.
 */
import { cp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { bootDigest } from './archive.mjs';
import { startCluster } from './cluster-env.mjs';
import { median, removeDir, tempDir, waitFor } from './env.mjs';
import { fmtBytes, fmtCount, fmtSeconds, row } from './format.mjs';
import { rfOk, startListen } from './rf.mjs';
import { BENCH_TESTS, redisBenchmark } from './workloads.mjs';

const NAME = 'bench';
const AOF_ARGS = [
  // A PING a second: an idle shard's restorable range then reaches the present within a second.
  '--repl-ping-replica-period',
  '1',
  '--appendonly',
  'yes',
  '--auto-aof-rewrite-percentage',
  '0',
  '--enable-debug-command',
  'yes',
];

async function rewriteAof(node) {
  await node.client.call('BGREWRITEAOF');
  await waitFor(
    `BGREWRITEAOF on ${node.port} to finish`,
    async () => {
      const p = await node.info('persistence');
      return p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0';
    },
    300_000,
    20,
  );
}

/** Boots `dir` and checks its digest; the seconds until loading:0. */
async function bootChecked(dir, expected, what) {
  const { digest, readyMs } = await bootDigest(dir);
  if (digest !== expected)
    throw new Error(`${what} booted with digest ${digest}, its master had ${expected}`);
  return readyMs / 1000;
}

/** The slowest of the masters' own appendonlydirs to load, each copied and booted. */
async function nativeSlowest(cluster, digests) {
  let slowest = 0;
  for (const [i, node] of cluster.nodes.entries()) {
    const dir = await tempDir('cluster-native');
    try {
      await cp(path.join(node.dir, 'appendonlydir'), path.join(dir, 'appendonlydir'), {
        recursive: true,
      });
      slowest = Math.max(slowest, await bootChecked(dir, digests[i], `master ${node.port}'s AOF`));
    } finally {
      await removeDir(dir);
    }
  }
  return slowest;
}

/** rf restore --out of every shard, then each shard booted: restore seconds, slowest boot. */
async function restoreOut(store, byMaster) {
  const dir = await tempDir('cluster-out');
  try {
    const out = path.join(dir, 'restored');
    const r = await rfOk(
      ['restore', '--store', store, '--name', NAME, '--until', 'latest', '--out', out],
      { measure: true },
    );
    const manifest = JSON.parse(await readFile(path.join(out, 'cluster.json'), 'utf8'));
    if (manifest.shards.length !== byMaster.size)
      throw new Error(`cluster.json lists ${manifest.shards.length} shards, not ${byMaster.size}`);
    let boot = 0;
    for (const shard of manifest.shards) {
      const key = shard.slots.map(([a, b]) => `${a}-${b}`).join(',');
      const expected = byMaster.get(key);
      if (expected === undefined) throw new Error(`no master owned slots ${key}`);
      boot = Math.max(
        boot,
        await bootChecked(path.join(out, shard.dir), expected, `shard ${shard.id}`),
      );
    }
    return { restore: r.ms / 1000, boot, usage: r.usage };
  } finally {
    await removeDir(dir);
  }
}

/**
 * Waits until the cluster's restorable range (every shard's) reaches `sinceMs`: a shard whose last
 * write came a little before another's is known to be idle only from its master's next PING, and
 * until then `--until latest` stops at its last write, before the other shards' last writes.
 */
async function restorableReaches(store, sinceMs) {
  await waitFor(
    'the cluster restorable range to reach the end of the load',
    async () => {
      const info = JSON.parse((await rfOk(['info', '--store', store, '--json'])).stdout);
      const until = info.clusters?.find((c) => c.name === NAME)?.restorable?.at(-1)?.until;
      return until !== undefined && Date.parse(until) >= sinceMs;
    },
    120_000,
    250,
  );
}

/** Slot ranges per master port, as "a-b,c-d" in the order cluster.json gives them (ascending). */
async function slotsByPort(node) {
  const ranges = await node.client.call('CLUSTER', 'SLOTS');
  const by = new Map();
  for (const [from, to, owner] of [...ranges].sort((x, y) => x[0] - y[0])) {
    const port = Number(owner[1]);
    by.set(port, [...(by.get(port) ?? []), `${from}-${to}`]);
  }
  return by;
}

export async function clusterRestoreRows(cfg, _want, progress) {
  const { baseKeys, writes, restoreReps: reps } = cfg.cluster;
  const perTest = Math.floor(writes / BENCH_TESTS.length);
  const cluster = await startCluster(3, { label: 'cluster-aof', args: AOF_ARGS });
  const rfDir = await tempDir('cluster-restore-rf');
  const store = path.join(rfDir, 'store');
  let listen = null;
  try {
    await redisBenchmark(cluster.seed.port, baseKeys, {
      cluster: true,
      tests: ['set'],
      keyspace: baseKeys,
      valueBytes: 64,
    });
    await Promise.all(cluster.nodes.map(rewriteAof));
    listen = await startListen(cluster.url, store, path.join(rfDir, 'listen.log'), [
      '--cluster',
      '--name',
      NAME,
    ]);
    await cluster.replicasOnline();
    await redisBenchmark(cluster.seed.port, perTest, { cluster: true });
    await cluster.acked();
    await restorableReaches(store, Date.now());
    const stopped = await listen.stop();
    listen = null;
    if (stopped.code !== 0)
      throw new Error(
        `rf listen --cluster exited ${stopped.code ?? stopped.signal}:\n${stopped.log}`,
      );
    const digests = await Promise.all(
      cluster.nodes.map(async (n) => String(await n.client.call('DEBUG', 'DIGEST'))),
    );
    const sizes = await Promise.all(cluster.nodes.map((n) => n.client.call('DBSIZE')));
    const slots = await slotsByPort(cluster.seed);
    const byMaster = new Map(
      cluster.nodes.map((n, i) => [slots.get(n.port).join(','), digests[i]]),
    );
    progress(`cluster restore: history built, keys per master ${sizes.join(', ')}`);
    const loadAvg = os.loadavg()[0];
    const native = [];
    const out = [];
    for (let rep = 0; rep < reps; rep++) {
      native.push(await nativeSlowest(cluster, digests));
      out.push(await restoreOut(store, byMaster));
      progress(
        `cluster restore ${rep + 1}/${reps}: native slowest ${fmtSeconds(native.at(-1))}, --out ${fmtSeconds(out.at(-1).restore)} + slowest boot ${fmtSeconds(out.at(-1).boot)}`,
      );
    }
    const nat = median(native);
    const restore = median(out.map((o) => o.restore));
    const boot = median(out.map((o) => o.boot));
    const total = median(out.map((o) => o.restore + o.boot));
    return [
      row({
        id: '17',
        name: 'cluster restore --out, 3 shards',
        workload: `3-master cluster with AOF: a base of ${fmtCount(baseKeys)} SETs of 64 B (redis-benchmark --cluster -r ${fmtCount(baseKeys)}; ${sizes.join(' + ')} keys), then redis-benchmark --cluster -t ${BENCH_TESTS.join(',')} -n ${fmtCount(perTest)} per test (${fmtCount(perTest * BENCH_TESTS.length)} writes across the shards); median of ${reps}; every restored shard checked with DEBUG DIGEST against its master`,
        rf: `${fmtSeconds(total)} (rf restore --out of all 3 shards ${fmtSeconds(restore)} + the slowest shard's boot ${fmtSeconds(boot)})`,
        reference: `${fmtSeconds(nat)}: the slowest master's own appendonlydir, copied and booted until loading:0`,
        ratio: total / nat,
        target: '≤ 1.3×',
        met: total / nat <= 1.3,
        notes: [
          `rf restore --out alone: ${(restore / nat).toFixed(2)}× the native load; peak RSS ${fmtBytes(median(out.map((o) => o.usage?.peakRssBytes)))}, CPU ${median(out.map((o) => o.usage?.cpuSeconds)).toFixed(2)} s; load average ${loadAvg.toFixed(1)} when the timings began`,
        ],
        data: { native, out, loadAvg, sizes },
      }),
    ];
  } finally {
    await listen?.stop();
    await cluster.stop();
    await removeDir(rfDir);
  }
}
