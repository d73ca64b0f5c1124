import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { ImpreciseWindow } from '../../src/bounds/windows.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { Archive } from '../../src/store/archive.js';
import {
  type AofChunkMeta,
  AofChunkWriter,
  type AofFileRecord,
  aofKeys,
  sha256,
} from '../../src/store/chunks.js';
import { keys } from '../../src/store/keys.js';
import { json, Store } from '../../src/store/store.js';
import { emptyCounters } from '../../src/verify/context.js';
import { type SourceReport, verifySource } from '../../src/verify/verify.js';
import { ArchiveBuilder, emptyRdb } from '../helpers/stream-archive.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * The AOF chunks and the stream-vs-AOF cross-check, over archives where both captures are
 * written with the store's own writers from one list of writes, each side with its own framing:
 * the stream with PINGs and a SELECT only when the db changes, the AOF with `#TS` lines, a SELECT
 * at the top of every incr file and chunks cut on command boundaries.
 */

const SRC = 'default';
const T0 = Date.parse('2026-11-24T12:00:00.000Z');
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await removeTempDir(d);
});

interface W {
  db: number;
  args: string[];
  time: number;
}

/** 600 writes over 60 s across dbs 0, 1 and 2. */
function history(): W[] {
  const out: W[] = [];
  for (let i = 0; i < 600; i++) {
    const db = i < 200 ? 0 : i < 400 ? (i % 2 === 0 ? 1 : 2) : 0;
    out.push({ db, args: ['SET', `key:${i}`, `value-${i}`], time: T0 + 1000 + i * 100 });
  }
  return out;
}

/**
 * The stream captured writes [from, to): the AOF holds the whole history in two incr files
 * (a rewrite between them at write 300) and its capture lags: it stops at write 580. With
 * `lateUntil`, the stream's first writes up to that one arrived together when it ran, as the
 * writes a master buffers during a snapshot transfer do, in one imprecise window.
 */
async function build(
  streamFrom = 100,
  aofValues = 'value',
  lateUntil?: number,
): Promise<{ dir: string; files: AofFileRecord[] }> {
  const work = await makeTempDir('rf-verify-aof-');
  dirs.push(work);
  const dir = path.join(work, 'store');
  const writes = history();
  const b = await ArchiveBuilder.create(dir, {
    startedAt: writes[streamFrom]!.time - 50,
    maxSegmentBytes: 600,
  });
  let files: AofFileRecord[] = [];
  try {
    let db = -1;
    let late: ImpreciseWindow | null = null;
    for (const [i, w] of writes.entries()) {
      if (i < streamFrom) continue;
      const stored = lateUntil !== undefined && i <= lateUntil ? writes[lateUntil]!.time : w.time;
      if (i % 40 === 0) await b.add(['ping'], stored);
      if (w.db !== db) await b.add(['SELECT', String(w.db)], stored);
      db = w.db;
      const at = await b.add(w.args, stored);
      if (stored !== w.time) {
        late ??= {
          timeline: 1,
          firstOffset: at,
          lastOffset: at,
          from: writes[streamFrom]!.time - 50,
          until: stored,
          entries: 0,
          writes: 0,
        };
        late.lastOffset = at + encodeCommand(w.args).length - 1;
        late.entries++;
        late.writes++;
      }
    }
    await b.flush();
    if (late !== null) {
      const w = late;
      await b.store.batch([
        { type: 'put', key: keys.imprecise(SRC, 1, w.firstOffset), value: json.encode(w) },
      ]);
    }
    const aof = new AofChunkWriter(b.store);
    const aofWrites = writes.map((w) => ({
      ...w,
      args: w.args.map((a) => a.replace('value', aofValues)),
    }));
    files = [
      await writeAofFile(aof, 1, 'appendonly.aof.1.incr.aof', aofWrites.slice(0, 300), true),
      await writeAofFile(aof, 3, 'appendonly.aof.2.incr.aof', aofWrites.slice(300, 580), false),
    ];
    const rdb = emptyRdb();
    await aof.putBase(
      SRC,
      {
        fileNo: 2,
        name: 'appendonly.aof.2.base.rdb',
        seq: 2,
        ino: 22,
        format: 'rdb',
        bytes: rdb.length,
        firstFileNo: 3,
      },
      { stream: Readable.from([rdb]), sha256: Promise.resolve(sha256(rdb)) },
    );
  } finally {
    await b.close();
  }
  return { dir, files };
}

/** An incr file as Redis writes it: SELECT first, `#TS` before each new second; cut into chunks. */
async function writeAofFile(
  aof: AofChunkWriter,
  fileNo: number,
  name: string,
  writes: W[],
  ended: boolean,
): Promise<AofFileRecord> {
  const record: AofFileRecord = {
    fileNo,
    name,
    kind: 'incr',
    seq: fileNo,
    ino: 1000 + fileNo,
    chunkStart: 0,
    firstSeenAt: T0,
    capturedEnd: 0,
    chunks: 0,
    last: null,
    ended: null,
  };
  await aof.putFile(SRC, record);
  let db = -1;
  let second = -1;
  let pos = 0;
  let chunk: { bytes: Buffer[]; commands: number; firstTs: number | null; lastTs: number | null } =
    { bytes: [], commands: 0, firstTs: null, lastTs: null };
  let lastTime = T0;
  const cut = async () => {
    const data = Buffer.concat(chunk.bytes);
    if (data.length === 0) return;
    const meta: AofChunkMeta = {
      fileNo,
      file: name,
      seq: fileNo,
      start: pos,
      end: pos + data.length,
      sha256: sha256(data),
      capturedAt: lastTime + 20,
      commands: chunk.commands,
      firstTs: chunk.firstTs,
      lastTs: chunk.lastTs,
    };
    await aof.putChunk(SRC, meta, data);
    pos += data.length;
    chunk = { bytes: [], commands: 0, firstTs: null, lastTs: null };
  };
  for (const w of writes) {
    const s = Math.floor(w.time / 1000);
    if (s !== second) {
      chunk.bytes.push(Buffer.from(`#TS:${s}\r\n`));
      chunk.firstTs ??= s;
      chunk.lastTs = s;
      second = s;
    }
    if (w.db !== db) {
      chunk.bytes.push(encodeCommand(['SELECT', String(w.db)]));
      chunk.commands++;
      db = w.db;
    }
    chunk.bytes.push(encodeCommand(w.args));
    chunk.commands++;
    lastTime = w.time;
    if (chunk.bytes.reduce((n, x) => n + x.length, 0) >= 700) await cut();
  }
  await cut();
  return aof.putFile(SRC, { ...record, ended: ended ? { at: lastTime, size: pos } : null });
}

async function verify(dir: string): Promise<SourceReport & { compared: number }> {
  const store = await Store.open(dir, { create: false });
  try {
    const counters = emptyCounters();
    const source = (await new Archive(store).source(SRC))!;
    const report = await verifySource(store, source, {
      counters,
      progress: { done: 0, total: 0, phase: '' },
    });
    return { ...report, compared: counters.compared };
  } finally {
    await store.close();
  }
}

async function chunksOf(dir: string, fileNo: number): Promise<AofChunkMeta[]> {
  const store = await Store.open(dir, { create: false });
  try {
    const out: AofChunkMeta[] = [];
    const prefix = aofKeys.chunkPrefix(SRC, fileNo);
    for await (const [, v] of store.entries({ gte: prefix, lt: `${prefix}\xff` })) {
      out.push(json.decode<AofChunkMeta>(v));
    }
    return out;
  } finally {
    await store.close();
  }
}

async function patch(dir: string, f: (s: Store) => Promise<void>): Promise<void> {
  const s = await Store.open(dir, { create: false });
  try {
    await f(s);
  } finally {
    await s.close();
  }
}

describe('rf verify: AOF chunks and the cross-check', () => {
  it('two captures of one history agree over the writes both hold, across the rewrite', async () => {
    const { dir } = await build();
    const report = await verify(dir);
    expect(report.problems).toEqual([]);
    // The stream holds writes 100..599, the AOF 0..579: 480 in common, SELECTs and PINGs aside.
    expect(report.compared).toBe(480);
    expect(report.crossCheck).toEqual([
      expect.objectContaining({ timeline: 1, aligned: true, differs: false, compared: 480 }),
    ]);
    expect(report.crossCheck[0]!.aofFiles).toEqual([
      'appendonly.aof.1.incr.aof',
      'appendonly.aof.2.incr.aof',
    ]);
  });

  it('the AOF capture starting after the stream lines up too', async () => {
    // The stream from write 0, the AOF from 0 as well: same start, nothing to skip.
    const { dir } = await build(0);
    const report = await verify(dir);
    expect(report.problems).toEqual([]);
    expect(report.compared).toBe(580);
  });

  it('a flipped bit in a chunk: chunk-checksum with its file and byte range', async () => {
    const { dir } = await build();
    const chunk = (await chunksOf(dir, 1))[5]!;
    await patch(dir, async (s) => {
      const key = aofKeys.data(SRC, 1, chunk.start);
      const data = Buffer.from((await s.get(key))!);
      data[10]! ^= 0x02;
      await s.batch([{ type: 'put', key, value: data }]);
    });
    const report = await verify(dir);
    expect(report.problems).toEqual([
      expect.objectContaining({
        code: 'chunk-checksum',
        where: {
          file: 'appendonly.aof.1.incr.aof',
          fileNo: 1,
          bytes: { from: chunk.start, until: chunk.end },
        },
        time: { from: chunk.firstTs! * 1000, until: chunk.capturedAt },
      }),
    ]);
  });

  it('a chunk missing in the middle: chunk-missing with the lost byte range; the rest still agrees', async () => {
    const { dir } = await build();
    const chunks = await chunksOf(dir, 3);
    const gone = chunks[10]!;
    await patch(dir, (s) =>
      s.batch([
        { type: 'del', key: aofKeys.chunk(SRC, 3, gone.start) },
        { type: 'del', key: aofKeys.data(SRC, 3, gone.start) },
      ]),
    );
    const report = await verify(dir);
    expect(report.problems).toEqual([
      expect.objectContaining({
        code: 'chunk-missing',
        where: {
          file: 'appendonly.aof.2.incr.aof',
          fileNo: 3,
          bytes: { from: gone.start, until: gone.end },
        },
        time: { from: chunks[9]!.capturedAt, until: chunks[11]!.capturedAt },
      }),
    ]);
    // Both sides of the hole are compared on their own, lined up again after it.
    expect(report.crossCheck.map((c) => c.aligned)).toEqual([true, true]);
    expect(report.crossCheck.every((c) => !c.differs)).toBe(true);
  });

  it('a chunk whose writes differ from the stream (checksum rewritten to match): cross-check-mismatch at both places', async () => {
    const { dir } = await build();
    const chunk = (await chunksOf(dir, 3))[4]!;
    let at = -1;
    await patch(dir, async (s) => {
      const key = aofKeys.data(SRC, 3, chunk.start);
      const data = Buffer.from((await s.get(key))!);
      at = data.indexOf('value-');
      data.write('VALUE-', at, 'latin1');
      const meta: AofChunkMeta = { ...chunk, sha256: sha256(data) };
      await s.batch([
        { type: 'put', key, value: data },
        { type: 'put', key: aofKeys.chunk(SRC, 3, chunk.start), value: json.encode(meta) },
      ]);
    });
    const report = await verify(dir);
    expect(report.problems).toHaveLength(1);
    const p = report.problems[0]!;
    expect(p.code).toBe('cross-check-mismatch');
    expect(p.where.timeline).toBe(1);
    expect(p.also).toMatchObject({ file: 'appendonly.aof.2.incr.aof', fileNo: 3 });
    expect(p.also!.bytes!.from).toBeGreaterThanOrEqual(chunk.start);
    expect(p.also!.bytes!.until).toBeLessThanOrEqual(chunk.end);
    expect(p.message).toMatch(
      /the stream has SET "key:\d+" "value-\d+" in db \d, the AOF has SET "key:\d+" "VALUE-\d+"/,
    );
    expect(report.crossCheck[0]).toMatchObject({ aligned: true, differs: true });
  });

  it('stream writes the master buffered during the snapshot transfer, stored 15 s late, still line up', async () => {
    // Writes 100..250 ran from 11 s to 26 s but reached the stream together at 26 s, after the
    // base: their AOF chunks were cut 15 s before the stream's stored times.
    const { dir } = await build(100, 'value', 250);
    const report = await verify(dir);
    expect(report.problems).toEqual([]);
    expect(report.crossCheck).toEqual([
      expect.objectContaining({ timeline: 1, aligned: true, differs: false, compared: 480 }),
    ]);
  });

  it('an AOF that shares no write with the stream over the same time: cross-check-unaligned', async () => {
    const { dir } = await build(100, 'other');
    const report = await verify(dir);
    expect(report.problems).toEqual([
      expect.objectContaining({
        code: 'cross-check-unaligned',
        where: expect.objectContaining({ timeline: 1 }),
        also: expect.objectContaining({ fileNo: 1 }),
      }),
    ]);
    expect(report.crossCheck[0]).toMatchObject({ aligned: false, compared: 0 });
  });

  it('a flipped bit in the AOF base: aof-base-checksum', async () => {
    const { dir } = await build();
    const file = path.join(dir, 'aof-bases', SRC);
    const { readdir } = await import('node:fs/promises');
    const [name] = await readdir(file);
    const bytes = await readFile(path.join(file, name!));
    bytes[2]! ^= 0x10;
    await writeFile(path.join(file, name!), bytes);
    const report = await verify(dir);
    expect(report.problems.map((p) => [p.code, p.where.fileNo])).toEqual([
      ['aof-base-checksum', 2],
    ]);
  });
});
