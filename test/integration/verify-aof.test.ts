import { cp } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { type AofChunkMeta, type AofFileRecord, aofKeys, sha256 } from '../../src/store/chunks.js';
import { prefixEnd } from '../../src/store/keys.js';
import { json, Store } from '../../src/store/store.js';
import { WriteLoad, waitFor } from '../helpers/load.js';
import { type RedisServer, startRedis } from '../helpers/redis.js';
import { aofTimestampArgs } from '../helpers/redis-bin.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * Both captures from a real redis-server: rf listen follows the replication stream and the
 * master's own appendonlydir (`--aof-dir`), through a long load with two BGREWRITEAOF and a
 * listener restart. rf verify finds the two histories agree; then a damaged chunk, a chunk gone
 * from the middle and a chunk whose writes differ are each found where they are.
 */

const SRC = 'default';
let master: RedisServer;
let client: RedisClient;
let work: string;
let store: string;
let files: AofFileRecord[];
let written: number;
/** The copy with a chunk deleted, shared by the verify and the restore test of it. */
let missingChunkCopy: string;
let missingChunk: AofChunkMeta;

interface VerifyJson {
  clean: boolean;
  sources: {
    problems: {
      code: string;
      where: Record<string, unknown>;
      also?: Record<string, unknown>;
      message: string;
    }[];
    crossCheck: { aligned: boolean; differs: boolean; compared: number; aofFiles: string[] }[];
  }[];
  checked: { chunks: number; compared: number };
}

/**
 * `rf restore --from aof --dry-run` to just after the damaged chunk was cut: the plan starts at
 * the base before that file (the next base is taken at the next rewrite, later) and reads every
 * chunk of the file up to then.
 */
async function restoreFromAof(dir: string, file: AofFileRecord, damaged: AofChunkMeta) {
  const chunks = await chunksOf(store, file.fileNo);
  const next = chunks.find((c) => c.start >= damaged.end)!;
  const until = new Date(next.capturedAt).toISOString();
  return rf(['restore', '--store', dir, '--from', 'aof', '--until', until, '--dry-run']);
}

function listen(): RfDaemon {
  return RfDaemon.start([
    '--source',
    master.url,
    '--store',
    store,
    '--flush-interval',
    '20',
    '--segment-size',
    '16k',
    '--aof-dir',
    master.dir,
    '--rewrite-at',
    'off',
    '--chunk-size',
    '8k',
  ]);
}

async function rewrite(): Promise<void> {
  await client.call('BGREWRITEAOF');
  await waitFor(async () => {
    const p = await client.info('persistence');
    return p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0';
  }, 'BGREWRITEAOF to finish');
}

/** Until the stream is acknowledged and the AOF capture holds every byte of the current file. */
async function bothCaughtUp(): Promise<void> {
  await caughtUp(master);
  await waitFor(
    async () => {
      const res = await rf(['info', '--store', store, '--json']);
      const aof = JSON.parse(res.stdout).sources[0]?.daemon?.aof;
      return (
        aof?.current !== null && aof?.lagBytes === 0 && aof.current.position === aof.current.size
      );
    },
    'the AOF capture to hold the whole current file',
    30_000,
    250,
  );
}

/**
 * The incr files, in the order the capture met them. The record of a rewrite's new base may come
 * before or after its incr file's (whichever the capture saw first), and a base has no chunks.
 */
function incrFiles(): AofFileRecord[] {
  return files.filter((f) => f.kind === 'incr');
}

async function verifyJson(dir: string): Promise<{ code: number | null; report: VerifyJson }> {
  const res = await rf(['verify', '--store', dir, '--json']);
  return { code: res.code, report: JSON.parse(res.stdout) as VerifyJson };
}

async function copyStore(name: string): Promise<string> {
  const copy = path.join(work, name);
  await cp(store, copy, { recursive: true });
  return copy;
}

async function chunksOf(dir: string, fileNo: number): Promise<AofChunkMeta[]> {
  const s = await Store.open(dir, { create: false });
  try {
    const out: AofChunkMeta[] = [];
    const prefix = aofKeys.chunkPrefix(SRC, fileNo);
    for await (const [, v] of s.entries({ gte: prefix, lt: prefixEnd(prefix) })) {
      out.push(json.decode<AofChunkMeta>(v));
    }
    return out;
  } finally {
    await s.close();
  }
}

beforeAll(async () => {
  master = await startRedis({
    args: [
      '--repl-diskless-sync-delay',
      '0',
      '--appendonly',
      'yes',
      ...aofTimestampArgs(),
      '--auto-aof-rewrite-percentage',
      '0',
    ],
  });
  client = await master.client();
  work = await makeTempDir('rf-verify-aof-');
  store = path.join(work, 'store');
  let d = listen();
  await d.waitForLog((l) => l.msg === 'first timeline started from the base');
  const load = new WriteLoad(client);
  load.start();
  // 2000 more writes after each step, counted from when the step ended: a rewrite can take long
  // on a loaded machine, and the load goes on meanwhile.
  const more = async (what: string) => {
    const from = load.sent;
    await waitFor(() => load.sent > from + 2000, what);
  };
  await more('the load to get going');
  await rewrite();
  await more('more load after the first rewrite');
  expect((await d.stop()).code).toBe(0);
  d = listen();
  await d.waitForLog((l) => l.msg.startsWith('partial resync accepted (+CONTINUE)'));
  await more('more load after the restart');
  await rewrite();
  await more('more load after the second rewrite');
  written = await load.stop();
  await bothCaughtUp();
  expect((await d.stop()).code).toBe(0);
  const s = await Store.open(store, { create: false });
  try {
    files = [];
    for await (const [, v] of s.entries({
      gte: aofKeys.filePrefix(SRC),
      lt: prefixEnd(aofKeys.filePrefix(SRC)),
    })) {
      files.push(json.decode<AofFileRecord>(v));
    }
  } finally {
    await s.close();
  }
}, 120_000);

afterAll(async () => {
  await master?.stop();
  if (work) await removeTempDir(work);
});

describe('rf verify with the AOF capture of a real redis-server', () => {
  it('two rewrites and a listener restart: the stream and the AOF agree on every write both hold', async () => {
    expect(files.filter((f) => f.kind === 'incr').length).toBeGreaterThanOrEqual(3);
    const { code, report } = await verifyJson(store);
    expect(report.sources[0]!.problems).toEqual([]);
    expect(code).toBe(0);
    const [pair] = report.sources[0]!.crossCheck;
    expect(report.sources[0]!.crossCheck).toHaveLength(1);
    expect(pair).toMatchObject({ aligned: true, differs: false });
    // The AOF holds every write since the server started, the stream every one since rf
    // listen did: everything the load sent is in both.
    expect(pair!.compared).toBeGreaterThanOrEqual(2 * written);
    expect(pair!.aofFiles.length).toBeGreaterThanOrEqual(3);
  });

  it('a flipped bit in a chunk: chunk-checksum with its file and byte range', async () => {
    const copy = await copyStore('flip-chunk');
    const file = incrFiles()[1]!;
    const chunk = (await chunksOf(copy, file.fileNo))[1]!;
    const s = await Store.open(copy, { create: false });
    try {
      const key = aofKeys.data(SRC, file.fileNo, chunk.start);
      const data = Buffer.from((await s.get(key))!);
      data[Math.floor(data.length / 2)]! ^= 0x01;
      await s.batch([{ type: 'put', key, value: data }]);
    } finally {
      await s.close();
    }
    const { code, report } = await verifyJson(copy);
    expect(code).toBe(1);
    expect(report.sources[0]!.problems).toEqual([
      expect.objectContaining({
        code: 'chunk-checksum',
        where: {
          file: file.name,
          fileNo: file.fileNo,
          bytes: { from: chunk.start, until: chunk.end },
        },
      }),
    ]);
    const restore = await restoreFromAof(copy, file, chunk);
    expect(restore.code).toBe(4);
    expect(restore.stderr).toContain('RF_CHECKSUM');
  });

  it('a chunk missing in the middle: chunk-missing with the lost byte range', async () => {
    const copy = await copyStore('missing-chunk');
    const file = incrFiles()[0]!;
    const chunks = await chunksOf(copy, file.fileNo);
    expect(chunks.length).toBeGreaterThan(3);
    const gone = chunks[Math.floor(chunks.length / 2)]!;
    const s = await Store.open(copy, { create: false });
    try {
      await s.batch([
        { type: 'del', key: aofKeys.chunk(SRC, file.fileNo, gone.start) },
        { type: 'del', key: aofKeys.data(SRC, file.fileNo, gone.start) },
      ]);
    } finally {
      await s.close();
    }
    const { code, report } = await verifyJson(copy);
    expect(code).toBe(1);
    expect(report.sources[0]!.problems).toEqual([
      expect.objectContaining({
        code: 'chunk-missing',
        where: {
          file: file.name,
          fileNo: file.fileNo,
          bytes: { from: gone.start, until: gone.end },
        },
      }),
    ]);
    missingChunkCopy = copy;
    missingChunk = gone;
  });

  // Kept apart: it fails while the AOF replay (src/restore/aof-source.ts) steps over a missing
  // chunk instead of refusing, which is a restore bug, not a verify one.
  it('a restore from the AOF across the missing chunk is refused', async () => {
    const restore = await restoreFromAof(missingChunkCopy, incrFiles()[0]!, missingChunk);
    expect(restore.code).toBe(4);
    expect(restore.stderr).toMatch(/RF_CORRUPT|RF_CHECKSUM/);
  });

  it('a chunk whose writes differ from the stream: cross-check-mismatch naming both places', async () => {
    const copy = await copyStore('different-chunk');
    const file = incrFiles().at(-1)!;
    const chunk = (await chunksOf(copy, file.fileNo))[2]!;
    const s = await Store.open(copy, { create: false });
    try {
      const key = aofKeys.data(SRC, file.fileNo, chunk.start);
      const data = Buffer.from((await s.get(key))!);
      // `SET load:<i> <i>`: change the key of one SET, same length, checksum rewritten to match.
      const at = data.indexOf('load:');
      data.write('LOAD:', at, 'latin1');
      await s.batch([
        { type: 'put', key, value: data },
        {
          type: 'put',
          key: aofKeys.chunk(SRC, file.fileNo, chunk.start),
          value: json.encode({ ...chunk, sha256: sha256(data) }),
        },
      ]);
    } finally {
      await s.close();
    }
    const { code, report } = await verifyJson(copy);
    expect(code).toBe(1);
    const problems = report.sources[0]!.problems;
    expect(problems.map((p) => p.code)).toEqual(['cross-check-mismatch']);
    expect(problems[0]!.where).toMatchObject({ timeline: 1 });
    expect(problems[0]!.also).toMatchObject({ file: file.name, fileNo: file.fileNo });
    expect(problems[0]!.message).toContain('the AOF has');
    expect(problems[0]!.message).toContain('LOAD:');
  });
});
