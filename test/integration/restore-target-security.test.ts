import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { isRfError, type RfError } from '../../src/errors.js';
import { parseRedisUrl } from '../../src/redis-url.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { loadTarget } from '../../src/restore/write-target.js';
import { startFakeMaster } from '../helpers/fake-master.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';

/**
 * The port rf restore --target serves the archive on is reachable by anyone who can reach the
 * host. Only the target may get anything from it: a local process that connects first gets no
 * byte of the archive, a malformed connection costs the restore nothing, and whatever fails,
 * the target is put back as it was.
 */

const servers: RedisServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});
async function redis(args: string[] = []): Promise<RedisServer> {
  const r = await startRedis({ args });
  servers.push(r);
  return r;
}

/** A base with 100 keys, and writes that add 20 more: what the target must end up holding. */
async function payload(): Promise<{
  base: { bytes: number; chunks: AsyncIterable<Buffer> };
  incr: AsyncIterable<Buffer>;
}> {
  const source = await redis();
  const c = await source.client();
  for (let i = 0; i < 100; i++) await c.call('SET', `base:${i}`, `v${i}`);
  await c.call('SAVE');
  const rdb = await fs.readFile(path.join(source.dir, 'dump.rdb'));
  const writes = Array.from({ length: 20 }, (_, i) => encodeCommand(['SET', `incr:${i}`, 'x']));
  return {
    base: {
      bytes: rdb.length,
      chunks: (async function* () {
        yield rdb;
      })(),
    },
    incr: (async function* () {
      yield encodeCommand(['SELECT', '0']);
      yield* writes;
    })(),
  };
}

/** A logger that hands each line's `serve` address to `onServe` as soon as rf logs it. */
function watchingLogger(onServe: (host: string, port: number) => void) {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        const { serve } = JSON.parse(line) as { serve?: string };
        if (serve !== undefined) {
          const at = serve.lastIndexOf(':');
          onServe(serve.slice(0, at), Number(serve.slice(at + 1)));
        }
      }
      done();
    },
  });
  return pino({ level: 'info' }, sink);
}

interface Intruder {
  received: () => Buffer;
}

/** Connects to rf's port and speaks as a replica would, without the password. */
function intrude(host: string, port: number, first: Buffer[]): Intruder {
  const parts: Buffer[] = [];
  const conn = net.connect(port, host);
  conn.on('error', () => undefined);
  conn.on('data', (chunk: Buffer) => {
    parts.push(chunk);
    // As the attack that was seen did: claim to have loaded everything.
    if (Buffer.concat(parts).includes('+FULLRESYNC')) {
      conn.write(encodeCommand(['REPLCONF', 'ACK', String(1e12)]));
    }
  });
  conn.on('connect', () => {
    for (const b of first) conn.write(b);
  });
  return { received: () => Buffer.concat(parts) };
}

const handshake = [
  encodeCommand(['PING']),
  encodeCommand(['REPLCONF', 'listening-port', '6380']),
  encodeCommand(['REPLCONF', 'capa', 'eof', 'capa', 'psync2']),
  encodeCommand(['PSYNC', '?', '-1']),
];

async function keysOf(r: RedisServer): Promise<number> {
  return Number(await (await r.client()).call('DBSIZE'));
}

/** What loadTarget fails with, loading the payload into `url` with these options. */
async function failureOf(
  url: string,
  options: { serveHost?: string; idleTimeoutMs: number },
): Promise<unknown> {
  const { base, incr } = await payload();
  const log = pino({ level: 'silent' });
  return loadTarget({ endpoint: parseRedisUrl(url), ...options, log }, base, incr).then(
    () => null,
    (e: unknown) => e,
  );
}

describe('rf restore --target serves the target alone', () => {
  it('gives nothing to local clients that connect first, and loads the real target', async () => {
    const { base, incr } = await payload();
    const target = await redis();
    const intruders: Intruder[] = [];
    const log = watchingLogger((host, port) => {
      intruders.push(intrude(host, port, handshake));
      intruders.push(
        intrude(host, port, [encodeCommand(['AUTH', 'guess']), ...handshake.slice(1)]),
      );
      intruders.push(intrude(host, port, [Buffer.from('*1\r\n$-5\r\nGARBAGE\r\n\r\n')]));
    });
    const result = await loadTarget(
      { endpoint: parseRedisUrl(target.url), idleTimeoutMs: 5_000, log },
      base,
      incr,
    );
    expect(intruders.length).toBe(3);
    for (const intruder of intruders) {
      const got = intruder.received().toString('latin1');
      expect(got).not.toContain('FULLRESYNC');
      expect(got).not.toContain('REDIS0');
      expect(got).toMatch(/^(-NOAUTH[^\r]*\r\n|-WRONGPASS[^\r]*\r\n)*$/);
    }
    expect(result.keys).toBe(120);
    expect(await keysOf(target)).toBe(120);
    const c = await target.client();
    expect((await c.info('replication')).role).toBe('master');
    expect(String(await c.call('GET', 'incr:19'))).toBe('x');
  });

  it('a malformed connection that comes first costs the restore nothing', async () => {
    const { base, incr } = await payload();
    const target = await redis();
    let garbage: Intruder | null = null;
    const log = watchingLogger((host, port) => {
      garbage = intrude(host, port, [Buffer.from('*2\r\n$-9\r\nnot resp at all\r\n')]);
    });
    const result = await loadTarget(
      { endpoint: parseRedisUrl(target.url), idleTimeoutMs: 5_000, log },
      base,
      incr,
    );
    expect(garbage).not.toBeNull();
    expect(result.keys).toBe(120);
    expect(await keysOf(target)).toBe(120);
    expect((await (await target.client()).info('replication')).role).toBe('master');
  });

  it('a target that never connects back: RF_TIMEOUT naming the address, and the target put back', async () => {
    // A firewall between target and rf cannot be made here: a scripted target that accepts
    // REPLICAOF and never connects stands in for it.
    const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
    let received: ReadonlyArray<string[]> = [];
    const fake = await startFakeMaster(async (conn) => {
      received = conn.received;
      for (;;) {
        const [name, arg, value] = (await conn.readCommand(30_000)).map((a) => a.toUpperCase());
        if (name === 'INFO')
          await conn.write(bulk(arg === 'REPLICATION' ? 'role:master\r\n' : '# Keyspace\r\n'));
        else if (name === 'CONFIG' && arg === 'GET') {
          const v = value === 'MASTERAUTH' ? 'own-secret' : '';
          await conn.write(`*2\r\n${bulk(value!.toLowerCase())}${bulk(v)}`);
        } else await conn.write('+OK\r\n');
      }
    });
    try {
      const err = await failureOf(`redis://127.0.0.1:${fake.port}`, { idleTimeoutMs: 1_500 });
      expect(isRfError(err, 'RF_TIMEOUT'), String(err)).toBe(true);
      const e = err as RfError;
      expect(e.exitCode).toBe(3);
      expect(e.message).toMatch(/did not connect back to rf at 127\.0\.0\.1:\d+ within 1500 ms/);
      expect(e.hint).toContain('--serve-host');
      expect(e.hint).toContain('was put back');
      const sent = received.map((c) => c.join(' '));
      const attach = sent.findIndex((c) => /^REPLICAOF 127\.0\.0\.1 \d+$/.test(c));
      expect(attach).toBeGreaterThan(-1);
      expect(sent.slice(attach)).toContain('REPLICAOF NO ONE');
      expect(sent.slice(attach)).toContain('CONFIG SET masterauth own-secret masteruser ');
    } finally {
      await fake.close();
    }
  });

  it('--serve-host that is not an address of this host, or does not resolve: RF_USAGE naming it', async () => {
    const target = await redis();
    for (const serveHost of ['192.0.2.1', 'no-such-host.invalid']) {
      const err = await failureOf(target.url, { serveHost, idleTimeoutMs: 5_000 });
      expect(isRfError(err, 'RF_USAGE'), String(err)).toBe(true);
      expect((err as RfError).exitCode).toBe(2);
      expect((err as RfError).message).toContain(`${serveHost} (--serve-host)`);
      const c = await target.client();
      expect((await c.info('replication')).role).toBe('master');
      expect(await c.call('CONFIG', 'GET', 'masterauth')).toEqual(['masterauth', '']);
    }
  });
});
