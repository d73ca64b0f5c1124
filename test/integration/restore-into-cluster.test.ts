import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { type KeyState, keyStates } from '../helpers/keys.js';
import { waitFor } from '../helpers/load.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/** rf restore --into a real 3-master Redis Cluster: routed by slot, ASK followed, gaps refused. */

let master: RedisServer;
let client: RedisClient;
let cluster: TestCluster;
let work: string;
let store: string;
let daemon: RfDaemon;
let t: number;
let atT: Map<string, KeyState>;

async function into(...args: string[]) {
  const res = await rf(
    [
      'restore',
      '--store',
      store,
      '--until',
      `@${t / 1000}`,
      '--into',
      cluster.url,
      '--json',
      ...args,
    ],
    { timeoutMs: 60_000 },
  );
  return { ...res, json: JSON.parse(res.stdout === '' ? '{}' : res.stdout) };
}

async function clusterKeys(): Promise<number> {
  let n = 0;
  for (const node of cluster.nodes) n += Number(await (await node.client()).call('DBSIZE'));
  return n;
}

beforeAll(async () => {
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  client = await master.client();
  work = await makeTempDir('rf-into-cluster-');
  store = path.join(work, 'store');
  daemon = RfDaemon.start(['--source', master.url, '--store', store, '--flush-interval', '10']);
  await daemon.waitForLog((l) => l.msg === 'first timeline started from the base');
  const calls: Promise<unknown>[] = [];
  for (let i = 0; i < 600; i++) {
    calls.push(client.call('SET', `k:${i}`, `v-${i}`));
    if (i % 4 === 0) calls.push(client.call('PEXPIRE', `k:${i}`, String(3_600_000 + i)));
  }
  for (let i = 0; i < 50; i++) calls.push(client.call('HSET', `{user:7}:${i}`, 'f', String(i)));
  calls.push(client.call('ZADD', 'board', '1', 'a', '2', 'b'));
  await Promise.all(calls);
  await client.call('SELECT', '1');
  await client.call('SET', 'in-db-1', 'x');
  await client.call('SELECT', '0');
  await caughtUp(master);
  t = Date.now();
  await waitFor(() => Date.now() > t, 'the clock to move past T', 1_000, 1);
  // The archive must reach past T: a PUBLISH is archived and creates no key.
  await client.call('PUBLISH', 'rf-test', 'checkpoint');
  await caughtUp(master);
  atT = await keyStates(client, 0);
  cluster = await startCluster(3);
}, 90_000);

afterAll(async () => {
  await daemon?.stop();
  await cluster?.stop();
  await master?.stop();
  if (work) await removeTempDir(work);
});

describe('rf restore --into a Redis Cluster', () => {
  it('refuses a selection with keys outside db 0, writing nothing', async () => {
    const res = await into();
    expect(res.code, res.stderr).toBe(2);
    expect(res.json.error.code).toBe('RF_USAGE');
    expect(res.stderr).toMatch(/only db 0/);
    expect(await clusterKeys()).toBe(0);
  });

  it('puts every key on the node that owns its slot, values and expiries exact, following ASK', async () => {
    // One slot in the middle of a migration: a key of it that its owner lacks gets an ASK.
    const seed = await cluster.nodes[0]!.client();
    const slot = Number(await seed.call('CLUSTER', 'KEYSLOT', 'k:7'));
    const from = await cluster.ownerOf(slot);
    const to = cluster.nodes.find((n) => n !== from)!;
    const fromClient = await from.client();
    const toClient = await to.client();
    const idOf = async (c: RedisClient) => String(await c.call('CLUSTER', 'MYID'));
    await toClient.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', await idOf(fromClient));
    await fromClient.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', await idOf(toClient));

    const res = await into('--db', '0');
    expect(res.code, res.stderr).toBe(0);
    expect(res.json.written).toBe(atT.size);
    expect(res.json.into.targetKind).toBe('cluster');
    // The migration ends: the slot is the importing node's, which must hold its keys.
    const toId = await idOf(toClient);
    for (const node of cluster.nodes) {
      await (await node.client()).call('CLUSTER', 'SETSLOT', String(slot), 'NODE', toId);
    }

    const found = new Map<string, KeyState>();
    for (const node of cluster.nodes) {
      const c = await node.client();
      for (const [k, state] of await keyStates(c, 0)) {
        const keySlot = Number(await c.call('CLUSTER', 'KEYSLOT', k));
        const expected = await cluster.ownerOf(keySlot);
        expect(node.port, `${k} (slot ${keySlot})`).toBe(expected.port);
        found.set(k, state);
      }
    }
    expect(found).toEqual(atT);
    expect((await cluster.ownerOf(slot)).port).toBe(to.port);
    expect(Number(await toClient.call('EXISTS', 'k:7'))).toBe(1);
  });

  it('refuses a cluster whose slots are not all served, writing nothing', async () => {
    const before = await clusterKeys();
    const first = await cluster.nodes[0]!.client();
    const owned = (
      (await first.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>
    ).find(([, , m]) => Number(m[1]) === cluster.nodes[0]!.port)!;
    await first.call('CLUSTER', 'DELSLOTS', String(owned[0]));
    const res = await into('--db', '0', '--conflict', 'replace');
    expect(res.code, res.stderr).toBe(3);
    expect(res.json.error.code).toBe('RF_CLUSTER');
    expect(res.stderr).toContain(String(owned[0]));
    expect(await clusterKeys()).toBe(before);
  });
});
