import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { RedisClient } from '../../src/resp/client.js';
import { waitFor } from './load.js';
import { type RedisServer, startRedis } from './redis.js';
import { makeTempDir, removeTempDir } from './tmp.js';

/** A master, one replica and three `redis-server --sentinel` watching them as `name`. */
export interface TestSentinels {
  readonly name: string;
  readonly nodes: RedisServer[];
  readonly sentinels: RedisServer[];
  /** `--sentinel <url>` for each sentinel. */
  readonly args: string[];
  /** The node Sentinel names as the master now. */
  master(): Promise<RedisServer>;
  /** SENTINEL FAILOVER, then waits until every sentinel names the promoted replica. */
  failover(): Promise<RedisServer>;
  stop(): Promise<void>;
}

/** Small timeouts, so a failover and the +switch-master after it take seconds, not minutes. */
const MONITOR = (name: string, port: number) => [
  `sentinel monitor ${name} 127.0.0.1 ${port} 2`,
  `sentinel down-after-milliseconds ${name} 1000`,
  `sentinel failover-timeout ${name} 10000`,
  `sentinel parallel-syncs ${name} 1`,
];

// No diskless delay: the first snapshot (rf's, the replica's) starts at once. A backlog that
// holds the seconds rf is down or moving to a new master while the load writes (hundreds of
// KB a second here; the 1 MB default runs out), as `rf doctor` advises sizing it. No PING to
// replicas while a test fails over: CLIENT PAUSE does not hold them back (7.0 replicationCron
// skips them only in a cluster manual failover or FAILOVER), and one the old master sends after
// the promotion is a byte rf holds and the new master never had, so it cannot continue. The
// sentinels' hello PUBLISHes keep the stream from going quiet meanwhile.
const NODE_ARGS = [
  '--repl-diskless-sync-delay',
  '0',
  '--repl-backlog-size',
  '64mb',
  '--repl-ping-replica-period',
  '3600',
];

/**
 * One more sentinel watching `port` as `name`, with `extra` configuration lines (users,
 * requirepass). Its directory is removed with it.
 */
export async function startSentinel(
  name: string,
  port: number,
  extra: string[] = [],
): Promise<{ server: RedisServer; stop(): Promise<void> }> {
  const dir = await makeTempDir('rf-sentinel-');
  // Sentinel rewrites its configuration file: it lives in the sentinel's own directory.
  const conf = path.join(dir, 'sentinel.conf');
  writeFileSync(conf, `${[...MONITOR(name, port), ...extra].join('\n')}\n`);
  try {
    const server = await startRedis({
      dir,
      configFile: conf,
      args: ['--sentinel'],
      readyLog: 'Sentinel ID is',
    });
    return {
      server,
      stop: async () => {
        await server.stop();
        await removeTempDir(dir);
      },
    };
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }
}

export async function startSentinels(name = 'rfmaster'): Promise<TestSentinels> {
  const nodes: RedisServer[] = [];
  const sentinels: RedisServer[] = [];
  const sentinelStops: Array<() => Promise<void>> = [];
  const clients: RedisClient[] = [];
  const client = async (s: RedisServer) => {
    const c = await s.client();
    clients.push(c);
    return c;
  };
  const stop = async () => {
    for (const c of clients) c.destroy();
    await Promise.all([...sentinelStops.map((f) => f()), ...nodes.map((s) => s.stop())]);
  };
  try {
    const master = await startRedis({ args: NODE_ARGS });
    nodes.push(master);
    const replica = await startRedis({
      args: [...NODE_ARGS, '--replicaof', '127.0.0.1', String(master.port)],
    });
    nodes.push(replica);
    const rc = await client(replica);
    await waitFor(
      async () => (await rc.info('replication')).master_link_status === 'up',
      'the replica to finish its first sync',
    );
    for (let i = 0; i < 3; i++) {
      const one = await startSentinel(name, master.port);
      sentinelStops.push(one.stop);
      sentinels.push(one.server);
    }
    // A failover needs a replica Sentinel knows, and +switch-master reaching every sentinel
    // needs them to know each other (hello messages every 2 s).
    for (const s of sentinels) {
      const c = await client(s);
      await waitFor(
        async () => {
          const fields = pairs((await c.call('SENTINEL', 'MASTER', name)) as unknown[]);
          const replicas = ((await c.call('SENTINEL', 'REPLICAS', name)) as unknown[][]).map(pairs);
          return (
            fields['num-other-sentinels'] === '2' &&
            replicas.some((r) => r.port === String(replica.port) && r.flags === 'slave')
          );
        },
        `sentinel ${s.port} to see the replica and the other sentinels`,
        30_000,
        200,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const named = async (): Promise<number> => {
    const c = await client(sentinels[0]!);
    const reply = (await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as unknown[];
    return Number(reply[1]);
  };
  const byPort = (port: number) => {
    const node = nodes.find((n) => n.port === port);
    if (node === undefined) throw new Error(`Sentinel names ${port}, not one of the test's nodes`);
    return node;
  };
  return {
    name,
    nodes,
    sentinels,
    args: sentinels.flatMap((s) => ['--sentinel', s.url]),
    master: async () => byPort(await named()),
    failover: async () => {
      const before = await named();
      const next = nodes.find((n) => n.port !== before)!;
      const s0 = await client(sentinels[0]!);
      // Sentinel may abort a failover it accepted (the replica's INFO it selects by is stale,
      // failover-timeout passes): that is Sentinel's, not what the tests look at, so a failover
      // that has not moved the master after a while is asked for again.
      for (let attempt = 1; ; attempt++) {
        // Right after start a sentinel may not yet trust its INFO of the replica (NOGOODSLAVE).
        await waitFor(
          () =>
            s0.call('SENTINEL', 'FAILOVER', name).then(
              () => true,
              (err: Error) => {
                if (err.message.includes('INPROG')) return true;
                if (!err.message.includes('NOGOODSLAVE')) throw err;
                return false;
              },
            ),
          'Sentinel to accept SENTINEL FAILOVER',
          30_000,
          500,
        );
        const moved = await waitFor(
          async () => (await named()) === next.port,
          `sentinel ${sentinels[0]!.port} to name ${next.port} as the master`,
          20_000,
        ).then(
          () => true,
          (err: Error) => {
            if (attempt >= 3) throw err;
            return false;
          },
        );
        if (moved) break;
      }
      for (const s of sentinels) {
        const c = await client(s);
        await waitFor(
          async () => {
            const r = (await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as unknown[];
            return Number(r[1]) === next.port;
          },
          `sentinel ${s.port} to name ${next.port} as the master`,
          60_000,
        );
      }
      return next;
    },
    stop,
  };
}

/** A flat `[field, value, …]` reply (SENTINEL MASTER) as a record. */
export function pairs(reply: unknown[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

/** rf's acknowledged offset on `master` (rf announces listening-port 0), or null. */
export async function rfOffset(master: RedisClient): Promise<number | null> {
  const info = await master.info('replication');
  for (const [k, v] of Object.entries(info)) {
    if (!/^slave\d+$/.test(k)) continue;
    const f = Object.fromEntries(v.split(',').map((kv) => kv.split('=') as [string, string]));
    if (f.port === '0' && f.state === 'online') return Number(f.offset);
  }
  return null;
}

/** Until rf has acknowledged (made durable) everything `master` has written so far. */
export async function rfHolds(master: RedisClient): Promise<void> {
  const offset = Number((await master.info('replication')).master_repl_offset);
  await waitFor(
    async () => ((await rfOffset(master)) ?? -1) >= offset,
    `rf to acknowledge offset ${offset}`,
    30_000,
  );
}

/**
 * SENTINEL FAILOVER with nothing lost on the way: the master's writes are paused first (`CLIENT
 * PAUSE WRITE`, as the FAILOVER command does; Sentinel's hello PUBLISHes wait too), and the
 * replica and rf hold every byte before the switch. The old master stays paused: the caller
 * unpauses it (`CLIENT UNPAUSE` on `old`) once rf has moved.
 */
export async function pausedFailover(
  s: TestSentinels,
): Promise<{ promoted: RedisServer; old: RedisClient; pausedAt: number }> {
  const original = await s.master();
  const old = await original.client();
  await old.call('CLIENT', 'PAUSE', '60000', 'WRITE');
  const pausedAt = Number((await old.info('replication')).master_repl_offset);
  const replica = s.nodes.find((n) => n.port !== original.port)!;
  const rc = await replica.client();
  await waitFor(
    async () => Number((await rc.info('replication')).master_repl_offset) >= pausedAt,
    'the replica to hold every write of the paused master',
  );
  await rfHolds(old);
  const promoted = await s.failover();
  if (promoted.port !== replica.port)
    throw new Error(`Sentinel promoted ${promoted.port}, not the replica ${replica.port}`);
  return { promoted, old, pausedAt };
}
