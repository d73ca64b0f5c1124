import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { slotOf } from '../../src/replication/cluster-topology.js';
import { pruneShards, retainedRecord } from '../../src/retention/prune-cluster.js';
import { readCluster, writeCluster } from '../../src/store/cluster.js';
import { Store } from '../../src/store/store.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { ClusterProbe, type Moment } from '../helpers/cluster-probe.js';
import { replicationInfo, waitFor } from '../helpers/load.js';
import type { RedisServer } from '../helpers/redis.js';
import { type RfDaemon, rf } from '../helpers/rf.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * kill -9 of a cluster master and its replica promoted (CLUSTER FAILOVER TAKEOVER): once with
 * the replica holding everything (rf continues the shard's timeline), once with the replica
 * paused while the master took writes rf received (the new master never had them: rf starts a
 * new timeline and reports the fork). rf info must say exactly what the new master's INFO
 * replication implies, and every recorded moment must restore to the cluster's content; once
 * retention drops the timeline that held the lost writes, rf info still shows the fork, as held.
 */

let cluster: TestCluster;
let probe: ClusterProbe;
let work: string;
let store: string;
let daemon: RfDaemon;
const moments: Moment[] = [];
/** Replicas promoted in place of a killed master: rf is their only replica. */
const promoted = new Set<number>();
const TAGS = Array.from({ length: 18 }, (_, i) => `{k${i}}`);

interface ShardJson {
  id: string;
  master: string;
  timelines: Array<{ id: number; replid: string; durableOffset: number }>;
  forks: Array<{
    timeline: number;
    lostOn: number;
    offsets: [number, number];
    writes: number;
    master: string;
    held: boolean;
  }>;
}

async function shardsJson(): Promise<ShardJson[]> {
  const res = await rf(['info', '--store', store, '--name', 'k', '--json']);
  expect(res.code, res.stderr).toBe(0);
  return (JSON.parse(res.stdout) as { clusters: Array<{ shards: ShardJson[] }> }).clusters[0]!
    .shards;
}

/** A master, its replica, and a tag whose slot the master serves. */
async function shardWithReplica(skip: Set<number>) {
  for (const m of await cluster.masters()) {
    if (skip.has(m.port)) continue;
    for (const n of cluster.nodes) {
      if (n.pid === undefined || n.port === m.port) continue;
      const role = (await (await probe.clientOf(n)).call('ROLE')) as unknown[];
      if (String(role[0]) === 'slave' && Number(role[2]) === m.port) {
        const tags: string[] = [];
        for (const tag of TAGS)
          if ((await cluster.ownerOf(slotOf(tag))).port === m.port) tags.push(tag);
        return { master: m, replica: n, tags };
      }
    }
  }
  throw new Error('no master with a replica left');
}

/** `CLUSTER FAILOVER TAKEOVER` on `replica`, once it is a master and the cluster settled. */
async function takeOver(replica: RedisServer): Promise<void> {
  const c = await probe.clientOf(replica);
  await c.call('CLUSTER', 'FAILOVER', 'TAKEOVER');
  await waitFor(
    async () => String(((await c.call('ROLE')) as unknown[])[0]) === 'master',
    `${replica.port} to become a master`,
    30_000,
  );
  promoted.add(replica.port);
  await cluster.settled();
}

async function secondReplOffset(node: RedisServer) {
  const info = await (await probe.clientOf(node)).info('replication');
  return { replid2: info.master_replid2!, second: Number(info.second_repl_offset) };
}

beforeAll(async () => {
  cluster = await startCluster(3, 1);
  work = await makeTempDir('rf-cluster-killed-');
  store = path.join(work, 'store');
  probe = new ClusterProbe(cluster, store, work, 'k', (m) => (promoted.has(m.port) ? 1 : 2));
  daemon = await probe.startDaemon(3);
  await probe.writeRound(0, TAGS);
  moments.push(await probe.checkpoint('before any kill', TAGS));
}, 180_000);

afterAll(async () => {
  await daemon?.stop();
  await probe?.close();
  await cluster?.stop();
  if (work) await removeTempDir(work);
});

describe('a cluster master killed with SIGKILL', () => {
  it('continues the shard timeline when the promoted replica had everything', async () => {
    const { master, replica } = await shardWithReplica(new Set());
    const mark = daemon.lines.length;
    await master.kill('SIGKILL');
    await takeOver(replica);
    const resumed = await daemon.waitForLog(
      (l) =>
        l.msg === 'partial resync accepted (+CONTINUE): same timeline, no gap' &&
        l.master === `127.0.0.1:${replica.port}`,
      60_000,
      mark,
    );
    expect(resumed.timeline).toBe(1);
    await probe.writeRound(1, TAGS);
    moments.push(await probe.checkpoint('after a failover that continued', TAGS));
    const shard = (await shardsJson()).find((s) => s.master === `127.0.0.1:${replica.port}`)!;
    expect(shard.timelines).toHaveLength(1);
    expect(shard.forks).toEqual([]);
  }, 180_000);

  it('reports a fork when the promoted replica lacks writes rf holds', async () => {
    const { master, replica, tags } = await shardWithReplica(promoted);
    expect(tags.length).toBeGreaterThan(0);
    const mc = await probe.clientOf(master);
    // The replica paused, and its link cut by the master: a paused process's socket would
    // still take the writes into its kernel buffer. rf, not paused, reconnects and continues.
    await replica.kill('SIGSTOP');
    const lost = 10;
    try {
      await mc.call('CLIENT', 'KILL', 'TYPE', 'replica');
      await waitFor(
        async () => {
          const info = await replicationInfo(mc);
          return info.replicas.length === 1 && info.replicas[0]!.state === 'online';
        },
        'rf alone to be back as a replica of the master',
        30_000,
      );
      for (let i = 0; i < lost; i++) await mc.call('SET', `${tags[0]}:lost${i}`, String(i));
      // rf has acknowledged every byte of the master; the paused replica has none of these.
      await waitFor(
        async () => {
          const info = await replicationInfo(mc);
          return info.replicas.length === 1 && info.replicas[0]!.offset === info.masterOffset;
        },
        'rf to acknowledge the writes the replica never got',
        30_000,
      );
    } finally {
      await master.kill('SIGKILL');
      await replica.kill('SIGCONT');
    }
    const before = (await shardsJson()).find((s) => s.master === `127.0.0.1:${master.port}`)!;
    const held = before.timelines.at(-1)!;
    const mark = daemon.lines.length;
    await takeOver(replica);
    const { replid2, second } = await secondReplOffset(replica);
    expect(replid2).toBe(held.replid);
    await daemon.waitForLog(
      (l) => l.master === `127.0.0.1:${replica.port}` && l.msg === 'new timeline after a gap',
      60_000,
      mark,
    );
    const shard = (await shardsJson()).find((s) => s.id === before.id)!;
    // The new master's own offsets say it lacks bytes rf holds: rf must report exactly those.
    expect(held.durableOffset).toBeGreaterThanOrEqual(second);
    expect(shard.timelines).toHaveLength(2);
    expect(shard.forks).toEqual([
      {
        timeline: shard.timelines[1]!.id,
        lostOn: held.id,
        replid: held.replid,
        master: `127.0.0.1:${replica.port}`,
        offsets: [second, held.durableOffset],
        from: expect.any(String),
        until: expect.any(String),
        writes: lost,
        held: true,
      },
    ]);
    const text = await rf(['info', '--store', store, '--name', 'k']);
    expect(text.stdout).toContain(`fork: timeline ${held.id} holds ${lost} writes`);
    await probe.writeRound(2, TAGS);
    moments.push(await probe.checkpoint('after a failover that lost writes', TAGS));
    for (const m of moments) {
      expect((await probe.restoredOut(m.t)).content, `--out at ${m.label}`).toEqual(m.content);
      expect(await probe.restoredInto(m.t), `--into at ${m.label}`).toEqual(m.content);
    }
  }, 300_000);

  it('--retain to a window after the fork drops the timeline that held the lost writes, and says so', async () => {
    const forked = (await shardsJson()).find((x) => x.forks.length > 0)!;
    expect(forked.timelines).toHaveLength(2);
    const last = moments.at(-1)!;
    expect((await daemon.stop()).code).toBe(0);
    const s = await Store.open(store, { create: false });
    const record = retainedRecord((await readCluster(s, 'k'))!, last.t, 60_000, Date.now());
    await writeCluster(s, record);
    // The MIGRATE look-back kept before the window, shortened to this test's seconds.
    const result = await pruneShards(s, record.shards, last.t, 60_000, silentLogger(), 1_000);
    await s.close();
    expect(result.timelinesDropped).toBeGreaterThanOrEqual(1);

    const after = (await shardsJson()).find((x) => x.id === forked.id)!;
    expect(after.timelines.map((t) => t.id)).toEqual([forked.timelines[1]!.id]);
    // The master lost those writes all the same; rf no longer holds them, and says so.
    expect(after.forks).toEqual([{ ...forked.forks[0]!, held: false }]);
    const text = await rf(['info', '--store', store, '--name', 'k']);
    expect(text.stdout).toContain(
      `fork: timeline ${forked.forks[0]!.lostOn} held (retention has dropped it since)`,
    );
    expect((await probe.restoredOut(last.t)).content).toEqual(last.content);
    expect(await probe.restoredInto(last.t)).toEqual(last.content);
    const verify = await rf(['verify', '--store', store, '--name', 'k'], { timeoutMs: 120_000 });
    expect(verify.code, `${verify.stdout}\n${verify.stderr}`).toBe(0);
    const refused = await probe.restore(moments[1]!.t, '--out', path.join(work, 'refused'));
    expect(refused.code).toBe(2);
    expect(JSON.parse(refused.stdout).error.code).toBe('RF_TIME_OUT_OF_RANGE');
  }, 300_000);
});
