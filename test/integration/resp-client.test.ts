import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRfError, type RfCode, type RfError } from '../../src/errors.js';
import type { RedisEndpoint } from '../../src/redis-url.js';
import { RedisClient, RedisReplyError } from '../../src/resp/client.js';
import { type FakeMaster, startFakeMaster } from '../helpers/fake-master.js';
import { startProxy, type TcpProxy } from '../helpers/proxy.js';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.js';
import { testScope } from '../helpers/scope.js';
import { makeTestCertificate } from '../helpers/tls.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const local = (port: number, extra: Partial<RedisEndpoint> = {}): RedisEndpoint => ({
  host: '127.0.0.1',
  port,
  db: 0,
  tls: false,
  ...extra,
});

async function rfErrorOf(promise: Promise<unknown>, code: RfCode): Promise<RfError> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (err: unknown) => ({ err }),
  );
  if (!('err' in outcome))
    throw new Error(`expected ${code}, got ${JSON.stringify(outcome.value)}`);
  if (!isRfError(outcome.err, code)) throw outcome.err;
  return outcome.err;
}

const scope = testScope();

describe('RedisClient against redis-server', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis?.stop());

  it('returns replies as strings, numbers, null and arrays', async () => {
    const client = await redis.client();
    expect(await client.call('SET', 'greeting', 'héllo')).toBe('OK');
    expect(await client.call('GET', 'greeting')).toBe('héllo');
    expect(await client.call('INCRBY', 'counter', 5)).toBe(5);
    expect(await client.call('GET', 'missing')).toBeNull();
    expect(await client.call('RPUSH', 'list', 'a', 'b')).toBe(2);
    expect(await client.call('LRANGE', 'list', 0, -1)).toEqual(['a', 'b']);
  });

  it('returns binary values byte for byte with returnBuffers', async () => {
    const client = await redis.client({ returnBuffers: true });
    const value = Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0x2a, 0x80]);
    await client.call('SET', Buffer.from([0xfe, 0x01]), value);
    const reply = await client.call('GET', Buffer.from([0xfe, 0x01]));
    expect(Buffer.isBuffer(reply) && reply.equals(value)).toBe(true);
  });

  it('pipelines: a thousand calls in flight are answered in order', async () => {
    const client = await redis.client();
    const replies = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => client.call('ECHO', `message-${i}`)),
    );
    expect(replies).toEqual(Array.from({ length: 1000 }, (_, i) => `message-${i}`));
    expect(client.pendingReplies).toBe(0);
  });

  it('rejects an error reply with RedisReplyError and carries on', async () => {
    const client = await redis.client();
    await client.call('SET', 'text', 'x');
    const failed = client.call('LPUSH', 'text', 'y');
    const next = client.call('GET', 'text');
    await expect(failed).rejects.toBeInstanceOf(RedisReplyError);
    await expect(failed).rejects.toMatchObject({ prefix: 'WRONGTYPE', command: 'LPUSH' });
    expect(await next).toBe('x');
  });

  it('turns an error inside EXEC results into a RedisReplyError', async () => {
    const client = await redis.client();
    await client.call('SET', 'str', 'x');
    await client.call('MULTI');
    await client.call('INCR', 'n');
    await client.call('LPUSH', 'str', 'y');
    const results = (await client.call('EXEC')) as unknown[];
    expect(results[0]).toBe(1);
    expect(results[1]).toBeInstanceOf(RedisReplyError);
    expect((results[1] as RedisReplyError).prefix).toBe('WRONGTYPE');
  });

  it('parses INFO into fields', async () => {
    const client = await redis.client();
    const server = await client.info('server');
    expect(server.redis_version).toBe(redis.version);
    expect(server.tcp_port).toBe(String(redis.port));
    expect(Object.keys(server).some((key) => key.startsWith('#'))).toBe(false);
    const all = await client.info();
    expect(all.role).toBe('master');
  });

  it('selects the database of the endpoint and sets the client name', async () => {
    const inDb2 = await RedisClient.connect(local(redis.port, { db: 2 }), { name: 'rf-test' });
    scope.defer(() => inDb2.close());
    await inDb2.call('SET', 'only-in-2', '1');
    expect(await inDb2.call('CLIENT', 'GETNAME')).toBe('rf-test');
    const inDb0 = await redis.client();
    expect(await inDb0.call('EXISTS', 'only-in-2')).toBe(0);
    await inDb0.call('SELECT', 2);
    expect(await inDb0.call('EXISTS', 'only-in-2')).toBe(1);
  });

  it('refuses a database the server does not have with RF_BAD_URL', async () => {
    const err = await rfErrorOf(RedisClient.connect(local(redis.port, { db: 99 })), 'RF_BAD_URL');
    expect(err.message).toContain('database 99');
  });

  it('times out a slow reply with RF_TIMEOUT naming the command, and drops the connection', async () => {
    const client = await redis.client();
    const slow = client.command(['DEBUG', 'SLEEP', '0.5'], { timeoutMs: 200 });
    const behind = client.call('PING');
    const err = await rfErrorOf(slow, 'RF_TIMEOUT');
    expect(err.message).toContain('DEBUG');
    expect(err.details).toMatchObject({ command: 'DEBUG', timeoutMs: 200 });
    // A late reply would answer the wrong call, so the calls behind it fail too.
    await rfErrorOf(behind, 'RF_CONNECT');
    expect(client.connected).toBe(false);
    await rfErrorOf(client.call('PING'), 'RF_CONNECT');
  });

  it('closes after the replies in flight; later calls reject with RF_CONNECT', async () => {
    const client = await redis.client();
    const inFlight = client.call('ECHO', 'last');
    await client.close();
    expect(await inFlight).toBe('last');
    expect(client.connected).toBe(false);
    await rfErrorOf(client.call('PING'), 'RF_CONNECT');
  });
});

describe('RedisClient authentication', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis({ args: ['--requirepass', 'default-secret'] });
    const admin = await redis.client();
    await admin.call('ACL', 'SETUSER', 'archiver', 'on', '>archiver-secret', '~*', '+@all');
  });
  afterAll(() => redis?.stop());

  it('logs in with a password alone, as the default user', async () => {
    const client = await RedisClient.connect(local(redis.port, { password: 'default-secret' }));
    scope.defer(() => client.close());
    expect(await client.call('ACL', 'WHOAMI')).toBe('default');
  });

  it('logs in as an ACL user', async () => {
    const client = await RedisClient.connect(
      local(redis.port, { username: 'archiver', password: 'archiver-secret' }),
    );
    scope.defer(() => client.close());
    expect(await client.call('ACL', 'WHOAMI')).toBe('archiver');
  });

  it('fails with RF_AUTH on a wrong password, without echoing it', async () => {
    for (const endpoint of [
      local(redis.port, { password: 'not-the-password' }),
      local(redis.port, { username: 'archiver', password: 'not-the-password' }),
    ]) {
      const err = await rfErrorOf(RedisClient.connect(endpoint), 'RF_AUTH');
      expect(err.message).toContain('WRONGPASS');
      expect(err.message).toContain(`127.0.0.1:${redis.port}`);
      expect(JSON.stringify(err.toJSON())).not.toContain('not-the-password');
      expect(err.message).not.toContain('not-the-password');
    }
  });

  it('reports NOAUTH as RF_AUTH with the way to give a password', async () => {
    const client = await RedisClient.connect(local(redis.port));
    scope.defer(() => client.close());
    const err = await rfErrorOf(client.call('GET', 'k'), 'RF_AUTH');
    expect(err.hint).toContain('RF_PASSWORD');
    expect(err.cause).toBeInstanceOf(RedisReplyError);
  });

  it('says so when a password is given to a server that has none', async () => {
    const open = await startRedis();
    scope.defer(() => open.stop());
    const err = await rfErrorOf(
      RedisClient.connect(local(open.port, { password: 'needless' })),
      'RF_AUTH',
    );
    expect(err.hint).toContain('no password');
  });
});

describe('RedisClient connection failures', () => {
  it('fails with RF_CONNECT naming host:port when nothing listens', async () => {
    const port = await freePort();
    const err = await rfErrorOf(
      RedisClient.connect(local(port), { timeoutMs: 2_000 }),
      'RF_CONNECT',
    );
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.details).toMatchObject({ errno: 'ECONNREFUSED' });
    expect(err.hint).toContain('redis-server');
  });

  it('fails with RF_CONNECT when the host does not resolve', async () => {
    const err = await rfErrorOf(
      RedisClient.connect({ host: 'no-such-host.invalid', port: 6390, db: 0, tls: false }),
      'RF_CONNECT',
    );
    expect(err.message).toContain('no-such-host.invalid:6390');
  });

  describe('against a server that accepts but never answers', () => {
    let silent: FakeMaster;
    const seen: string[][] = [];
    beforeAll(async () => {
      silent = await startFakeMaster(async (conn) => {
        seen.push(await conn.readCommand());
        await conn.closed;
      });
    });
    afterAll(async () => {
      await silent?.close();
      expect(silent?.errors).toEqual([]);
    });

    it('times out a call with RF_TIMEOUT naming the command', async () => {
      const client = await RedisClient.connect(local(silent.port), { timeoutMs: 300 });
      scope.defer(() => client.destroy());
      const started = Date.now();
      const err = await rfErrorOf(client.call('PING'), 'RF_TIMEOUT');
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      expect(err.message).toContain('PING');
      expect(err.message).toContain(`127.0.0.1:${silent.port}`);
      expect(seen).toContainEqual(['PING']);
    });

    it('times out the connect when AUTH gets no answer', async () => {
      const err = await rfErrorOf(
        RedisClient.connect(local(silent.port, { password: 'sekrit-pw' }), { timeoutMs: 300 }),
        'RF_TIMEOUT',
      );
      expect(err.details).toMatchObject({ command: 'AUTH' });
      expect(JSON.stringify(err.toJSON())).not.toContain('sekrit-pw');
    });
  });

  it('reads a reply that arrives one byte at a time', async () => {
    const fake = await startFakeMaster(async (conn) => {
      expect(await conn.expect('get')).toEqual(['k']);
      await conn.writeBytewise('$5\r\nhe\r\nl\r\n', 0);
      await conn.closed;
    });
    scope.defer(async () => {
      await fake.close();
      expect(fake.errors).toEqual([]);
    });
    const client = await RedisClient.connect(local(fake.port));
    scope.defer(() => client.destroy());
    expect(await client.call('GET', 'k')).toBe('he\r\nl');
  });

  it('keeps a pipeline alive while replies keep coming, even past the timeout in total', async () => {
    // Redis answers a batch read in one go, so only a scripted server can make replies trickle.
    const fake = await startFakeMaster(async (conn) => {
      for (let i = 0; i < 6; i++) await conn.expect('ping');
      for (let i = 0; i < 6; i++) {
        await new Promise((resolve) => setTimeout(resolve, 150));
        await conn.write(`+PONG ${i}\r\n`);
      }
      await conn.closed;
    });
    scope.defer(async () => {
      await fake.close();
      expect(fake.errors).toEqual([]);
    });
    const client = await RedisClient.connect(local(fake.port), { timeoutMs: 400 });
    scope.defer(() => client.destroy());
    const replies = await Promise.all(Array.from({ length: 6 }, () => client.call('PING')));
    expect(replies).toEqual(['PONG 0', 'PONG 1', 'PONG 2', 'PONG 3', 'PONG 4', 'PONG 5']);
  });

  describe('through a proxy that is cut', () => {
    let redis: RedisServer;
    let proxy: TcpProxy;
    beforeAll(async () => {
      redis = await startRedis();
      proxy = await startProxy(redis.port);
    });
    afterAll(async () => {
      await proxy?.close();
      await redis?.stop();
    });

    it('rejects the calls in flight with RF_CONNECT; a new connection works', async () => {
      const client = await RedisClient.connect(local(proxy.port));
      expect(await client.call('PING')).toBe('PONG');
      const inFlight = client.call('DEBUG', 'SLEEP', '0.5');
      await new Promise((resolve) => setTimeout(resolve, 100));
      proxy.cut();
      const err = await rfErrorOf(inFlight, 'RF_CONNECT');
      expect(err.message).toContain(`127.0.0.1:${proxy.port}`);
      expect(client.connected).toBe(false);
      await rfErrorOf(client.call('PING'), 'RF_CONNECT');

      const again = await RedisClient.connect(local(proxy.port));
      scope.defer(() => again.close());
      expect(await again.call('PING')).toBe('PONG');
      expect(proxy.connections).toBe(2);
    });

    it('carries a large value both ways', async () => {
      const client = await RedisClient.connect(local(proxy.port), { returnBuffers: true });
      scope.defer(() => client.close());
      const value = Buffer.alloc(8 * 1024 * 1024, 0x5a);
      await client.call('SET', 'big', value);
      const reply = await client.call('GET', 'big');
      expect(Buffer.isBuffer(reply) && reply.equals(value)).toBe(true);
    });
  });
});

describe('RedisClient over TLS (rediss://)', () => {
  let redis: RedisServer;
  let tlsPort: number;
  let ca: Buffer;
  let certs: string;
  beforeAll(async () => {
    certs = await makeTempDir('rf-certs-');
    const { key, cert } = makeTestCertificate(certs);
    ca = readFileSync(cert);
    tlsPort = await freePort();
    redis = await startRedis({
      args: [
        '--tls-port',
        String(tlsPort),
        '--tls-cert-file',
        cert,
        '--tls-key-file',
        key,
        '--tls-ca-cert-file',
        cert,
        '--tls-auth-clients',
        'no',
      ],
    });
  });
  afterAll(async () => {
    await redis?.stop();
    await removeTempDir(certs);
  });

  it('connects with the CA passed through tlsOptions', async () => {
    const client = await RedisClient.connect(local(tlsPort, { host: 'localhost', tls: true }), {
      tlsOptions: { ca },
    });
    scope.defer(() => client.close());
    expect(await client.call('PING')).toBe('PONG');
    expect(await client.call('CLIENT', 'INFO')).toMatch(/laddr=127\.0\.0\.1:\d+|addr=/);
  });

  it('fails with RF_CONNECT and a TLS hint when the certificate is not trusted', async () => {
    const err = await rfErrorOf(
      RedisClient.connect(local(tlsPort, { tls: true }), { timeoutMs: 3_000 }),
      'RF_CONNECT',
    );
    expect(err.hint).toMatch(/TLS/);
    expect(err.message).toMatch(/self[- ]signed/);
  });
});

describe('test harness: startRedis', () => {
  it('restarts on the same port and directory, with extra arguments', async () => {
    const redis = await startRedis({ args: ['--appendonly', 'yes'] });
    scope.defer(() => redis.stop());
    const { port, dir, pid } = redis;
    const before = await redis.client();
    await before.call('SET', 'kept', 'yes');
    await redis.kill('SIGKILL');
    expect(redis.pid).toBeUndefined();
    await redis.restart(['--maxmemory', '10mb']);
    expect([redis.port, redis.dir]).toEqual([port, dir]);
    expect(redis.pid).not.toBe(pid);
    const after = await redis.client();
    expect(await after.call('GET', 'kept')).toBe('yes');
    expect(await after.call('CONFIG', 'GET', 'maxmemory')).toEqual(['maxmemory', '10485760']);
    expect(redis.logTail()).toContain('Ready to accept connections');
  });

  it('refuses to be told the port, so it can never land on 6379', async () => {
    await expect(startRedis({ args: ['--port', '6379'] })).rejects.toThrow(TypeError);
  });

  it('removes its temp dir on stop and reports a bad argument with the server output', async () => {
    const redis = await startRedis();
    await redis.stop();
    expect(existsSync(redis.dir)).toBe(false);
    await expect(startRedis({ args: ['--no-such-directive', 'x'] })).rejects.toThrow(
      /Bad directive/,
    );
  });
});
