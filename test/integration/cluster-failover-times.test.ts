import { describe, expect, it } from 'vitest';
import { LIVE_TOLERANCE_MS } from '../../src/bounds/windows.js';
import type { RedisClient } from '../../src/resp/client.js';
import { startCluster, tagServedBy } from '../helpers/cluster.js';
import { ClusterProbe } from '../helpers/cluster-probe.js';
import { startRedis } from '../helpers/redis.js';
import { rf } from '../helpers/rf.js';
import { testScope } from '../helpers/scope.js';
import { expectTimesBoundSends, storedCounters } from '../helpers/stamped.js';

/**
 * Write times across a failover: once a shard's session follows the promoted replica, the
 * master's offset clock rf bounds its stamps with must be the new master's. Writes sent to the
 * old master, then to the new one, keep the times they were sent; none is marked late; and a
 * restore at a T among the new master's writes holds exactly those sent by T.
 */
const scope = testScope();

/** Send to capture on loopback, with room for a busy machine (as cluster-times.test.ts). */
const LATENCY_MS = 25;

async function stamped(
  c: RedisClient,
  tag: string,
  from: number,
  count: number,
  sentAt: number[],
): Promise<void> {
  for (let i = from; i < from + count; i++) {
    const now = Date.now();
    sentAt[i] = now;
    await c.call('SET', `ctr:${i}:{${tag}}`, String(now));
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('rf listen --cluster: write times across a failover', () => {
  it('keeps send times on both sides of a CLUSTER FAILOVER, and restores by them', async () => {
    const cluster = await startCluster(3, 1);
    scope.defer(() => cluster.stop());
    const store = await scope.storeDir();
    const probe = new ClusterProbe(cluster, store, store, 'c', 2);
    scope.defer(() => probe.close());
    const daemon = await probe.startDaemon(3);
    scope.defer(() => daemon.stop('SIGKILL'));

    const old = cluster.nodes[0]!;
    const masters = await cluster.masters();
    const heir = (
      await Promise.all(
        cluster.nodes
          .filter((n) => !masters.includes(n))
          .map(async (n) => ({ n, m: await cluster.masterOf(n) })),
      )
    ).find((x) => x.m.port === old.port)!.n;
    const tag = await tagServedBy(cluster, old);
    const sentAt: number[] = [];
    await stamped(await probe.clientOf(old), tag, 0, 200, sentAt);

    const mark = daemon.lines.length;
    await cluster.failover(heir);
    await daemon.waitForLog(
      (l) =>
        l.msg === 'partial resync accepted (+CONTINUE): same timeline, no gap' &&
        l.master === `127.0.0.1:${heir.port}`,
      60_000,
      mark,
    );
    await stamped(await probe.clientOf(heir), tag, 200, 200, sentAt);
    await probe.allAcked();

    const stored = await storedCounters(store, 'c');
    expect(stored.size).toBe(400);
    expectTimesBoundSends(sentAt, stored, LATENCY_MS);
    for (const [i, s] of stored) {
      expect(s.late, `ctr:${i} marked late`).toBeNull();
      expect(s.time - sentAt[i]!, `ctr:${i} stored late`).toBeLessThanOrEqual(LIVE_TOLERANCE_MS);
    }
    const info = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout) as {
      clusters: Array<{ shards: Array<{ master: string; timelines: unknown[]; gaps: unknown[] }> }>;
    };
    const shard = info.clusters[0]!.shards.find((s) => s.master === `127.0.0.1:${heir.port}`);
    expect(shard, JSON.stringify(info.clusters[0]!.shards)).toBeDefined();
    expect(shard!.timelines).toHaveLength(1);
    expect(shard!.gaps).toEqual([]);

    // A T among the new master's writes: every key sent a latency before it is there, none after.
    const t = sentAt[300]!;
    const target = await startRedis();
    scope.defer(() => target.stop());
    const res = await rf(
      ['restore', '--store', store, '--name', 'c', '--until', `@${t / 1000}`, '--into', target.url],
      { timeoutMs: 120_000 },
    );
    expect(res.code, res.stderr).toBe(0);
    const tc = await target.client();
    scope.defer(() => tc.close());
    for (let i = 0; i < 400; i++) {
      const present = (await tc.call('EXISTS', `ctr:${i}:{${tag}}`)) === 1;
      if (sentAt[i]! <= t - LATENCY_MS) expect(present, `ctr:${i} sent before T`).toBe(true);
      if (sentAt[i]! > t) expect(present, `ctr:${i} sent after T`).toBe(false);
    }
  }, 240_000);
});
