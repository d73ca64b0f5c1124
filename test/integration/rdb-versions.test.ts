import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { startFakeMaster } from '../helpers/fake-master.js';
import { waitFor } from '../helpers/load.js';
import { type FixtureOptions, rdbLen, rdbString, writeRdbFixture } from '../helpers/rdb-fixture.js';
import { startRedis } from '../helpers/redis.js';
import { lacks } from '../helpers/redis-bin.js';
import { answerPreflight, cmd, handshake } from '../helpers/replica-script.js';
import { rf } from '../helpers/rf.js';
import { testScope } from '../helpers/scope.js';

/**
 * Snapshots of the versions the installed Redis does not write, built from the RDB format and
 * served by a scripted master: RDB 9 as Redis 6.2 sends it, RDB 12 with Redis 7.4's hash-field
 * expiry (type 24) and the cluster slot-info opcode. rf must capture, check and restore each to
 * the layout its server loads, and refuse, at capture, what it cannot read.
 */

const REPLID = `${'a'.repeat(39)}9`;
const scope = testScope();
const HOUR = 3_600_000;

const info = (version: string) =>
  version.startsWith('valkey ')
    ? `redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:${version.slice(7)}\r\nredis_mode:standalone\r\n`
    : `redis_version:${version}\r\nredis_mode:standalone\r\n`;

/** What replication connections sent before PSYNC, newest last. */
const handshakes: string[][][] = [];

/**
 * Serves `rdb` disk-based after +FULLRESYNC, then `stream`, to every replication connection,
 * as a Redis of `version` (or `valkey 8.0.1`).
 */
async function serve(rdb: Buffer, version: string, stream: Buffer[]) {
  const master = await startFakeMaster(async (conn) => {
    const first = await conn.readCommand();
    if (await answerPreflight(conn, first, info(version))) return;
    await handshake(conn, first);
    handshakes.push([...conn.received]);
    await conn.write(`+FULLRESYNC ${REPLID} 0\r\n$${rdb.length}\r\n`);
    await conn.write(rdb);
    await conn.write(Buffer.concat(stream));
    await conn.closed;
  });
  scope.defer(() => master.close());
  return master;
}

async function listenTo(port: number) {
  const store = await scope.storeDir();
  const daemon = scope.daemon(['--source', `redis://127.0.0.1:${port}`, '--store', store]);
  return { store, daemon };
}

async function capture(rdb: Buffer, version: string, stream: Buffer[]) {
  const master = await serve(rdb, version, stream);
  const { store, daemon } = await listenTo(master.port);
  const total = stream.reduce((n, f) => n + f.length, 0);
  await waitFor(async () => {
    const res = await rf(['info', '--store', store, '--json']);
    return JSON.parse(res.stdout).sources?.[0]?.timelines?.[0]?.durableOffset === total;
  }, 'rf listen to archive the whole stream');
  expect((await daemon.stop()).code).toBe(0);
  expect(master.errors).toEqual([]);
  return store;
}

async function restoreOut(store: string) {
  const out = path.join(path.dirname(store), 'out');
  const res = await rf(['restore', '--store', store, '--until', 'latest', '--out', out, '--json']);
  expect(res.code, res.stderr).toBe(0);
  return { out, summary: JSON.parse(res.stdout) };
}

async function bootAndRead<T>(dir: string, read: (c: RedisClient) => Promise<T>): Promise<T> {
  const booted = await startRedis({ dir, args: ['--appendonly', 'yes'] });
  try {
    return await read(await booted.client());
  } finally {
    await booted.stop();
  }
}

const rdb9: FixtureOptions = {
  version: 9,
  redisVer: '6.2.16',
  keys: [
    { key: 'greeting', value: { type: 'string', value: 'hello from 6.2' } },
    { key: 'team', value: { type: 'set', members: ['ana', 'bo'] } },
    { key: 'user:1', value: { type: 'hash', fields: [['name', 'Ana']] } },
  ],
};

describe('RDB versions rf reads, from snapshots written to the format', () => {
  it('RDB 9 (Redis 6.2): captured, verified, restored as one appendonly.aof that boots', async () => {
    const rdb = writeRdbFixture(rdb9);
    // Redis 6 propagates expiries relative to when it ran the command (7.0 made them absolute).
    const stream = [
      cmd('SELECT', '0'),
      cmd('SET', 'after-base', '1'),
      cmd('SADD', 'team', 'cy'),
      cmd('SET', 'ttl:set', 'v', 'PX', String(HOUR)),
      cmd('EXPIRE', 'greeting', '7200'),
    ];
    const store = await capture(rdb, '6.2.16', stream);

    const src = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout).sources[0];
    expect(src.server).toMatchObject({ name: 'redis', version: '6.2.16' });
    expect(src.bases[0].rdbVersion).toBe(9);
    const verify = await rf(['verify', '--store', store]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);

    const { out, summary } = await restoreOut(store);
    expect(summary.into.layout).toBe('redis6');
    expect(summary.into.layoutReason).toContain('RDB version 9');
    expect(readdirSync(out)).toEqual(['appendonly.aof']);
    const file = readFileSync(path.join(out, 'appendonly.aof'));
    // The base byte for byte, then the writes: the form Redis 6 loads (aof.c loadAppendOnlyFile).
    expect(file.subarray(0, rdb.length)).toEqual(rdb);
    const commands = file.subarray(rdb.length).toString('latin1');
    expect(commands).toContain('after-base');
    // The expiries are made absolute from each write's capture time, as Redis 6 does for its
    // own AOF: replayed as sent, they would count from whenever the restore boots.
    const captured = async (key: string) => {
      const log = await rf(['log', '--store', store, '--key', key, '--json']);
      return Date.parse(JSON.parse(log.stdout.trim().split('\n').at(-1)!).time);
    };
    const bulk = (s: string) => `$${s.length}\r\n${s}\r\n`;
    expect(commands).toContain(
      `${bulk('ttl:set')}${bulk('v')}${bulk('PXAT')}${bulk(String((await captured('ttl:set')) + HOUR))}`,
    );
    expect(commands).toContain(
      `${bulk('PEXPIREAT')}${bulk('greeting')}${bulk(String((await captured('greeting')) + 2 * HOUR))}`,
    );

    // Any Redis from 6.2 on boots it (7.x converts it into an appendonlydir).
    const seen = await bootAndRead(out, async (c) => ({
      greeting: await c.call('GET', 'greeting'),
      after: await c.call('GET', 'after-base'),
      team: ((await c.call('SMEMBERS', 'team')) as Buffer[]).map(String).sort(),
      name: await c.call('HGET', 'user:1', 'name'),
      expiring:
        Number(await c.call('PTTL', 'ttl:set')) > 0 && Number(await c.call('PTTL', 'greeting')) > 0,
    }));
    expect(seen).toEqual({
      expiring: true,
      greeting: 'hello from 6.2',
      after: '1',
      team: ['ana', 'bo', 'cy'],
      name: 'Ana',
    });
  });

  const now = Date.now();
  const rdb12: FixtureOptions = {
    version: 12,
    redisVer: '7.4.1',
    slotInfo: [866, 2, 0],
    keys: [
      { key: 'plain', value: { type: 'string', value: 'v' } },
      {
        key: 'session',
        value: {
          type: 'hash-ttl',
          fields: [
            ['token', 'abc', now + 2 * HOUR],
            ['user', 'ana', null],
            ['csrf', 'xyz', now + HOUR],
          ],
        },
      },
    ],
  };
  const stream12 = [
    cmd('SELECT', '0'),
    cmd('HSET', 'session', 'theme', 'dark'),
    cmd('HPEXPIREAT', 'session', String(now + 3 * HOUR), 'FIELDS', '1', 'theme'),
  ];

  it('RDB 12 (Redis 7.4) with hash-field expiry and slot info: captured, verified, restored as an appendonlydir', async () => {
    const rdb = writeRdbFixture(rdb12);
    const store = await capture(rdb, '7.4.1', stream12);
    const verify = await rf(['verify', '--store', store]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const { out, summary } = await restoreOut(store);
    expect(summary.into.layout).toBe('redis7');
    const dir = path.join(out, 'appendonlydir');
    expect(readFileSync(path.join(dir, 'appendonly.aof.1.base.rdb'))).toEqual(rdb);
    expect(readFileSync(path.join(dir, 'appendonly.aof.1.incr.aof')).toString('latin1')).toContain(
      'HPEXPIREAT',
    );
    const log = await rf(['log', '--store', store, '--since', '-1h', '--key', 'session']);
    expect(log.code, log.stderr).toBe(0);
    expect(log.stdout).toContain('HPEXPIREAT');
  });

  it.skipIf(lacks('hash-field expiry'))(
    'the RDB 12 restore boots on a server with hash-field expiry, field TTLs intact',
    async () => {
      const store = await capture(writeRdbFixture(rdb12), '7.4.1', stream12);
      const { out } = await restoreOut(store);
      const ttls = await bootAndRead(out, async (c) =>
        (
          (await c.call(
            'HPEXPIRETIME',
            'session',
            'FIELDS',
            '4',
            'token',
            'user',
            'csrf',
            'theme',
          )) as number[]
        ).map(Number),
      );
      expect(ttls).toEqual([now + 2 * HOUR, -1, now + HOUR, now + 3 * HOUR]);
    },
  );

  it('tells a Valkey master REPLCONF version 7.2.4 (RDB 11, no SETSLOT), a Redis one nothing, and asks neither for another sync form', async () => {
    const rdb = writeRdbFixture({ ...rdb9, version: 11, redisVer: '7.2.4' });
    for (const version of ['valkey 8.0.1', '7.2.6']) {
      const store = await capture(rdb, version, [cmd('SELECT', '0')]);
      const src = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout).sources[0];
      expect(src.server.name).toBe(version.startsWith('valkey') ? 'valkey' : 'redis');
      const sent = handshakes.at(-1)!;
      const replconf = sent
        .filter((c) => c[0]?.toUpperCase() === 'REPLCONF')
        .map((c) => c.slice(1));
      expect(replconf.map((c) => c[0])).toEqual(
        version.startsWith('valkey')
          ? ['listening-port', 'capa', 'version']
          : ['listening-port', 'capa'],
      );
      expect(replconf[1]).toEqual(['capa', 'eof', 'capa', 'psync2']);
      if (version.startsWith('valkey')) expect(replconf[2]).toEqual(['version', '7.2.4']);
    }
  });

  const refusals: [string, Buffer, RegExp][] = [
    [
      'RDB 13 (Redis 8.6)',
      writeRdbFixture({ ...rdb9, version: 13 }),
      /RDB version 13 \(Redis 8\.6\)/,
    ],
    [
      "Valkey 9's VALKEY magic",
      writeRdbFixture({ ...rdb9, magic: 'VALKEY080' }),
      /Valkey's own format \(VALKEY magic, RDB 80/,
    ],
    [
      'a value type RDB 12 does not have',
      writeRdbFixture({ ...rdb12, rawValue: [26, Buffer.concat([rdbLen(1), rdbString('x')])] }),
      /RDB type 26 at byte \d+, which rf cannot read \(the file says RDB 12/,
    ],
  ];

  for (const [what, rdb, message] of refusals) {
    it(`refuses ${what} at capture, by name, and keeps no base`, async () => {
      const master = await serve(rdb, '8.6.0', [cmd('SELECT', '0')]);
      const { store, daemon } = await listenTo(master.port);
      const { code } = await daemon.exited();
      expect(code).toBe(2);
      const failed = daemon.lines.find((l) => l.msg === 'rf listen failed');
      const err = failed?.err as { code?: string; message?: string } | undefined;
      expect(err?.code, daemon.output).toBe('RF_RDB_UNSUPPORTED');
      expect(err?.message).toMatch(message);
      const src = JSON.parse((await rf(['info', '--store', store, '--json'])).stdout).sources;
      expect(src.flatMap((s: { bases: unknown[] }) => s.bases)).toEqual([]);
    });
  }
});
