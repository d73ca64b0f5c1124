import { open } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpPayload } from '../../src/rdb/entries.js';
import { rdbLength, walkRdb } from '../../src/rdb/length.js';
import type { RedisClient } from '../../src/resp/client.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

/**
 * The DUMP payloads rf builds from an RDB file are the bytes Redis's own DUMP returns for the
 * same keys, for every encoding a value can be saved in.
 */
let redis: RedisServer;
let client: RedisClient;

beforeAll(async () => {
  redis = await startRedis({ args: ['--rdbcompression', 'no'] });
  client = await redis.client({ returnBuffers: true });
  const big = (n: number) =>
    Array.from({ length: n }, (_, i) => `member-${i}-${'x'.repeat(i % 7)}`);
  await client.call('SET', 'str', 'hello');
  await client.call('SET', 'int', '12345');
  await client.call('SET', '987', 'an integer-encoded key');
  await client.call('SET', 'long', 'y'.repeat(5000));
  await client.call('RPUSH', 'list', 'a', 'b', 'c');
  await client.call('RPUSH', 'biglist', ...big(3000));
  await client.call('SADD', 'intset', '1', '2', '3');
  await client.call('SADD', 'set', ...big(300));
  await client.call('HSET', 'hash', 'f', 'v', 'g', 'w');
  await client.call('HSET', 'bighash', ...big(600));
  await client.call('ZADD', 'zset', '1', 'a', '2.5', 'b');
  await client.call('ZADD', 'bigzset', ...big(400).flatMap((m, i) => [String(i / 3), m]));
  await client.call('XADD', 'stream', '1-1', 'f', 'v');
  await client.call('XGROUP', 'CREATE', 'stream', 'g', '0');
  await client.call('PFADD', 'hll', 'a', 'b', 'c');
  await client.call('SET', 'ttl', 'v', 'PXAT', String(Date.now() + 3_600_000));
  await client.call('SELECT', '2');
  await client.call('SET', 'in-db-2', 'v');
  await client.call('SELECT', '0');
  await client.call('SAVE');
}, 30_000);

afterAll(async () => {
  await redis?.stop();
});

describe('walkRdb and dumpPayload', () => {
  it('gives every key with its db and expiry, and the payload DUMP gives', async () => {
    const file = path.join(redis.dir, 'dump.rdb');
    const fh = await open(file, 'r');
    const seen = new Map<string, { db: number; expireAt: number; payload: Buffer }>();
    try {
      const { size } = await fh.stat();
      const end = await walkRdb(fh, size, file, {
        want: () => true,
        value: (entry, value, version) => {
          const payload = dumpPayload(entry.type, value, version);
          seen.set(entry.key.toString(), { db: entry.db, expireAt: entry.expireAt, payload });
        },
      });
      expect(end).toBe(size);
      for (const [name, { db, payload }] of seen) {
        await client.call('SELECT', String(db));
        const dumped = (await client.call('DUMP', name)) as Buffer;
        expect(payload.equals(dumped), name).toBe(true);
      }
    } finally {
      await fh.close();
      await client.call('SELECT', '0');
    }
    expect(seen.size).toBe(16);
    expect(seen.get('in-db-2')?.db).toBe(2);
    expect(seen.get('987')?.db).toBe(0);
    expect(seen.get('ttl')?.expireAt).toBe(Number(await client.call('PEXPIRETIME', 'ttl')));
    expect(seen.get('str')?.expireAt).toBe(-1);
  });

  it('walks a stream whose consumer group has no entries_read yet (saved as 2^64 - 1)', async () => {
    // XGROUP CREATE … 0 leaves entries_read at SCG_INVALID_ENTRIES_READ (t_stream.c).
    const file = path.join(redis.dir, 'dump.rdb');
    const fh = await open(file, 'r');
    try {
      const { size } = await fh.stat();
      expect(await rdbLength(fh, size, file)).toBe(size);
    } finally {
      await fh.close();
    }
  });
});
