import { spawn } from 'node:child_process';
import { slotOf } from '../../src/replication/cluster-topology.js';
import { waitFor } from './load.js';
import { type RedisServer, startRedis } from './redis.js';
import { redisBin } from './redis-bin.js';

export interface TestCluster {
  /**
   * Every node started, masters first in the order `redis-cli --cluster create` was given them,
   * then the replicas, then nodes added later.
   */
  readonly nodes: RedisServer[];
  /** redis://127.0.0.1:<port> of the first node: any node is a seed. */
  readonly url: string;
  /** The node that serves `slot` now (CLUSTER SLOTS of the first node). */
  ownerOf(slot: number): Promise<RedisServer>;
  /** The nodes that are masters now (ROLE of each live node). */
  masters(): Promise<RedisServer[]>;
  /** The master `replica` replicates now (ROLE). */
  masterOf(replica: RedisServer): Promise<RedisServer>;
  /**
   * A graceful `CLUSTER FAILOVER` on `replica`: it returns once the replica is a master and every
   * live node agrees on the new owners.
   */
  failover(replica: RedisServer): Promise<void>;
  /** A new empty master joined with `redis-cli --cluster add-node` (no slots). */
  addMaster(): Promise<RedisServer>;
  /** `redis-cli --cluster reshard`: moves `slots` slots from one master to another. */
  reshard(from: RedisServer, to: RedisServer, slots: number): Promise<void>;
  /** Waits until every live node reports cluster_state:ok and the same slot owners. */
  settled(expectMasters?: number): Promise<void>;
  stop(): Promise<void>;
}

const NODE_ARGS = [
  '--cluster-enabled',
  'yes',
  '--cluster-config-file',
  'nodes.conf',
  '--cluster-node-timeout',
  '5000',
  '--repl-diskless-sync-delay',
  '0',
];

/** One command on its own connection, closed after: the polling loops leave no clients behind. */
async function ask(node: RedisServer, ...args: string[]): Promise<unknown> {
  const c = await node.client();
  try {
    return await c.call(...args);
  } finally {
    await c.close();
  }
}

function startNode(): Promise<RedisServer> {
  return startRedis({ clusterBus: true, args: NODE_ARGS });
}

/**
 * A real Redis Cluster of `masters` masters with `replicas` replicas each, every node on a port
 * whose bus port is free, made with `redis-cli --cluster create … --cluster-yes` and ready once
 * every node says cluster_state:ok.
 */
export async function startCluster(masters = 3, replicas = 0): Promise<TestCluster> {
  const nodes: RedisServer[] = [];
  const live = (): RedisServer[] => nodes.filter((n) => n.pid !== undefined);
  const role = async (n: RedisServer) => (await ask(n, 'ROLE')) as unknown[];
  // What a node believes: per shard its slots and its nodes with their roles, in a stable order.
  const beliefOf = async (n: RedisServer) => {
    const text = String(await ask(n, 'CLUSTER', 'NODES'));
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        const [id, , flags, master, , , , link, ...slots] = l.trim().split(' ');
        const role = flags!.includes('master') ? 'master' : `replica-of-${master}`;
        return `${id} ${role} ${link} ${slots.join(' ')}`;
      })
      .sort()
      .join('\n');
  };
  // Settled: every live node says cluster_state:ok, they all believe the same shards, and every
  // replica has finished its sync with its master.
  const settled = (expectMasters?: number) =>
    waitFor(
      async () => {
        const nodesNow = live();
        const states = await Promise.all(
          nodesNow.map(async (n) => String(await ask(n, 'CLUSTER', 'INFO'))),
        );
        if (!states.every((s) => s.includes('cluster_state:ok'))) return false;
        const beliefs = await Promise.all(nodesNow.map(beliefOf));
        if (!beliefs.every((v) => v === beliefs[0])) return false;
        const roles = await Promise.all(nodesNow.map(role));
        const masterCount = roles.filter((r) => String(r[0]) === 'master').length;
        if (expectMasters !== undefined && masterCount !== expectMasters) return false;
        return roles.every((r) => String(r[0]) === 'master' || String(r[3]) === 'connected');
      },
      'every node to report cluster_state:ok, the same shards and its replicas in sync',
      60_000,
    );
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) nodes.push(await startNode());
    // redis-cli takes the first `masters` addresses as masters and pairs the rest as replicas.
    await redisCli([
      '--cluster',
      'create',
      ...nodes.map((n) => `${n.host}:${n.port}`),
      '--cluster-replicas',
      String(replicas),
      '--cluster-yes',
    ]);
    await settled(masters);
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw err;
  }
  const byPort = (port: number): RedisServer => {
    const node = nodes.find((n) => n.port === port);
    if (node === undefined) throw new Error(`no test node listens on ${port}`);
    return node;
  };
  const first = nodes[0]!;
  return {
    nodes,
    url: first.url,
    async ownerOf(slot: number) {
      const seed = live()[0] ?? first;
      const ranges = (await ask(seed, 'CLUSTER', 'SLOTS')) as Array<
        [number, number, [string, number]]
      >;
      const range = ranges.find(([from, to]) => slot >= from && slot <= to);
      if (range === undefined) throw new Error(`no node serves slot ${slot}`);
      return byPort(Number(range[2][1]));
    },
    async masters() {
      const roles = await Promise.all(live().map(async (n) => [n, await role(n)] as const));
      return roles.filter(([, r]) => String(r[0]) === 'master').map(([n]) => n);
    },
    async masterOf(replica: RedisServer) {
      const r = await role(replica);
      if (String(r[0]) !== 'slave') throw new Error(`${replica.port} is not a replica`);
      return byPort(Number(r[2]));
    },
    async failover(replica: RedisServer) {
      await ask(replica, 'CLUSTER', 'FAILOVER');
      await waitFor(
        async () => String((await role(replica))[0]) === 'master',
        `${replica.port} to become a master`,
        30_000,
      );
      await settled();
    },
    async addMaster() {
      const node = await startNode();
      nodes.push(node);
      const seed = live()[0]!;
      await redisCli([
        '--cluster',
        'add-node',
        `${node.host}:${node.port}`,
        `${seed.host}:${seed.port}`,
      ]);
      await waitFor(
        async () => {
          const views = await Promise.all(
            live().map(async (n) => String(await ask(n, 'CLUSTER', 'NODES'))),
          );
          return views.every(
            (v) => v.split('\n').filter((l) => l.trim() !== '').length === live().length,
          );
        },
        'every node to know the added master',
        30_000,
      );
      return node;
    },
    async reshard(from: RedisServer, to: RedisServer, slots: number) {
      const id = async (n: RedisServer) => String(await ask(n, 'CLUSTER', 'MYID'));
      await redisCli([
        '--cluster',
        'reshard',
        `${from.host}:${from.port}`,
        '--cluster-from',
        await id(from),
        '--cluster-to',
        await id(to),
        '--cluster-slots',
        String(slots),
        '--cluster-yes',
      ]);
      await settled();
    },
    settled,
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}

/** Runs redis-cli to completion; rejects with its output when it fails. */
export function redisCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(redisBin('cli'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(output)
        : reject(new Error(`redis-cli ${args.join(' ')} exited ${code}\n${output}`)),
    );
  });
}

/** `rf listen --cluster` arguments for the cluster at `url` into `store`, as cluster `c`. */
export function clusterListenArgs(url: string, store: string, ...extra: string[]): string[] {
  return ['--cluster', '--source', url, '--store', store, '--name', 'c', ...extra];
}

/** A hash tag (`<prefix><n>`) whose slot `node` serves now: keys with it live on its shard. */
export async function tagServedBy(
  cluster: TestCluster,
  node: RedisServer,
  prefix = 't',
): Promise<string> {
  for (let i = 0; ; i++) {
    const tag = `${prefix}${i}`;
    if ((await cluster.ownerOf(slotOf(tag))).port === node.port) return tag;
  }
}
