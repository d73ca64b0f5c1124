/**
 * Rows 16 and 18: `rf listen --cluster` on a real 3-master cluster. Row 16: the cluster's total
 * throughput under `redis-benchmark --cluster` with rf attached against one more real replica per
 * master (redis-server --replicaof), interleaved, the median of the per-round ratios. Row 18:
 * rf's peak RSS with 3 and with 6 shards under a light load.
 */
import os from 'node:os';
import path from 'node:path';
import { startCluster } from './cluster-env.mjs';
import { median, peakRss, removeDir, tempDir, waitNoReplica } from './env.mjs';
import { fmtBytes, fmtCount, fmtRate, row } from './format.mjs';
import { startListen } from './rf.mjs';
import { BENCH_TESTS, KEYSPACE, redisBenchmark } from './workloads.mjs';

/** rf listen --cluster on `cluster`; resolves once every master lists it online. */
async function attachRf(cluster) {
  const dir = await tempDir('cluster-rf');
  let listen = null;
  try {
    listen = await startListen(cluster.url, path.join(dir, 'store'), path.join(dir, 'listen.log'), [
      '--cluster',
      '--name',
      'bench',
    ]);
    await cluster.replicasOnline();
  } catch (err) {
    await listen?.stop();
    await removeDir(dir);
    throw err;
  }
  return {
    pid: listen.pid,
    async detach() {
      const stopped = await listen.stop();
      await removeDir(dir);
      await Promise.all(cluster.nodes.map((n) => waitNoReplica(n.client)));
      if (stopped.code !== 0)
        throw new Error(
          `rf listen --cluster exited ${stopped.code ?? stopped.signal}:\n${stopped.log}`,
        );
    },
  };
}

async function attachReplicas(cluster) {
  const replicas = await cluster.attachReplicas();
  return {
    pid: null,
    async detach() {
      await Promise.all(replicas.map((r) => r.stop()));
      await Promise.all(cluster.nodes.map((n) => waitNoReplica(n.client)));
    },
  };
}

const load = (cluster, n) => redisBenchmark(cluster.seed.port, n, { cluster: true });

async function overheadRow(cfg, progress) {
  const { requestsPerTest: n, reps, warmUpPerTest } = cfg.cluster;
  const cluster = await startCluster(3, { label: 'cluster-capture' });
  const rounds = [];
  try {
    const loadAvg = os.loadavg()[0];
    for (let rep = 0; rep < reps; rep++) {
      const round = { rep };
      // Alternate which goes first, so a drift in the machine's load favours neither.
      const kinds = rep % 2 === 0 ? ['replica', 'rf'] : ['rf', 'replica'];
      for (const kind of kinds) {
        await Promise.all(cluster.nodes.map((node) => node.client.call('FLUSHALL')));
        const a = kind === 'rf' ? await attachRf(cluster) : await attachReplicas(cluster);
        try {
          await load(cluster, warmUpPerTest);
          await cluster.acked();
          const bench = await load(cluster, n);
          await cluster.acked();
          round[kind] = bench.rps;
          if (kind === 'rf') round.rss = peakRss(a.pid);
        } finally {
          await a.detach();
        }
        progress(`cluster capture ${rep + 1}/${reps} ${kind}: ${fmtRate(round[kind])}`);
      }
      rounds.push(round);
    }
    const paired = median(rounds.map((r) => r.rf / r.replica));
    const rf = median(rounds.map((r) => r.rf));
    const rep = median(rounds.map((r) => r.replica));
    return row({
      id: '16',
      name: 'cluster capture overhead: 3 masters',
      workload: `redis-benchmark --cluster -P 16 -t ${BENCH_TESTS.join(',')} -r ${fmtCount(KEYSPACE)} -n ${fmtCount(n)} (per test) against a 3-master cluster, ${reps} interleaved rounds (order alternating), each attached side first taking an uncounted ${fmtCount(warmUpPerTest)}-per-test load; the cluster's total throughput`,
      rf: `${fmtRate(rf)} with one rf listen --cluster attached to every master (median)`,
      reference: `${fmtRate(rep)} with one redis-server --replicaof per master (median)`,
      ratio: paired,
      ratioText: `${paired.toFixed(2)}× (median of per-round ratios)`,
      target: '≥ 0.95×',
      met: paired >= 0.95,
      notes: [
        `per round rf / replicas: ${rounds.map((r) => `${fmtRate(r.rf, '')}/${fmtRate(r.replica, '')}`).join(', ')}; rf listen --cluster peak RSS ${fmtBytes(Math.max(...rounds.map((r) => r.rss)))}; load average ${loadAvg.toFixed(1)} at the start`,
      ],
      data: { rounds, paired, loadAvg },
    });
  } finally {
    await cluster.stop();
  }
}

/** rf listen --cluster's peak RSS on an `masters`-master cluster after a light load. */
async function rssWith(masters, requestsPerTest) {
  const cluster = await startCluster(masters, { label: `cluster-rss${masters}` });
  try {
    const a = await attachRf(cluster);
    try {
      await load(cluster, requestsPerTest);
      await cluster.acked();
      return peakRss(a.pid);
    } finally {
      await a.detach();
    }
  } finally {
    await cluster.stop();
  }
}

async function rssRow(cfg, progress) {
  const n = cfg.cluster.rssRequestsPerTest;
  const loadAvg = os.loadavg()[0];
  const three = await rssWith(3, n);
  progress(`cluster rss: 3 shards ${fmtBytes(three)}`);
  const six = await rssWith(6, n);
  progress(`cluster rss: 6 shards ${fmtBytes(six)}`);
  const perShard = (six - three) / 3;
  return row({
    id: '18',
    name: 'rf listen --cluster peak RSS',
    workload: `3-master and 6-master clusters, rf listen --cluster from an empty cluster, then redis-benchmark --cluster -P 16 -t ${BENCH_TESTS.join(',')} -n ${fmtCount(n)} (per test), all acknowledged`,
    rf: `${fmtBytes(three)} with 3 shards, ${fmtBytes(six)} with 6`,
    reference: 'none',
    ratioText: `${fmtBytes(perShard)} per added shard`,
    target: 'none (reported)',
    notes: [`load average ${loadAvg.toFixed(1)} at the start`],
    data: { three, six, perShard, loadAvg },
  });
}

export async function clusterRows(cfg, want, progress) {
  const rows = [];
  if (want.has(16)) rows.push(await overheadRow(cfg, progress));
  if (want.has(18)) rows.push(await rssRow(cfg, progress));
  return rows;
}
