import { existsSync } from 'node:fs';
import { cp, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ClusterListenConfig, ClusterListener } from '../../src/daemon/cluster-listener.js';
import { silentLogger } from '../../src/logger.js';
import { pruneShards, retainedRecord } from '../../src/retention/prune-cluster.js';
import { readCluster, writeCluster } from '../../src/store/cluster.js';
import { type BatchOp, Store } from '../../src/store/store.js';
import { startCluster, type TestCluster, tagServedBy } from '../helpers/cluster.js';
import { ClusterProbe, type Moment, pruneClusterStore } from '../helpers/cluster-probe.js';
import { waitFor } from '../helpers/load.js';
import { rf } from '../helpers/rf.js';
import { rollSchedule } from '../helpers/roll-schedule.js';
import { testScope } from '../helpers/scope.js';

/**
 * rf listen --cluster with --roll-base-every and --retain, on a real 3-master cluster: each shard's
 * base is rolled in a scratch redis-server, slots are resharded, and the archive is pruned to a
 * window that starts after the reshard. Every moment inside the window restores to exactly the
 * content recorded key by key (--out booted per shard, and --into one standalone); a moment
 * before it is refused, and a prune cut short by a crash leaves a cluster that restores. The
 * prune is given its window's start, as retention.test.ts does with pruneArchive; the MIGRATE
 * look-back it keeps before the window is shortened to match the test's seconds. The command
 * line refuses rolls under 5m; the daemon takes any period.
 */
const scope = testScope();

function config(cluster: TestCluster, store: string, more: Partial<ClusterListenConfig>) {
  const seed = cluster.nodes[0]!;
  return {
    sourceUrl: cluster.url,
    endpoint: { host: seed.host, port: seed.port, db: 0, tls: false },
    store,
    name: 'c',
    refreshMs: 1_000,
    connectTimeoutMs: 5_000,
    readTimeoutMs: 60_000,
    maxSegmentBytes: 4096,
    flushIntervalMs: 10,
    ackIntervalMs: 1000,
    listeningPort: 0,
    baseEveryMs: null,
    retainMs: null,
    ...more,
  } satisfies ClusterListenConfig;
}

function start(listener: ClusterListener): () => Promise<void> {
  const running = listener.run();
  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopped ??= (async () => {
      listener.stop();
      await running;
    })();
    return stopped;
  };
  scope.defer(stop);
  return stop;
}

interface ClusterInfo {
  name: string;
  shards: Array<{ id: string; source: string; restorable: Array<{ from: string }> }>;
  restorable: Array<{ from: string; until: string }>;
  slotChanges: Array<{ at: string }>;
  retention: { retainMs: number; windowStart: string } | null;
}

async function clusterInfo(store: string): Promise<ClusterInfo> {
  const res = await rf(['info', '--store', store, '--json']);
  expect(res.code, res.stderr).toBe(0);
  return (JSON.parse(res.stdout).clusters as ClusterInfo[]).find((c) => c.name === 'c')!;
}

async function planBase(store: string, source: string, until: string) {
  const res = await rf([
    'restore',
    '--store',
    store,
    '--name',
    source,
    '--until',
    until,
    '--dry-run',
    '--json',
  ]);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout).base as { offset: number; rolled: { builtBy: string } | null };
}

describe('rf listen --cluster --roll-base-every --retain', () => {
  it('rolls every shard, prunes to a window after a reshard, and restores inside it exactly', async () => {
    const cluster = await startCluster(3, 0);
    scope.defer(() => cluster.stop());
    const store = await scope.storeDir();
    const work = path.dirname(store);
    const masters = cluster.nodes.slice(0, 3);
    const tags = await Promise.all(
      masters.map(async (m) => `{${await tagServedBy(cluster, m, 'r')}}`),
    );
    const probe = new ClusterProbe(cluster, store, work, 'c', 1);
    scope.defer(() => probe.close());
    await probe.writeRound(0, tags);

    const listener = new ClusterListener(
      config(cluster, store, { rollBases: rollSchedule() }),
      silentLogger(),
    );
    const stop = start(listener);
    await waitFor(
      () => listener.status().shards.filter((s) => s.session?.phase === 'streaming').length === 3,
      'every shard to stream',
      90_000,
    );
    let round = 1;
    const rounds = async (n: number) => {
      for (const end = round + n; round < end; round++) await probe.writeRound(round, tags);
    };
    const moments: Moment[] = [];
    await rounds(20);
    moments.push(await probe.checkpoint('before the reshard', tags));
    await rounds(20);
    await cluster.reshard(masters[0]!, masters[1]!, 200);
    await rounds(20);
    // The window starts here: after the reshard, with rolled bases of every shard before it.
    await waitFor(
      async () => {
        for (const s of listener.status().shards)
          if ((await planBase(store, s.source, 'latest')).rolled === null) return false;
        return true;
      },
      'a rolled base of every shard',
      90_000,
      500,
    );
    await rounds(10);
    moments.push(await probe.checkpoint('the window start', tags));
    await rounds(20);
    moments.push(await probe.checkpoint('inside the window', tags));
    // Quiet: the daemon's own window (below) starts just after 'inside', and is stopped long
    // before it reaches 'later'.
    await new Promise((r) => setTimeout(r, 15_000));
    await rounds(20);
    moments.push(await probe.checkpoint('later', tags));
    await waitFor(
      async () =>
        Date.parse((await clusterInfo(store)).restorable.at(-1)?.until ?? '1970-01-01T00:00:00Z') >=
        moments[3]!.t,
      'the cluster restorable to reach the last moment',
      30_000,
      250,
    );
    await stop();
    const [before, windowStart, inside, later] = moments as [Moment, Moment, Moment, Moment];

    // A crash midway (a kill -9 lands between two batches, each atomic in LevelDB), on a copy:
    // what is left restores inside the window, and the next run finishes the job.
    const crashed = path.join(work, 'crashed');
    await cp(store, crashed, { recursive: true });
    const cs = await Store.open(crashed, { create: false });
    const realBatch = cs.batch.bind(cs);
    let batches = 0;
    cs.batch = async (ops: BatchOp[]) => {
      if (++batches === 4) throw new Error('simulated crash');
      return realBatch(ops);
    };
    const crashRecord = retainedRecord(
      (await readCluster(cs, 'c'))!,
      windowStart.t,
      60_000,
      Date.now(),
    );
    await writeCluster(cs, crashRecord);
    await expect(
      pruneShards(cs, crashRecord.shards, windowStart.t, 60_000, silentLogger(), 1_000),
    ).rejects.toThrow('simulated crash');
    await cs.close();
    const crashWork = path.join(work, 'crash-restores');
    await mkdir(crashWork);
    const crashProbe = new ClusterProbe(cluster, crashed, crashWork, 'c', 1);
    scope.defer(() => crashProbe.close());
    expect((await crashProbe.restoredOut(windowStart.t)).content).toEqual(windowStart.content);
    const cs2 = await Store.open(crashed, { create: false });
    await pruneShards(cs2, crashRecord.shards, windowStart.t, 60_000, silentLogger(), 1_000);
    await cs2.close();
    expect((await crashProbe.restoredOut(later.t)).content).toEqual(later.content);

    // The prune the daemon runs, given its window's start: the record first, then each shard.
    const { before: record, result } = await pruneClusterStore(store, 'c', windowStart.t);
    const slotChanges = record.slots.length;
    expect(slotChanges).toBeGreaterThanOrEqual(2);
    expect(result.basesDeleted).toBeGreaterThan(0);
    expect(result.segmentsDeleted).toBeGreaterThan(0);

    const info = await clusterInfo(store);
    expect(info.retention?.windowStart).toBe(new Date(windowStart.t).toISOString());
    expect(Date.parse(info.restorable[0]!.from)).toBe(windowStart.t);
    // The reshard came before the window: only the owners in force at its start are kept.
    expect(info.slotChanges.length).toBeLessThan(slotChanges);
    expect(Date.parse(info.slotChanges[0]!.at)).toBe(windowStart.t);

    for (const m of [windowStart, inside, later]) {
      const out = await probe.restoredOut(m.t);
      expect(out.content, m.label).toEqual(m.content);
    }
    expect(await probe.restoredInto(inside.t)).toEqual(inside.content);
    // A restore after the rolled bases starts from one, for every shard.
    for (const shard of info.shards)
      expect((await planBase(store, shard.source, `@${later.t / 1000}`)).rolled?.builtBy).toBe(
        'rf',
      );

    const verify = await rf(['verify', '--store', store, '--name', 'c'], { timeoutMs: 120_000 });
    expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);

    const refusedOut = path.join(work, 'refused');
    const refused = await probe.restore(before.t, '--out', refusedOut);
    expect(refused.code).toBe(2);
    expect(existsSync(refusedOut)).toBe(false);
    const err = JSON.parse(refused.stdout).error as { code: string; message: string };
    expect(err.code).toBe('RF_TIME_OUT_OF_RANGE');
    expect(err.message).toContain('retained window');

    // The daemon's own loop: the record follows its window, and what it keeps still restores.
    const retainMs = Date.now() - inside.t;
    const again = new ClusterListener(config(cluster, store, { retainMs }), silentLogger());
    const stopAgain = start(again);
    await waitFor(
      async () => {
        const r = (await clusterInfo(store)).retention;
        return r !== null && r.retainMs === retainMs && Date.parse(r.windowStart) > inside.t;
      },
      'rf listen to prune to its own window',
      60_000,
      250,
    );
    await stopAgain();
    const last = await clusterInfo(store);
    expect(Date.parse(last.slotChanges[0]!.at)).toBe(Date.parse(last.retention!.windowStart));
    expect((await probe.restoredOut(later.t)).content).toEqual(later.content);
    const gone = await probe.restore(inside.t, '--out', path.join(work, 'gone'));
    expect(gone.code).toBe(2);
    expect(JSON.parse(gone.stdout).error.code).toBe('RF_TIME_OUT_OF_RANGE');
  }, 400_000);
});
