import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAofCapture } from '../../src/aof/index.js';
import { parseManifest } from '../../src/aof/manifest.js';
import { isRfError } from '../../src/errors.js';
import { rdbLength } from '../../src/rdb/length.js';
import type { RedisClient } from '../../src/resp/client.js';
import { Store } from '../../src/store/store.js';
import { commandsOf, quiet, storedBases, storedFiles } from '../helpers/aof.js';
import { waitFor } from '../helpers/load.js';
import { startRedis } from '../helpers/redis.js';
import { lacks } from '../helpers/redis-bin.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * Redis 6 kept one `appendonly.aof`: with `aof-use-rdb-preamble yes` an RDB followed by commands,
 * else commands only, and a rewrite renamed a new file over it. A Redis 7 base file followed by
 * its incr file is exactly such a file, so the fixtures are made by a real Redis 7 and
 * concatenated.
 */
interface Generation {
  base: Buffer;
  incr: Buffer;
}
interface Fixture {
  first: Generation;
  second: Generation;
  dbsize: number;
}

async function writeData(client: RedisClient, tag: string): Promise<void> {
  const calls: Promise<unknown>[] = [];
  const call = (...args: string[]) => calls.push(client.call(...args));
  call('SET', `${tag}:str`, 'hello');
  call('SET', `${tag}:int`, '12345');
  call('SET', `${tag}:big`, 'abc'.repeat(2000)); // LZF-compressed in the RDB
  call('SET', `${tag}:exp`, 'x', 'PX', '86400000');
  call('RPUSH', `${tag}:list`, ...Array.from({ length: 300 }, (_, i) => `item-${i}`));
  call('SADD', `${tag}:intset`, '1', '2', '3');
  call('SADD', `${tag}:set`, ...Array.from({ length: 200 }, (_, i) => `m${i}`));
  call('ZADD', `${tag}:zsmall`, '1', 'a', '2.5', 'b');
  call(
    'ZADD',
    `${tag}:zbig`,
    ...Array.from({ length: 200 }, (_, i) => [String(i / 3), `z${i}`]).flat(),
  );
  call('HSET', `${tag}:hsmall`, 'f', 'v');
  call('HSET', `${tag}:hbig`, ...Array.from({ length: 200 }, (_, i) => [`f${i}`, `v${i}`]).flat());
  call('XADD', `${tag}:stream`, '*', 'a', '1');
  call('XADD', `${tag}:stream`, '*', 'b', '2');
  call('XGROUP', 'CREATE', `${tag}:stream`, 'g', '0');
  await Promise.all(calls);
  // A pending entry and a consumer: the stream's PEL and consumer sections are not empty.
  await client.call(
    'XREADGROUP',
    'GROUP',
    'g',
    'alice',
    'COUNT',
    '1',
    'STREAMS',
    `${tag}:stream`,
    '>',
  );
  await client.call('SELECT', '3');
  await client.call('SET', `${tag}:db3`, 'other db');
  await client.call('SELECT', '0');
}

async function rewrite(client: RedisClient): Promise<void> {
  const before = Number((await client.info('persistence')).aof_rewrites);
  await client.call('BGREWRITEAOF');
  await waitFor(async () => {
    const info = await client.info('persistence');
    return info.aof_rewrite_in_progress === '0' && Number(info.aof_rewrites) > before;
  }, 'BGREWRITEAOF');
}

async function makeFixture(preamble: boolean): Promise<Fixture> {
  const redis = await startRedis({
    args: [
      '--appendonly',
      'yes',
      '--aof-use-rdb-preamble',
      preamble ? 'yes' : 'no',
      '--auto-aof-rewrite-percentage',
      '0',
      '--aof-timestamp-enabled',
      'yes',
    ],
  });
  try {
    const client = await redis.client();
    await client.call(
      'FUNCTION',
      'LOAD',
      "#!lua name=lib\nredis.register_function('f', function() return 1 end)",
    );
    await writeData(client, 'a');
    const generation = async (tag: string): Promise<Generation> => {
      await rewrite(client);
      await writeData(client, tag);
      const dir = path.join(redis.dir, 'appendonlydir');
      const m = parseManifest(readFileSync(path.join(dir, 'appendonly.aof.manifest')), 'manifest');
      return {
        base: readFileSync(path.join(dir, m.base!.name)),
        incr: readFileSync(path.join(dir, m.incrs.at(-1)!.name)),
      };
    };
    const first = await generation('b');
    const second = await generation('c');
    return { first, second, dbsize: Number(await client.call('DBSIZE')) };
  } finally {
    await redis.stop();
  }
}

let withPreamble: Fixture;
let withoutPreamble: Fixture;
/** The fixtures are cut out of a Redis 7 appendonlydir, with a function in it. */
const fixturesNeed = lacks('multi-part AOF') || lacks('functions');

beforeAll(async () => {
  if (fixturesNeed) return;
  [withPreamble, withoutPreamble] = await Promise.all([makeFixture(true), makeFixture(false)]);
});

describe.skipIf(fixturesNeed)('rdbLength', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir();
  });
  afterAll(() => removeTempDir(dir));

  it('finds the end of an RDB of every value type Redis 7.0 writes, with commands after it', async () => {
    const { base, incr } = withPreamble.first;
    const file = path.join(dir, 'preamble.aof');
    await fs.writeFile(file, Buffer.concat([base, incr]));
    const fh = await fs.open(file, 'r');
    try {
      expect(await rdbLength(fh, base.length + incr.length, file)).toBe(base.length);
    } finally {
      await fh.close();
    }
  });

  it('says RF_CORRUPT when the RDB is cut short', async () => {
    const { base } = withPreamble.first;
    const file = path.join(dir, 'short.rdb');
    await fs.writeFile(file, base.subarray(0, base.length - 20));
    const fh = await fs.open(file, 'r');
    try {
      await expect(rdbLength(fh, base.length - 20, file)).rejects.toSatisfy((err) =>
        isRfError(err, 'RF_CORRUPT'),
      );
    } finally {
      await fh.close();
    }
  });
});

describe.skipIf(fixturesNeed)('AOF capture of a Redis 6 single appendonly.aof', () => {
  it('is a file a real Redis loads (the fixture is what Redis 6 wrote)', async () => {
    const dir = await makeTempDir();
    await fs.writeFile(
      path.join(dir, 'appendonly.aof'),
      Buffer.concat([withPreamble.second.base, withPreamble.second.incr]),
    );
    // Redis 7 recognises a Redis 6 file and upgrades it (aof.c aofUpgradePrepare).
    const redis = await startRedis({ dir, args: ['--appendonly', 'yes'] });
    try {
      const client = await redis.client();
      expect(Number(await client.call('DBSIZE'))).toBe(withPreamble.dbsize);
    } finally {
      await redis.stop();
      await removeTempDir(dir);
    }
  });

  for (const preamble of [true, false]) {
    it(`${preamble ? 'with' : 'without'} an RDB preamble: stores torn writes only once whole, and follows a rewrite by rename`, async () => {
      const fx = preamble ? withPreamble : withoutPreamble;
      const aofDir = await makeTempDir();
      const storeDir = await makeTempDir();
      const store = await Store.open(storeDir, { create: true });
      const file = path.join(aofDir, 'appendonly.aof');
      const { first, second } = fx;
      const cmds = commandBoundaries(first.incr);
      // Start with the base and the first third of the commands.
      const k = cmds[Math.floor(cmds.length / 3)]!;
      await fs.writeFile(file, Buffer.concat([first.base, first.incr.subarray(0, k)]));
      const handle = await startAofCapture({
        store,
        source: 'r6',
        aofDir,
        chunkSize: 512,
        lingerMs: 10,
        pollMs: 10,
        log: quiet,
      });
      try {
        const stored = async () => (await storedFiles(store, 'r6'))[0]?.bytes.length ?? -1;
        const chunkStart = preamble ? first.base.length : 0;
        const initial = preamble ? k : first.base.length + k;
        await waitFor(async () => (await stored()) === initial, 'the first bytes stored');

        // Redis stops mid-command (a torn tail): nothing of it is stored until it is whole.
        const torn = k + Math.floor((cmds[cmds.indexOf(k) + 1]! - k) / 2);
        await fs.appendFile(file, first.incr.subarray(k, torn));
        await new Promise((r) => setTimeout(r, 150));
        expect(await stored()).toBe(initial);
        await fs.appendFile(file, first.incr.subarray(torn));

        // The rewrite: a new file is written aside and renamed over appendonly.aof; the old one
        // got its last bytes just before.
        const j = commandBoundaries(second.incr)[2]!;
        await fs.writeFile(
          path.join(aofDir, 'temp-rewriteaof-bg-1.aof'),
          Buffer.concat([second.base, second.incr.subarray(0, j)]),
        );
        await fs.rename(path.join(aofDir, 'temp-rewriteaof-bg-1.aof'), file);
        await fs.appendFile(file, second.incr.subarray(j));
        await waitFor(
          async () => (await storedFiles(store, 'r6')).length === 2,
          'the new file followed',
        );
        await handle.capture.drain();

        const files = await storedFiles(store, 'r6');
        const bases = await storedBases(store, 'r6');
        expect(files.map((f) => [f.record.name, f.record.seq, f.record.kind])).toEqual([
          ['appendonly.aof', 1, 'single'],
          ['appendonly.aof', 2, 'single'],
        ]);
        const [old, current] = files as [(typeof files)[0], (typeof files)[0]];
        expect(old.record.chunkStart).toBe(chunkStart);
        expect(old.record.ended?.size).toBe(first.base.length + first.incr.length);
        expect(current.record.ended).toBeNull();
        if (preamble) {
          expect(old.bytes.equals(first.incr)).toBe(true);
          expect(current.bytes.equals(second.incr)).toBe(true);
          expect(bases.map((b) => b.meta.format)).toEqual(['rdb-preamble', 'rdb-preamble']);
          expect(bases[0]!.bytes.equals(first.base)).toBe(true);
          expect(bases[1]!.bytes.equals(second.base)).toBe(true);
        } else {
          expect(old.bytes.equals(Buffer.concat([first.base, first.incr]))).toBe(true);
          expect(current.bytes.equals(Buffer.concat([second.base, second.incr]))).toBe(true);
          expect(bases.map((b) => [b.meta.format, b.meta.bytes])).toEqual([
            ['empty', 0],
            ['empty', 0],
          ]);
        }
        expect(bases.map((b) => b.meta.firstFileNo)).toEqual([
          old.record.fileNo,
          current.record.fileNo,
        ]);
        // Every chunk ends on a command boundary.
        for (const f of files)
          for (const c of f.chunks)
            expect(() =>
              commandsOf(
                f.bytes.subarray(c.start - f.record.chunkStart, c.end - f.record.chunkStart),
              ),
            ).not.toThrow();
      } finally {
        await handle.stop();
        await store.close();
        await removeTempDir(storeDir);
        await removeTempDir(aofDir);
      }
    });
  }
});

/** Byte positions where commands (or annotations) end in AOF bytes. */
function commandBoundaries(bytes: Buffer): number[] {
  const out: number[] = [];
  let at = 0;
  while (at < bytes.length) {
    const next = endOfFrame(bytes, at);
    out.push(next);
    at = next;
  }
  return out;
}

function endOfFrame(bytes: Buffer, at: number): number {
  const lineEnd = (from: number) => bytes.indexOf('\r\n', from) + 2;
  if (bytes[at] === 0x23) return lineEnd(at);
  const argc = Number(bytes.toString('latin1', at + 1, lineEnd(at) - 2));
  let p = lineEnd(at);
  for (let i = 0; i < argc; i++) {
    const len = Number(bytes.toString('latin1', p + 1, lineEnd(p) - 2));
    p = lineEnd(p) + len + 2;
  }
  return p;
}
