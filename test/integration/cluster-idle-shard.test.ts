import { describe, expect, it } from 'vitest';
import { clusterListenArgs, startCluster, tagServedBy } from '../helpers/cluster.js';
import { waitFor } from '../helpers/load.js';
import { startRedis } from '../helpers/redis.js';
import { rf } from '../helpers/rf.js';
import { testScope } from '../helpers/scope.js';

/**
 * A cluster restores where every shard can, so a shard that stopped writing must not hold the
 * cluster's restorable end back at its last write: each shard records, as a standalone rf listen
 * does, that its master's sampled offset is all durable, and the end follows the present.
 */
const scope = testScope();

interface ClusterJson {
  restorable: { from: string; until: string }[];
}

async function clusterUntil(store: string): Promise<number> {
  const res = await rf(['info', '--store', store, '--json']);
  expect(res.code, res.stderr).toBe(0);
  const c = (JSON.parse(res.stdout) as { clusters: ClusterJson[] }).clusters[0]!;
  const last = c.restorable[c.restorable.length - 1];
  return last === undefined ? 0 : Date.parse(last.until);
}

describe('rf listen --cluster with idle shards', () => {
  it('keeps the restorable end at the present while only one shard writes, and latest holds that shard’s last write', async () => {
    const cluster = await startCluster(3, 0);
    scope.defer(() => cluster.stop());
    // The masters' PINGs would move an idle shard's end every 10 s: make them rare.
    for (const n of cluster.nodes) {
      const c = await n.client();
      await c.call('CONFIG', 'SET', 'repl-ping-replica-period', '3600');
    }
    const busy = cluster.nodes[0]!;
    const tag = await tagServedBy(cluster, busy);
    const store = await scope.storeDir();
    const d = scope.daemon(clusterListenArgs(cluster.url, store));
    for (let i = 0; i < 3; i++)
      await d.waitForLog((l) => l.msg === 'first timeline started from the base', 60_000);
    const c = await busy.client();
    // Only the busy shard writes from here on; the other two stay idle.
    await new Promise((r) => setTimeout(r, 1500));
    for (let i = 0; i < 50; i++) await c.call('SET', `k:${i}{${tag}}`, String(i));
    const lastAt = Date.now();
    await c.call('SET', `last{${tag}}`, 'written');
    await waitFor(
      async () => (await clusterUntil(store)) > lastAt,
      'the restorable end past the last write',
      30_000,
    );

    const target = await startRedis();
    scope.defer(() => target.stop());
    const res = await rf([
      'restore',
      '--store',
      store,
      '--name',
      'c',
      '--until',
      'latest',
      '--into',
      target.url,
    ]);
    expect(res.code, res.stderr).toBe(0);
    const t = await target.client();
    expect(await t.call('GET', `last{${tag}}`)).toBe('written');
    expect(await t.call('GET', `k:49{${tag}}`)).toBe('49');
  }, 120_000);
});
