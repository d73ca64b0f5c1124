import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { type KeyState, keyStates, only } from '../helpers/keys.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { lacks, redisBin } from '../helpers/redis-bin.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { moment } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { LIBRARY } from '../helpers/workload.js';

/**
 * rf restore --into reads the keys the replay leaves alone straight from the base and rebuilds
 * only the others in its scratch server. Against real redis-server processes: the state at T
 * it writes is compared key by key (DEBUG DIGEST-VALUE, PEXPIRETIME) with what `--target`
 * loads, for a replay whose commands span selected and unselected keys: MULTI/EXEC, a script's
 * effects (with a key it was not given), RENAME into and out of the selection, MOVE, COPY … DB.
 * A replay holding SWAPDB, which changes keys it does not name, rebuilds the whole state.
 */

const HOUR = 3_600_000;
const DBS = [0, 2];
let master: RedisServer;
let client: RedisClient;
let work: string;
let store: string;
let daemon: RfDaemon;
/** After the replay's writes; T2 after a SWAPDB that follows them. */
let t1: number;
let t2: number;

const checkpoint = () => moment(master);

interface IntoJson {
  written: number;
  into: {
    splitTransactions: { count: number };
    scratch: { rebuilt: 'touched'; keys: number } | { rebuilt: 'whole'; why: string };
  };
}

const restoreArgs = (until: number) => ['restore', '--store', store, '--until', `@${until / 1000}`];

async function into(until: number, target: RedisServer, ...args: string[]) {
  // The scratch server rf starts must read the master's RDB: the build under test.
  const res = await rf(
    [
      ...restoreArgs(until),
      '--into',
      target.url,
      '--json',
      '--redis-server',
      redisBin('server'),
      ...args,
    ],
    { timeoutMs: 120_000 },
  );
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as IntoJson;
}

/** Every key of the dbs the workload uses, as `--target` restores the state at `until`. */
async function reference(until: number) {
  const target = await startRedis();
  try {
    const res = await rf([...restoreArgs(until), '--target', target.url], { timeoutMs: 120_000 });
    expect(res.code, res.stderr).toBe(0);
    return await statesOf(target);
  } finally {
    await target.stop();
  }
}

async function statesOf(target: RedisServer) {
  const c = await target.client();
  const states = new Map<number, Map<string, KeyState>>();
  for (const db of DBS) states.set(db, await keyStates(c, db));
  return { states, digest: String(await c.call('DEBUG', 'DIGEST')) };
}

async function intoEmpty(until: number, ...args: string[]) {
  const target = await startRedis();
  try {
    const json = await into(until, target, ...args);
    return { json, ...(await statesOf(target)) };
  } finally {
    await target.stop();
  }
}

beforeAll(async () => {
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  client = await master.client();
  work = await makeTempDir('rf-into-base-');
  store = path.join(work, 'store');
  // In the base: keys of every common type, some with expiries, in two dbs; long repetitive
  // names and values, which the master's RDB holds LZF-compressed; names that are integers.
  const expireAt = Date.now() + 2 * HOUR;
  const calls: Promise<unknown>[] = [];
  for (let i = 0; i < 300; i++) {
    calls.push(client.call('SET', `user:${i}`, `${'v'.repeat(40)}-${i}`));
    calls.push(client.call('SET', `order:${i}`, `o-${i}`));
    if (i % 4 === 0) calls.push(client.call('PEXPIREAT', `user:${i}`, String(expireAt + i)));
    if (i % 5 === 0) calls.push(client.call('PEXPIREAT', `order:${i}`, String(expireAt + i)));
  }
  for (let i = 0; i < 50; i++) {
    calls.push(client.call('SET', `user:${'x'.repeat(60)}:${i}`, 'y'.repeat(100)));
    calls.push(client.call('HSET', `user:h:${i}`, 'name', `n-${i}`, 'age', String(i)));
    calls.push(client.call('RPUSH', `order:l:${i}`, 'a', String(i), 'c'));
    calls.push(client.call('SET', String(10_000 + i), String(i)));
  }
  calls.push(client.call('SADD', 'set:a', 'a', 'b', 'c'));
  calls.push(client.call('SADD', 'set:b', 'c', 'd'));
  calls.push(client.call('ZADD', 'user:board', '1', 'a', '2', 'b'));
  await Promise.all(calls);
  await client.call('SELECT', '2');
  for (let i = 0; i < 40; i++) await client.call('SET', `user:${i}`, `db2-${i}`, 'PX', '7200000');
  await client.call('SELECT', '0');

  daemon = RfDaemon.start(['--source', master.url, '--store', store, '--flush-interval', '10']);
  await daemon.waitForLog((l) => l.msg === 'first timeline started from the base');

  // The replay, after the base.
  await client.call('MULTI');
  await client.call('SET', 'user:1', 'written with order:1');
  await client.call('SET', 'order:1', 'written with user:1');
  await client.call('EXEC');
  // A script's effects reach the stream as a transaction; order:2 is not among its keys.
  await client.call(
    'EVAL',
    "redis.call('APPEND', KEYS[1], 'eval'); redis.call('DEL', 'order:2'); return 1",
    '1',
    'user:2',
  );
  await client.call('RENAME', 'user:3', 'order:from-user');
  await client.call('RENAME', 'order:4', 'user:from-order');
  await client.call('MOVE', 'user:5', '2');
  await client.call('COPY', 'user:6', 'user:copied', 'DB', '2');
  await client.call('DEL', 'user:7', `user:${'x'.repeat(60)}:7`);
  await client.call('PEXPIREAT', 'user:8', String(expireAt + 5 * HOUR));
  await client.call('PERSIST', 'user:12');
  await client.call('SUNIONSTORE', 'user:union', 'set:a', 'set:b');
  await client.call('HSET', 'user:h:3', 'age', '300');
  await client.call('FUNCTION', 'LOAD', LIBRARY);
  await client.call('SELECT', '2');
  await client.call('SET', 'user:9', 'new in db 2');
  await client.call('DEL', 'user:10');
  await client.call('SELECT', '0');
  t1 = await checkpoint();
  // Changes every key of db 0 and db 2 without naming one.
  await client.call('SWAPDB', '0', '2');
  await client.call('SET', 'after-swap', '1');
  t2 = await checkpoint();
}, 120_000);

afterAll(async () => {
  await daemon?.stop();
  await master?.stop();
  if (work) await removeTempDir(work);
});

describe.skipIf(lacks('PEXPIRETIME'))('rf restore --into, keys read from the base', () => {
  it('writes the state at T exactly, rebuilding only the keys the replay names', async () => {
    const ref = await reference(t1);
    expect(ref.states.get(0)!.size).toBeGreaterThan(700);
    const all = await intoEmpty(t1);
    expect(all.json.into.scratch).toEqual({ rebuilt: 'touched', keys: expect.any(Number) });
    const scratch = all.json.into.scratch as { keys: number };
    // The keys the replay names, not the 800 of the base.
    expect(scratch.keys).toBeGreaterThan(15);
    expect(scratch.keys).toBeLessThan(40);
    expect(all.digest).toBe(ref.digest);
    for (const db of DBS) expect(all.states.get(db), `db ${db}`).toEqual(ref.states.get(db));
    expect(all.json.written).toBe(ref.states.get(0)!.size + ref.states.get(2)!.size);
  });

  it('writes a selection exactly, and says the replay split a transaction', async () => {
    const ref = await reference(t1);
    const some = await intoEmpty(t1, '--key', 'user:*');
    expect(some.json.into.scratch.rebuilt).toBe('touched');
    const user = (k: string) => k.startsWith('user:');
    for (const db of DBS) {
      expect(some.states.get(db), `db ${db}`).toEqual(only(ref.states.get(db)!, user));
    }
    // RENAME into the selection brought user:from-order; out of it, user:3 is gone.
    expect(some.states.get(0)!.has('user:from-order')).toBe(true);
    expect(some.states.get(0)!.has('user:3')).toBe(false);
    expect(some.states.get(2)!.has('user:5')).toBe(true);
    expect(some.states.get(2)!.has('user:copied')).toBe(true);
    expect(some.json.into.splitTransactions.count).toBeGreaterThanOrEqual(2);
  });

  it('rebuilds the whole state when the replay holds a command whose keys it cannot know', async () => {
    const ref = await reference(t2);
    const all = await intoEmpty(t2);
    expect(all.json.into.scratch).toEqual({
      rebuilt: 'whole',
      why: expect.stringContaining('SWAPDB'),
    });
    expect(all.digest).toBe(ref.digest);
    for (const db of DBS) expect(all.states.get(db), `db ${db}`).toEqual(ref.states.get(db));
    expect(all.states.get(2)!.has('user:299')).toBe(true);
  });
});
