import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRfError, type RfCode, type RfError } from '../../src/errors.js';
import { checkRdbFile, RdbChecker } from '../../src/rdb/check.js';
import { Crc64, crc64 } from '../../src/rdb/crc64.js';
import { hasFeature, redisBin } from '../helpers/redis-bin.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const run = promisify(execFile);

/** CRC-64/Jones one bit at a time with BigInt: slow and obviously the definition. */
function referenceCrc64(data: Uint8Array): bigint {
  const poly = 0x95ac9329ac4bc9b5n; // 0xad93d23594c935a9 reflected
  let crc = 0n;
  for (const byte of data) {
    crc ^= BigInt(byte);
    for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ poly : crc >> 1n;
  }
  return crc;
}

async function expectRfError(promise: Promise<unknown>, code: RfCode): Promise<RfError> {
  try {
    await promise;
  } catch (err) {
    if (!isRfError(err)) throw err;
    expect(err.code).toBe(code);
    return err;
  }
  throw new Error(`expected ${code}, the check passed`);
}

// ---------------------------------------------------------------------------------------------
// A real redis-server of our own, on a free port (never 6379), in its own directory.

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

interface TestRedis {
  port: number;
  dir: string;
  process: ChildProcess;
  cli(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function startRedis(dir: string, extra: string[] = []): Promise<TestRedis> {
  const port = await freePort();
  const child = spawn(
    redisBin('server'),
    [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--dbfilename', 'dump.rdb',
      '--save', '',
      '--appendonly', 'no',
      ...(hasFeature('enable-debug-command') ? ['--enable-debug-command', 'local'] : []),
      '--logfile', join(dir, 'redis.log'),
      ...extra,
    ], // biome-ignore format: flag-value pairs read best one pair per line
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const cli = async (...args: string[]) =>
    (await run(redisBin('cli'), ['-p', String(port), ...args], { timeout: 10_000 })).stdout.trim();
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await cli('PING')) === 'PONG') break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server on port ${port} did not start; see ${dir}/redis.log`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { port, dir, process: child, cli, stop };
}

/** Keys of every type, some large enough for LZF compression and listpack/hashtable encodings. */
async function populate(redis: TestRedis): Promise<void> {
  const { cli } = redis;
  await cli('DEBUG', 'POPULATE', '2000', 'key', '64');
  await cli('SET', 'big', 'x'.repeat(100_000));
  await cli('SET', 'utf8', 'caf\u00e9 \u{1f600}');
  await cli('SET', 'ttl', 'soon', 'PX', '3600000');
  await cli('RPUSH', 'list', ...Array.from({ length: 300 }, (_, i) => `item-${i}`));
  await cli(
    'HSET',
    'hash',
    ...Array.from({ length: 40 }, (_, i) => `f${i} v${i}`.split(' ')).flat(),
  );
  await cli('SADD', 'intset', '1', '2', '3', '99999');
  await cli('SADD', 'set', ...Array.from({ length: 200 }, (_, i) => `member-${i}`));
  await cli('ZADD', 'zset', '1.5', 'a', '2.25', 'b', '-3', 'c');
  await cli('XADD', 'stream', '*', 'field', 'value');
  await cli('XGROUP', 'CREATE', 'stream', 'group', '0');
  // A second database, so the file holds more than one SELECTDB section.
  await cli('-n', '3', 'SET', 'other-db', 'value');
}

describe('crc64', () => {
  it('matches the test vector of src/crc64.c', () => {
    expect(crc64(0n, Buffer.from('123456789')).toString(16)).toBe('e9c6d914c4b8d9ca');
    expect(new Crc64().update(Buffer.from('123456789')).hex()).toBe('e9c6d914c4b8d9ca');
  });

  it('is 0 for no data and continues from a given crc', () => {
    expect(crc64(0n, Buffer.alloc(0))).toBe(0n);
    const whole = crc64(0n, Buffer.from('123456789'));
    expect(crc64(crc64(0n, Buffer.from('1234')), Buffer.from('56789'))).toBe(whole);
  });

  it('agrees with the bit-by-bit definition at every length and alignment', () => {
    const data = randomBytes(4096 + 64);
    for (const offset of [0, 1, 2, 3, 5, 7]) {
      for (const length of [0, 1, 7, 8, 15, 16, 17, 31, 63, 64, 65, 1000, 4096]) {
        const slice = data.subarray(offset, offset + length);
        expect(crc64(0n, slice), `offset ${offset} length ${length}`).toBe(referenceCrc64(slice));
      }
    }
  });

  it('gives the same result however the input is split', () => {
    const data = randomBytes(100_003);
    const whole = new Crc64().update(data).hex();
    for (const size of [1, 3, 8, 13, 4096, 65_537]) {
      const crc = new Crc64();
      for (let i = 0; i < data.length; i += size) crc.update(data.subarray(i, i + size));
      expect(crc.hex(), `chunks of ${size}`).toBe(whole);
    }
  });
});

describe('checkRdbFile on files written by redis-server', () => {
  let root: string;
  const servers: TestRedis[] = [];
  let rdbPath: string;
  let rdb: Buffer;

  beforeAll(async () => {
    root = await makeTempDir('rf-rdb-check-');
    const dir = await mkdtemp(join(root, 'checksummed-'));
    const redis = await startRedis(dir);
    servers.push(redis);
    await populate(redis);
    expect(await redis.cli('SAVE')).toBe('OK');
    rdbPath = join(dir, 'dump.rdb');
    rdb = await readFile(rdbPath);
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    if (root !== undefined) await removeTempDir(root);
  });

  async function variant(name: string, bytes: Uint8Array): Promise<string> {
    const path = join(root, name);
    await writeFile(path, bytes);
    return path;
  }

  it('accepts the file and reports version, size and the checksum Redis stored', async () => {
    const result = await checkRdbFile(rdbPath);
    // Redis 7.0 writes RDB version 10 (RDB_VERSION in src/rdb.h).
    const expectedVersion = Number(rdb.subarray(5, 9).toString('latin1'));
    expect(expectedVersion).toBeGreaterThanOrEqual(10);
    const trailer = rdb.subarray(rdb.length - 8);
    const stored = Buffer.from(trailer).reverse().toString('hex');
    expect(stored).not.toBe('0000000000000000');
    expect(result).toEqual({
      version: expectedVersion,
      bytes: rdb.length,
      crc: stored,
      checksumDisabled: false,
    });
    // And the same as the slow definition over the covered bytes.
    expect(BigInt(`0x${result.crc}`)).toBe(referenceCrc64(rdb.subarray(0, rdb.length - 8)));
  });

  it('gives the same result fed in one piece, byte by byte, and in odd pieces', () => {
    const results = [1, 7, 4096, rdb.length].map((size) => {
      const checker = new RdbChecker('dump.rdb');
      for (let i = 0; i < rdb.length; i += size) checker.update(rdb.subarray(i, i + size));
      return checker.finish();
    });
    for (const r of results) expect(r).toEqual(results[0]);
  });

  it('reports a flipped byte in the data as RF_CHECKSUM with both checksums', async () => {
    const flipped = Buffer.from(rdb);
    const at = Math.floor(rdb.length / 2);
    flipped[at] = flipped[at]! ^ 0x01;
    const path = await variant('flipped.rdb', flipped);
    const err = await expectRfError(checkRdbFile(path), 'RF_CHECKSUM');
    const stored = Buffer.from(rdb.subarray(rdb.length - 8))
      .reverse()
      .toString('hex');
    expect(err.details).toMatchObject({ path, expected: stored, bytes: rdb.length });
    expect(err.details.actual).toMatch(/^[0-9a-f]{16}$/);
    expect(err.details.actual).not.toBe(stored);
    expect(err.exitCode).toBe(4);
    expect(err.hint).toContain('redis-check-rdb');
  });

  it('reports a damaged checksum trailer as RF_CHECKSUM', async () => {
    const damaged = Buffer.from(rdb);
    damaged[rdb.length - 1] = damaged[rdb.length - 1]! ^ 0x80;
    await expectRfError(checkRdbFile(await variant('trailer.rdb', damaged)), 'RF_CHECKSUM');
  });

  it('reports a truncated file as RF_CORRUPT', async () => {
    // Cuts where the byte 9 before the end is not 0xff, which is how a truncation shows
    // (one that happens to end in 0xff plus 8 bytes fails on the checksum instead).
    const cuts = [1, 8, 9, 100, 5000, rdb.length - 18].filter(
      (cut) => rdb[rdb.length - cut - 9] !== 0xff,
    );
    expect(cuts.length).toBeGreaterThanOrEqual(4);
    for (const cut of cuts) {
      const path = await variant(`truncated-${cut}.rdb`, rdb.subarray(0, rdb.length - cut));
      const err = await expectRfError(checkRdbFile(path), 'RF_CORRUPT');
      expect(err.message).toMatch(/truncated/);
      expect(err.details).toMatchObject({ path, bytes: rdb.length - cut });
    }
  });

  it.each([0, 5, 9, 17])('reports a file of %i bytes as RF_CORRUPT', async (length) => {
    const path = await variant(`short-${length}.rdb`, rdb.subarray(0, length));
    const err = await expectRfError(checkRdbFile(path), 'RF_CORRUPT');
    expect(err.details).toMatchObject({ path, bytes: length });
  });

  it.each([
    ['bad magic', 'RADIS'],
    ['lower case', 'redis'],
    ['an AOF', '*2\r\n$'],
  ])('reports %s as RF_CORRUPT', async (_name, magic) => {
    const bad = Buffer.from(rdb);
    bad.write(magic, 0, 'latin1');
    const path = await variant(`magic-${magic.charCodeAt(1)}.rdb`, bad);
    const err = await expectRfError(checkRdbFile(path), 'RF_CORRUPT');
    expect(err.message).toMatch(/not an RDB file/);
    expect(err.details).toMatchObject({ path });
  });

  it.each(['00x1', '0000', ' 010'])('reports the version %j as RF_CORRUPT', async (version) => {
    const bad = Buffer.from(rdb);
    bad.write(version, 5, 'latin1');
    await expectRfError(checkRdbFile(await variant('version.rdb', bad)), 'RF_CORRUPT');
  });

  it('stops at a bad header without reading the rest', () => {
    const checker = new RdbChecker('stream');
    expect(() => checker.update(Buffer.from('GARBAGE!!'))).toThrow(/not an RDB file/);
  });

  it('reports a file written with rdbchecksum no as checksumDisabled', async () => {
    const dir = await mkdtemp(join(root, 'unchecksummed-'));
    const redis = await startRedis(dir, ['--rdbchecksum', 'no']);
    servers.push(redis);
    await populate(redis);
    expect(await redis.cli('SAVE')).toBe('OK');
    const path = join(dir, 'dump.rdb');
    const bytes = await readFile(path);
    expect(bytes.subarray(bytes.length - 8).equals(Buffer.alloc(8))).toBe(true);
    const result = await checkRdbFile(path);
    expect(result.checksumDisabled).toBe(true);
    expect(result.bytes).toBe(bytes.length);
    expect(BigInt(`0x${result.crc}`)).toBe(referenceCrc64(bytes.subarray(0, bytes.length - 8)));
  });

  it('passes Node errors for a missing file through', async () => {
    await expect(checkRdbFile(join(root, 'absent.rdb'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('RDB files without a checksum (versions before 5)', () => {
  it('accepts one that ends with the EOF opcode', () => {
    const checker = new RdbChecker('old.rdb');
    const file = Buffer.concat([
      Buffer.from('REDIS0004'),
      Buffer.from([0xfe, 0x00]),
      Buffer.from([0xff]),
    ]);
    checker.update(file);
    expect(checker.finish()).toEqual({
      version: 4,
      bytes: file.length,
      crc: referenceCrc64(file).toString(16).padStart(16, '0'),
      checksumDisabled: true,
    });
  });

  it('rejects one that does not', () => {
    const checker = new RdbChecker('old.rdb');
    checker.update(Buffer.from('REDIS0004\xfe\x00', 'latin1'));
    expect(() => checker.finish()).toThrow(/EOF opcode/);
  });
});

describe('RdbChecker misuse', () => {
  it('is a TypeError, not a coded error', () => {
    const checker = new RdbChecker('x');
    expect(() => checker.finish()).toThrow(/truncated/);
    expect(() => checker.finish()).toThrow(TypeError);
    expect(() => checker.update(Buffer.alloc(1))).toThrow(TypeError);
  });
});
