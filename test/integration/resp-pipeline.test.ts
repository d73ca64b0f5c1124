import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisClient, RedisReplyError } from '../../src/resp/client.js';
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

  it('takes +OK replies cut anywhere, beside errors and other replies, from a scripted server', async () => {
    // Two pipelines and then a call, answered as one stream cut into pieces: a byte at a time,
    // unevenly, and right after a bulk header whose payload reads like an +OK reply. An error
    // comes among the +OKs, the second pipeline ends on an integer, and the call is answered +OK
    // outside any pipeline.
    const replies = [
      '+OK\r\n+OK\r\n-BUSYKEY Target key name already exists.\r\n+OK\r\n',
      '$5\r\n',
      '+OK\r\n\r\n+OK\r\n:1\r\n',
      '+OK\r\n',
    ];
    const answer = Buffer.from(replies.join(''));
    const cuts = (n: number) =>
      Array.from({ length: Math.ceil(answer.length / n) }, (_, i) =>
        answer.subarray(i * n, (i + 1) * n),
      );
    const chunkings = [cuts(1), cuts(3), cuts(7), [answer], replies.map((r) => Buffer.from(r))];
    for (const pieces of chunkings) {
      const server = net.createServer((socket) => {
        let seen = 0;
        socket.on('data', (chunk) => {
          // Eight commands: answer once they have all arrived.
          seen += chunk.toString('latin1').split('*').length - 1;
          if (seen < 8) return;
          let at = 0;
          const next = () => {
            const piece = pieces[at++];
            if (piece === undefined) return;
            socket.write(piece);
            setTimeout(next, 1);
          };
          next();
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as net.AddressInfo).port;
      const c = await RedisClient.connect(
        { host: '127.0.0.1', port, db: 0, tls: false },
        { returnBuffers: true },
      );
      try {
        const first = c.pipeline([['RESTORE'], ['RESTORE'], ['RESTORE'], ['RESTORE']]);
        const second = c.pipeline([['GET'], ['SET'], ['EXISTS']]);
        const call = c.call('SET', 'k', 'v');
        const a = await first;
        expect(a.slice(0, 2).map(String)).toEqual(['OK', 'OK']);
        expect(a[2]).toBeInstanceOf(RedisReplyError);
        expect((a[2] as RedisReplyError).prefix).toBe('BUSYKEY');
        expect(String(a[3])).toBe('OK');
        expect((await second).map(String)).toEqual(['+OK\r\n', 'OK', '1']);
        expect(String(await call)).toBe('OK');
        expect(c.pendingReplies).toBe(0);
      } finally {
        c.destroy();
        server.close();
      }
    }
  });
});
