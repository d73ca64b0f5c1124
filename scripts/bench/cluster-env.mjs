/**
 * A real Redis Cluster for the benchmark: `masters` redis-server nodes in cluster mode, each on a
 * free port whose bus port (+10000) is free, in its own temp dir, joined with
 * `redis-cli --cluster create`, ready once every node says cluster_state:ok and all agree on the
 * slot owners. Replicas that are not cluster nodes (plain `--replicaof`) can be attached per master.
 */
import { runOk, startRedis, waitFor, waitReplicaOnline } from './env.mjs';

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

/** What a node believes about the slots: "<start>-<end>@<port>" per range, sorted. */
async function slotView(node) {
  const ranges = await node.client.call('CLUSTER', 'SLOTS');
  return ranges
    .map(([from, to, owner]) => `${from}-${to}@${owner[1]}`)
    .sort()
    .join(' ');
}

export async function startCluster(masters, options = {}) {
  const { args = [], label = 'cluster' } = options;
  const nodes = [];
  const stopAll = () => Promise.all(nodes.map((n) => n.stop()));
  try {
    for (let i = 0; i < masters; i++) {
      nodes.push(
        await startRedis({
          label: `${label}-${i}`,
          clusterBus: true,
          args: [...NODE_ARGS, ...args],
        }),
      );
    }
    await runOk('redis-cli', [
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    await waitFor(
      'every cluster node to report cluster_state:ok and the same slot owners',
      async () => {
        const infos = await Promise.all(nodes.map((n) => n.client.call('CLUSTER', 'INFO')));
        if (!infos.every((t) => String(t).includes('cluster_state:ok'))) return false;
        const views = await Promise.all(nodes.map(slotView));
        return views.every((v) => v === views[0]) && views[0].split(' ').length === masters;
      },
      120_000,
      50,
    );
  } catch (err) {
    await stopAll();
    throw err;
  }
  return {
    nodes,
    seed: nodes[0],
    url: nodes[0].url,
    /** Waits until every master lists exactly one replica online. */
    async replicasOnline(timeoutMs = 300_000) {
      await Promise.all(nodes.map((n) => waitReplicaOnline(n.client, timeoutMs)));
    },
    /** WAIT 1 on every master: its replica has acknowledged everything it was sent. */
    async acked() {
      await Promise.all(
        nodes.map(async (n) => {
          const got = await n.client.call('WAIT', '1', '120000');
          if (Number(got) < 1) throw new Error(`no replica of ${n.port} acknowledged in 120 s`);
        }),
      );
    },
    /** One plain redis-server --replicaof per master; resolves once each is online. */
    async attachReplicas() {
      const replicas = [];
      try {
        for (const n of nodes) {
          replicas.push(
            await startRedis({
              label: `${label}-replica`,
              args: ['--replicaof', '127.0.0.1', String(n.port)],
            }),
          );
        }
        await this.replicasOnline();
      } catch (err) {
        await Promise.all(replicas.map((r) => r.stop()));
        throw err;
      }
      return replicas;
    },
    stop: stopAll,
  };
}
