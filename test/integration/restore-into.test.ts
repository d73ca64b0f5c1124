import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { type KeyState, keyStates, only } from '../helpers/keys.js';
import { waitFor } from '../helpers/load.js';
import { startProxy } from '../helpers/proxy.js';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.js';
import { lacks, redisBin } from '../helpers/redis-bin.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp as caughtUpWith, moment } from '../helpers/scope.js';
import { makeTestCertificate } from '../helpers/tls.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { LIBRARY } from '../helpers/workload.js';

/**
 * rf restore --into: selected keys of the state at T into a running Redis, against real
 * redis-server processes. The master is archived by rf listen; the incidents happen on it after
 * T, and the restores undo them on the live master itself.
 */

const HOUR = 3_600_000;
let master: RedisServer;
let client: RedisClient;
let work: string;
let store: string;
let daemon: RfDaemon;
/** T0: after the data was written, before any incident. */
let t0: number;
let digestAtT0: string;
let usersAtT0: Map<string, KeyState>;

const caughtUp = () => caughtUpWith(master);

const checkpoint = () => moment(master);

interface IntoJson {
  ok: boolean;
  written: number;
  skipped: number;
  expired: number;
  conflicts: string[];
  into: {
    matched: number;
    replaced: number;
    dbs: number[];
    plan: Record<string, string[]> | null;
    splitTransactions: { count: number; examples: unknown[] };
    functions: unknown;
  };
  error?: { code: string; message: string; details: Record<string, unknown> };
}

/** `rf restore --store … --until latest --into <target>`, for the usage checks. */
const latest = (target: RedisServer) => [
  'restore',
  '--store',
  store,
  '--until',
  'latest',
  '--into',
  target.url,
];

async function into(until: number, url: string, ...args: string[]) {
  const res = await rf(
    // The scratch server rf starts must read the master's RDB: the build under test.
    [
      'restore',
      '--store',
      store,
      '--until',
      `@${until / 1000}`,
      '--into',
      url,
      '--json',
      '--redis-server',
      redisBin('server'),
      ...args,
    ],
    { timeoutMs: 60_000 },
  );
  return { ...res, json: JSON.parse(res.stdout === '' ? '{}' : res.stdout) as IntoJson };
}

beforeAll(async () => {
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  client = await master.client();
  work = await makeTempDir('rf-into-');
  store = path.join(work, 'store');
  daemon = RfDaemon.start(['--source', master.url, '--store', store, '--flush-interval', '10']);
  await daemon.waitForLog((l) => l.msg === 'first timeline started from the base');
  // Written after the base, so the restores replay the stream, not just a snapshot.
  const expireAt = Date.now() + 2 * HOUR;
  const calls: Promise<unknown>[] = [];
  for (let i = 0; i < 1000; i++) {
    const key = `user:${i}`;
    if (i % 3 === 0) calls.push(client.call('SET', key, `v-${i}`));
    else if (i % 3 === 1) calls.push(client.call('HSET', key, 'name', `n-${i}`, 'age', String(i)));
    else calls.push(client.call('RPUSH', key, 'a', String(i), 'c'));
    if (i % 5 === 0) calls.push(client.call('PEXPIREAT', key, String(expireAt + i)));
  }
  for (let i = 0; i < 200; i++) {
    calls.push(client.call('SET', `order:${i}`, `o-${i}`, ...(i % 2 ? ['PX', '5400000'] : [])));
  }
  await Promise.all(calls);
  // A transaction over a selected and an unselected key: the restore of user:* must say so.
  await client.call('MULTI');
  await client.call('SET', 'user:6', 'written with order:6');
  await client.call('SET', 'order:6', 'written with user:6');
  await client.call('EXEC');
  await client.call('FUNCTION', 'LOAD', LIBRARY);
  await client.call('SELECT', '3');
  for (let i = 0; i < 300; i++) await client.call('SET', `session:${i}`, `s-${i}`, 'PX', '600000');
  await client.call('ZADD', 'board', '1', 'a', '2', 'b');
  await client.call('SELECT', '0');
  t0 = await checkpoint();
  digestAtT0 = String(await client.call('DEBUG', 'DIGEST'));
  usersAtT0 = await keyStates(client, 0, 'user:*');
  expect(usersAtT0.size).toBe(1000);
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  await master?.stop();
  if (work) await removeTempDir(work);
});

describe.skipIf(lacks('PEXPIRETIME'))(
  'rf restore --into (PEXPIRETIME on the scratch server)',
  () => {
    it('undoes a DEL of 1,000 user:* keys on the live master, keeping the 10 written again', async () => {
      // The incident, after T0: every user:* deleted, ten of them written again, other keys changed.
      for (let i = 0; i < 1000; i += 100) {
        const keys = Array.from({ length: 100 }, (_, j) => `user:${i + j}`);
        await client.call('DEL', ...keys);
      }
      for (let i = 0; i < 10; i++) await client.call('SET', `user:${i * 97}`, `rewritten-${i}`);
      await client.call('SET', 'order:1', 'changed after T');
      await client.call('SET', 'new-after-T', 'x');
      await caughtUp();
      const rewritten = Array.from({ length: 10 }, (_, i) => `user:${i * 97}`);
      const before = new Map<number, Map<string, KeyState>>();
      for (const db of [0, 3]) before.set(db, await keyStates(client, db));

      const res = await into(t0, master.url, '--key', 'user:*', '--conflict', 'skip');
      expect(res.code, res.stderr).toBe(0);
      expect(res.json.written).toBe(990);
      expect(res.json.skipped).toBe(10);
      expect(res.json.expired).toBe(0);
      expect([...res.json.conflicts].sort()).toEqual([...rewritten].sort());
      expect(res.json.into.splitTransactions).toEqual({
        count: 1,
        examples: [{ selected: ['user:6'], unselected: ['order:6'] }],
      });

      const after0 = await keyStates(client, 0);
      for (const [k, state] of usersAtT0) {
        if (rewritten.includes(k)) expect(after0.get(k), k).toEqual(before.get(0)!.get(k));
        else expect(after0.get(k), k).toEqual(state);
      }
      // Everything else on the target is as it was before the restore.
      const untouched = (k: string) => !k.startsWith('user:');
      expect(only(after0, untouched)).toEqual(only(before.get(0)!, untouched));
      expect(after0.get('order:1')).toEqual(before.get(0)!.get('order:1'));
      expect(await keyStates(client, 3)).toEqual(before.get(3));
    });

    it('writes the whole dataset into an empty instance as a user without REPLICAOF, PSYNC, SYNC, CONFIG or DEBUG', async () => {
      const empty = await startRedis();
      try {
        const admin = await empty.client();
        await admin.call(
          'ACL',
          'SETUSER',
          'restorer',
          'on',
          '>s3cret',
          '~*',
          '&*',
          '+@all',
          '-replicaof',
          '-slaveof',
          '-psync',
          '-sync',
          '-config',
          '-debug',
        );
        const url = `redis://restorer:s3cret@127.0.0.1:${empty.port}`;
        const res = await into(t0, url, '--functions');
        expect(res.code, res.stderr).toBe(0);
        expect(res.json.written).toBe(1000 + 200 + 301);
        expect(String(await admin.call('DEBUG', 'DIGEST'))).toBe(digestAtT0);
        expect(res.json.into.functions).toEqual({ loaded: ['rflib'], replaced: [], skipped: [] });
        const bumped = await admin.call('FCALL', 'bump', '2', 'fn:counter', 'fn:hash', '1');
        expect(Number(bumped)).toBe(1);
        // The user really is refused what a managed Redis refuses.
        const restorer = await empty.client({ username: 'restorer', password: 's3cret' });
        await expect(restorer.call('CONFIG', 'GET', 'port')).rejects.toThrow(/NOPERM/);
      } finally {
        await empty.stop();
      }
    });

    it('writes into a rediss:// target with --tls-ca', async () => {
      const made = makeTestCertificate(work, 'into');
      const tlsPort = await freePort();
      const target = await startRedis({
        args: [
          '--tls-port',
          String(tlsPort),
          '--tls-cert-file',
          made.cert,
          '--tls-key-file',
          made.key,
          '--tls-ca-cert-file',
          made.cert,
          '--tls-auth-clients',
          'no',
        ],
      });
      try {
        const res = await into(
          t0,
          `rediss://localhost:${tlsPort}`,
          '--key',
          'order:*',
          '--tls-ca',
          made.cert,
        );
        expect(res.code, res.stderr).toBe(0);
        expect(res.json.written).toBe(200);
        expect(Number(await (await target.client()).call('DBSIZE'))).toBe(200);
      } finally {
        await target.stop();
      }
    });

    it('--conflict fail with one conflicting key writes nothing and names it; --dry-run writes nothing', async () => {
      const target = await startRedis();
      try {
        const c = await target.client();
        await c.call('SET', 'user:500', 'already here');
        const failed = await into(t0, target.url, '--key', 'user:*', '--functions');
        expect(failed.code, failed.stderr).toBe(2);
        expect(failed.json.error?.code).toBe('RF_INTO_CONFLICT');
        expect(failed.json.error?.details.conflicts).toEqual(['user:500']);
        expect(failed.stderr).toContain('user:500');
        expect(Number(await c.call('DBSIZE'))).toBe(1);
        // Nothing means the function libraries too.
        expect(await c.call('FUNCTION', 'LIST')).toEqual([]);

        // A library in the way refuses the restore too, before any key is written.
        await c.call('FUNCTION', 'LOAD', LIBRARY.replace("'bump'", "'other'"));
        const lib = await into(t0, target.url, '--key', 'order:*', '--functions');
        expect(lib.code, lib.stderr).toBe(2);
        expect(lib.json.error?.details.libraries).toEqual(['rflib']);
        expect(Number(await c.call('DBSIZE'))).toBe(1);
        const kept = await into(
          t0,
          target.url,
          '--key',
          'order:*',
          '--functions',
          '--conflict',
          'skip',
        );
        expect(kept.code, kept.stderr).toBe(0);
        expect(kept.json.into.functions).toEqual({ loaded: [], replaced: [], skipped: ['rflib'] });
        expect(String(await c.call('FUNCTION', 'LIST'))).toContain('other');
        await c.call('FLUSHDB');
        await c.call('SET', 'user:500', 'already here');

        const dry = await into(
          t0,
          target.url,
          '--key',
          'user:*',
          '--conflict',
          'replace',
          '--dry-run',
        );
        expect(dry.code, dry.stderr).toBe(0);
        expect(dry.json.into.plan?.replaced).toEqual(['user:500']);
        expect(dry.json.into.plan?.created).toHaveLength(100);
        expect(dry.json.into.matched).toBe(1000);
        expect(Number(await c.call('DBSIZE'))).toBe(1);
        expect(String(await c.call('GET', 'user:500'))).toBe('already here');
      } finally {
        await target.stop();
      }
    });

    it('a target that goes away mid-run ends in a clear error with the count written; skip then finishes', async () => {
      const target = await startRedis();
      const proxy = await startProxy(target.port, '127.0.0.1', { cutAfterBytes: 40_000 });
      try {
        const cut = await into(t0, `redis://127.0.0.1:${proxy.port}`);
        expect(cut.code, cut.stderr).toBe(3);
        expect(cut.json.error?.code).toBe('RF_INTO_INTERRUPTED');
        const c = await target.client();
        const partial = Number(await c.call('DBSIZE'));
        expect(partial).toBeGreaterThan(0);
        expect(partial).toBeLessThan(1501);
        expect(cut.json.error?.details.written).toBeLessThanOrEqual(partial);
        expect(cut.stderr).toMatch(/\d+ keys were written/);

        const rest = await into(t0, target.url, '--conflict', 'skip');
        expect(rest.code, rest.stderr).toBe(0);
        expect(rest.json.written + rest.json.skipped).toBe(1501);
        expect(rest.json.skipped).toBe(partial);
        expect(String(await c.call('DEBUG', 'DIGEST'))).toBe(digestAtT0);
      } finally {
        await proxy.close();
        await target.stop();
      }
    });

    it('counts a key whose expiry has passed instead of writing it (--ttl keep)', async () => {
      for (let i = 0; i < 5; i++) await client.call('SET', `brief:${i}`, 'x', 'PX', '1500');
      const t1 = await checkpoint();
      const target = await startRedis();
      try {
        await waitFor(() => Date.now() > t1 + 1500, 'the brief keys to expire', 5_000, 50);
        const res = await into(t1, target.url, '--key', 'brief:*');
        expect(res.code, res.stderr).toBe(0);
        expect(res.json.expired).toBe(5);
        expect(res.json.written).toBe(0);
        expect(Number(await (await target.client()).call('DBSIZE'))).toBe(0);
      } finally {
        await target.stop();
      }
    });

    it('refuses by name a value longer than the target takes in one RESTORE, writing the rest', async () => {
      await client.call('SELECT', '7');
      await client.call('SET', 'huge', 'h'.repeat(2 * 1024 * 1024));
      await client.call('SET', 'small', 's');
      await client.call('SELECT', '0');
      const t3 = await checkpoint();
      // 1mb is the smallest proto-max-bulk-len Redis accepts (config.c).
      const target = await startRedis({ args: ['--proto-max-bulk-len', '1mb'] });
      try {
        const res = await into(t3, target.url, '--db', '7');
        expect(res.code, res.stderr).toBe(2);
        expect(res.json.error?.code).toBe('RF_VALUE_TOO_LARGE');
        expect(res.json.error?.details.tooLarge).toEqual(['huge']);
        expect(res.stderr).toContain('huge');
        const c = await target.client({ db: 7 });
        expect(String(await c.call('GET', 'small'))).toBe('s');
        expect(Number(await c.call('EXISTS', 'huge'))).toBe(0);
      } finally {
        await target.stop();
      }
    });

    it('undoes a FLUSHDB of db 3 with --db 3 --ttl shift, each expiry moved on by the time since T', async () => {
      const sessions = await keyStates(client, 3);
      expect(sessions.size).toBe(301);
      const t2 = await checkpoint();
      await client.call('SELECT', '3');
      await client.call('FLUSHDB');
      await client.call('SELECT', '0');
      await caughtUp();
      await waitFor(() => Date.now() > t2 + 2000, 'a few seconds to pass', 5_000, 50);
      const db0 = await keyStates(client, 0);
      const started = Date.now();
      const res = await into(t2, master.url, '--db', '3', '--ttl', 'shift');
      const ended = Date.now();
      expect(res.code, res.stderr).toBe(0);
      expect(res.json.written).toBe(301);
      expect(res.json.into.dbs).toEqual([3]);
      const restored = await keyStates(client, 3);
      expect([...restored.keys()].sort()).toEqual([...sessions.keys()].sort());
      for (const [k, was] of sessions) {
        const now = restored.get(k)!;
        expect(now.digest, k).toBe(was.digest);
        if (was.expireAt === -1) {
          expect(now.expireAt, k).toBe(-1);
          continue;
        }
        // The time left at T2 starts when the target restores the key, within the rf run.
        expect(now.expireAt - was.expireAt, k).toBeGreaterThanOrEqual(started - t2);
        expect(now.expireAt - was.expireAt, k).toBeLessThanOrEqual(ended - t2);
      }
      expect(await keyStates(client, 0)).toEqual(db0);
    });

    it('refuses bad input clearly', async () => {
      const target = await startRedis();
      try {
        const none = await into(t0, target.url, '--key', 'nothing-like-this:*');
        expect(none.code, none.stderr).toBe(0);
        expect(none.json.written).toBe(0);
        const text = await rf([
          'restore',
          '--store',
          store,
          '--until',
          `@${t0 / 1000}`,
          '--into',
          target.url,
          '--key',
          'nothing-like-this:*',
          '--redis-server',
          redisBin('server'),
        ]);
        expect(text.code).toBe(0);
        expect(text.stdout).toMatch(/no key .* matches/);

        const range = await into(t0, target.url, '--db', '99');
        expect(range.code).toBe(2);
        expect(range.json.error?.code).toBe('RF_USAGE');
        expect(range.stderr).toContain('99');

        const both = await rf([...latest(target), '--target', target.url]);
        expect(both.code).toBe(2);
        expect(both.stderr).toMatch(/--target and --into/);
        const out = await rf([...latest(target), '--out', path.join(work, 'x')]);
        expect(out.code).toBe(2);
        expect(out.stderr).toMatch(/--out and --into/);

        const ttl = await rf([...latest(target), '--ttl', 'later']);
        expect(ttl.code).toBe(2);
        expect(ttl.stderr).toMatch(/--ttl/);
        const noServer = await into(
          t0,
          target.url,
          '--redis-server',
          path.join(work, 'no-redis-server'),
        );
        expect(noServer.code).toBe(3);
        expect(noServer.json.error?.code).toBe('RF_REDIS_SERVER');
        expect(noServer.stderr).toContain('--redis-server');
        expect(Number(await (await target.client()).call('DBSIZE'))).toBe(0);
      } finally {
        await target.stop();
      }
    });
  },
);
