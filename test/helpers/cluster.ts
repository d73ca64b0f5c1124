import { spawn } from 'node:child_process';
import type { RedisClient } from '../../src/resp/client.js';
import { waitFor } from './load.js';
import { type RedisServer, startRedis } from './redis.js';
import { redisBin } from './redis-bin.js';

export interface TestCluster {
  /** The masters, in the order `redis-cli --cluster create` was given them. */
  readonly nodes: RedisServer[];
  /** redis://127.0.0.1:<port> of the first node: any node is a seed. */
  readonly url: string;
  /** The node that serves `slot` now (CLUSTER SLOTS of the first node). */
  ownerOf(slot: number): Promise<RedisServer>;
  stop(): Promise<void>;
}

/**
 * A real Redis Cluster of `masters` masters and no replicas, each on a port whose bus port is
 * free, made with `redis-cli --cluster create … --cluster-yes` and ready once every node says
 * cluster_state:ok.
 */
export async function startCluster(masters = 3): Promise<TestCluster> {
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      nodes.push(
        await startRedis({
          clusterBus: true,
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            '5000',
          ],
        }),
      );
    }
    await redisCli([
      '--cluster',
      'create',
      ...nodes.map((n) => `${n.host}:${n.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    const clients = await Promise.all(nodes.map((n) => n.client()));
    await waitFor(
      async () => {
        const states = await Promise.all(clients.map((c) => c.call('CLUSTER', 'INFO')));
        return states.every((s) => String(s).includes('cluster_state:ok'));
      },
      'every node to report cluster_state:ok',
      30_000,
    );
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw err;
  }
  const first = nodes[0]!;
  return {
    nodes,
    url: first.url,
    async ownerOf(slot: number) {
      const c: RedisClient = await first.client();
      const ranges = (await c.call('CLUSTER', 'SLOTS')) as Array<
        [number, number, [string, number]]
      >;
      const range = ranges.find(([from, to]) => slot >= from && slot <= to);
      const node = nodes.find((n) => n.port === Number(range?.[2][1]));
      if (node === undefined) throw new Error(`no node serves slot ${slot}`);
      return node;
    },
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
