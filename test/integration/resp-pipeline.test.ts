import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { RedisReplyError } from '../../src/resp/client.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

let redis: RedisServer;
let client: RedisClient;

beforeAll(async () => {
  redis = await startRedis();
  client = await redis.client();
});

afterAll(async () => {
  await redis?.stop();
});

describe('RedisClient.pipeline', () => {
  it('answers every command in order, error replies as values, between ordinary calls', async () => {
    const before = client.call('SET', 'a', '1');
    const batch = client.pipeline([
      ['INCR', 'a'],
      ['HSET', 'a', 'f', 'v'],
      ['SET', 'b', '2'],
      ['MGET', 'a', 'b'],
    ]);
    const after = client.call('GET', 'b');
    expect(await before).toBe('OK');
    const replies = await batch;
    expect(replies[0]).toBe(2);
    expect(replies[1]).toBeInstanceOf(RedisReplyError);
    expect((replies[1] as RedisReplyError).prefix).toBe('WRONGTYPE');
    expect(replies.slice(2)).toEqual(['OK', ['2', '2']]);
    expect(await after).toBe('2');
    expect(await client.pipeline([])).toEqual([]);
  });

  it('holds thousands of commands in one promise', async () => {
    const commands = Array.from({ length: 5000 }, (_, i) => ['SET', `k:${i}`, String(i)]);
    const replies = await client.pipeline(commands);
    expect(replies).toHaveLength(5000);
    expect(replies.every((r) => r === 'OK')).toBe(true);
    expect(Number(await client.call('DBSIZE'))).toBe(5002);
  });

  it('rejects when the connection is lost under it', async () => {
    const c = await redis.client();
    const pending = c.pipeline([['DEBUG', 'SLEEP', '0.2'], ['PING']]);
    c.destroy();
    await expect(pending).rejects.toMatchObject({ code: 'RF_CONNECT' });
  });
});
