import { describe, expect, it } from 'vitest';
import { isRfError } from '../../src/errors.js';
import { assignShards, shardSourceName } from '../../src/replication/cluster-shards.js';
import {
  mergeRanges,
  parseClusterNodes,
  parseClusterShards,
  slotOf,
  uncovered,
} from '../../src/replication/cluster-topology.js';

const A = '8d07b177e21e299f8a78b966b481dc803e77d08a';
const B = 'cd7da0f9a59676421643a946e8f9c306045545d2';
const A2 = 'a44a7d9e0436c7c6b731e7c6988263c253f04969';
const C = '940d68f8915a236fd83b6718a429d3fcbeadf18f';

/** The RESP2 shape redis-server 7.0.15 sends for CLUSTER SHARDS (flat name/value arrays). */
function node(id: string, port: number, role: string, health = 'online'): unknown[] {
  return [
    'id',
    id,
    'port',
    port,
    'ip',
    '127.0.0.1',
    'endpoint',
    '127.0.0.1',
    'role',
    role,
    'replication-offset',
    72156,
    'health',
    health,
  ];
}

describe('parseClusterShards', () => {
  it('reads slots, nodes and the live master of each shard', () => {
    const reply = [
      [
        'slots',
        [0, 4095, 5000, 5000],
        'nodes',
        [node(A, 7001, 'master'), node(A2, 7004, 'replica')],
      ],
      ['slots', [4096, 4999, 5001, 16383], 'nodes', [node(B, 7002, 'master')]],
    ];
    const shards = parseClusterShards(reply);
    expect(shards).toHaveLength(2);
    expect(shards[0]!.slots).toEqual([
      [0, 4095],
      [5000, 5000],
    ]);
    expect(shards[0]!.master).toEqual({
      id: A,
      host: '127.0.0.1',
      port: 7001,
      role: 'master',
      health: 'online',
    });
    expect(shards[0]!.nodes.map((n) => n.role)).toEqual(['master', 'replica']);
    expect(uncovered(shards)).toEqual([]);
  });

  it('gives a shard whose master failed no master, and its slots count as unserved', () => {
    const reply = [
      ['slots', [0, 8191], 'nodes', [node(A, 7001, 'master', 'failed'), node(A2, 7004, 'replica')]],
      ['slots', [8192, 16383], 'nodes', [node(B, 7002, 'master')]],
    ];
    const shards = parseClusterShards(reply);
    expect(shards[0]!.master).toBeNull();
    expect(uncovered(shards)).toEqual([[0, 8191]]);
  });

  it('refuses a node id that is not 40 hex characters', () => {
    const reply = [['slots', [0, 16383], 'nodes', [node('../../etc', 7001, 'master')]]];
    expect(() => parseClusterShards(reply)).toThrow(/unexpected/);
  });

  it('refuses a slot outside 0..16383', () => {
    const reply = [['slots', [0, 16384], 'nodes', [node(A, 7001, 'master')]]];
    expect(() => parseClusterShards(reply)).toThrow(/unexpected/);
  });
});

describe('parseClusterNodes', () => {
  it('groups replicas with their master, skips migration entries, marks failed nodes', () => {
    const text = [
      `${B} 127.0.0.1:7002@17002 master - 0 1796351114064 2 connected 4096-8191 [4096->-${A}]`,
      `${A2} 127.0.0.1:7004@17004 slave ${A} 0 1796351112636 1 connected`,
      `${C} 127.0.0.1:7003@17003 master,fail - 0 1796351111000 3 disconnected 8192-16383`,
      `${A} 127.0.0.1:7001@17001 myself,master - 0 1796351113000 1 connected 0-4095`,
      '',
    ].join('\n');
    const shards = parseClusterNodes(text);
    const byMaster = new Map(shards.map((s) => [s.nodes[0]!.id, s]));
    expect(byMaster.get(A)!.nodes.map((n) => n.id)).toEqual([A, A2]);
    expect(byMaster.get(A)!.master?.port).toBe(7001);
    expect(byMaster.get(B)!.slots).toEqual([[4096, 8191]]);
    expect(byMaster.get(C)!.master).toBeNull();
    expect(uncovered(shards)).toEqual([[8192, 16383]]);
  });
});

describe('slots', () => {
  it('hash a key by its {tag} (cluster.c keyHashSlot)', () => {
    // Values from the Redis Cluster specification's CRC16 examples and `CLUSTER KEYSLOT`.
    expect(slotOf('foo')).toBe(12182);
    expect(slotOf('{user1000}.following')).toBe(slotOf('{user1000}.followers'));
    expect(slotOf('{}foo')).not.toBe(slotOf('foo'));
  });

  it('merge adjacent and overlapping ranges', () => {
    expect(
      mergeRanges([
        [10, 20],
        [0, 9],
        [15, 30],
        [40, 40],
      ]),
    ).toEqual([
      [0, 30],
      [40, 40],
    ]);
  });
});

describe('assignShards', () => {
  const view = (ids: string[], master: string | null) => ({
    slots: [[0, 16383]] as Array<[number, number]>,
    master:
      master === null
        ? null
        : {
            id: master,
            host: '127.0.0.1',
            port: 7001,
            role: 'master' as const,
            health: 'online' as const,
          },
    nodes: ids.map((id) => ({
      id,
      host: '127.0.0.1',
      port: 7001,
      role: id === master ? ('master' as const) : ('replica' as const),
      health: 'online' as const,
    })),
  });

  it('names a new shard by its master and keeps the name across a failover', () => {
    const first = assignShards('orders', [], [view([A, A2], A), view([B], B)]);
    expect(first.shards.map((s) => s.source)).toEqual([
      `orders.${A.slice(0, 12)}`,
      `orders.${B.slice(0, 12)}`,
    ]);
    // A2 promoted, A gone: the same shard.
    const after = assignShards('orders', first.shards, [view([A2], A2), view([B], B)]);
    expect(after.shards).toHaveLength(2);
    expect(after.matched[0]!.shard.id).toBe(A.slice(0, 12));
    expect(after.matched[0]!.view.master?.id).toBe(A2);
  });

  it('adds a shard that appears later', () => {
    const first = assignShards('orders', [], [view([A], A)]);
    const later = assignShards('orders', first.shards, [view([A], A), view([C], C)]);
    expect(later.shards.map((s) => s.id)).toEqual([A.slice(0, 12), C.slice(0, 12)]);
  });

  it('refuses a cluster name that leaves no room for the shard id', () => {
    try {
      shardSourceName('x'.repeat(60), A.slice(0, 12));
      expect.unreachable();
    } catch (err) {
      expect(isRfError(err, 'RF_USAGE')).toBe(true);
    }
    expect(() => shardSourceName('orders', '../x')).toThrow(TypeError);
  });
});
