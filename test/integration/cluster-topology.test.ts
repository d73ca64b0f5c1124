import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRfError } from '../../src/errors.js';
import { parseRedisUrl } from '../../src/redis-url.js';
import { assignShards } from '../../src/replication/cluster-shards.js';
import { discoverTopology, uncovered } from '../../src/replication/cluster-topology.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.js';

/** Topology discovery against a real 3-master / 3-replica cluster. */

let cluster: TestCluster;
let standalone: RedisServer;

const endpoint = (n: { url: string }) => parseRedisUrl(n.url, {});
const options = { timeoutMs: 5_000 };

beforeAll(async () => {
  cluster = await startCluster(3, 1);
  standalone = await startRedis();
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  await standalone?.stop();
});

describe('discoverTopology', () => {
  it('reads every shard from a replica, past a seed that does not answer', async () => {
    const masters = await cluster.masters();
    const replica = cluster.nodes.find((n) => !masters.includes(n))!;
    const dead = { host: '127.0.0.1', port: await freePort(), db: 0, tls: false };
    const topo = await discoverTopology([dead, endpoint(replica)], options);
    expect(topo.via).toBe('CLUSTER SHARDS');
    expect(topo.from).toBe(`127.0.0.1:${replica.port}`);
    expect(topo.shards).toHaveLength(3);
    expect(uncovered(topo.shards)).toEqual([]);
    expect(topo.shards.map((s) => s.master?.port).sort()).toEqual(
      masters.map((m) => m.port).sort(),
    );
    for (const s of topo.shards) expect(s.nodes).toHaveLength(2);
  });

  it('keeps a shard its name when its replica takes over (CLUSTER FAILOVER)', async () => {
    const before = await discoverTopology([endpoint(cluster.nodes[0]!)], options);
    const named = assignShards('c', [], before.shards);
    const masters = await cluster.masters();
    const replica = cluster.nodes.find((n) => !masters.includes(n))!;
    const oldMaster = await cluster.masterOf(replica);
    await cluster.failover(replica);
    const after = await discoverTopology([endpoint(cluster.nodes[0]!)], options);
    const again = assignShards('c', named.shards, after.shards);
    expect(again.shards.map((s) => s.source)).toEqual(named.shards.map((s) => s.source));
    const moved = again.matched.find((m) => m.view.master?.port === replica.port)!;
    const was = named.matched.find((m) => m.view.master?.port === oldMaster.port)!;
    expect(moved.shard.id).toBe(was.shard.id);
  }, 60_000);

  it('refuses a node that is not in cluster mode with RF_NOT_CLUSTER', async () => {
    const err = await discoverTopology([endpoint(standalone)], options).catch((e: unknown) => e);
    expect(isRfError(err, 'RF_NOT_CLUSTER')).toBe(true);
    expect((err as Error).message).toContain(`127.0.0.1:${standalone.port}`);
  });

  it('says which seeds it tried when none answers', async () => {
    const port = await freePort();
    const err = await discoverTopology(
      [{ host: '127.0.0.1', port, db: 0, tls: false }],
      options,
    ).catch((e: unknown) => e);
    expect(isRfError(err, 'RF_CONNECT')).toBe(true);
    expect((err as Error).message).toContain(String(port));
  });
});
