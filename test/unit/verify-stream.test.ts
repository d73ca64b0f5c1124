import { createHash } from 'node:crypto';
import { appendFile, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Archive } from '../../src/store/archive.js';
import { encodeSegment, segmentChecksum } from '../../src/store/codec.js';
import { keys } from '../../src/store/keys.js';
import { json, Store } from '../../src/store/store.js';
import type { BaseMeta, Entry, SegmentMeta } from '../../src/store/types.js';
import { emptyCounters } from '../../src/verify/context.js';
import { type SourceReport, verifySource } from '../../src/verify/verify.js';
import { ArchiveBuilder } from '../helpers/stream-archive.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * rf verify over archives written with the store's own writer, then damaged in one precise way:
 * each damage is found, with its code, its offsets or file, and its time range.
 */

const SRC = 'default';
const T0 = Date.parse('2026-11-24T12:00:00.000Z');
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await removeTempDir(d);
});

/** 300 writes in db 0 and 3, a transaction, PINGs; small segments so there are many. */
async function buildArchive(): Promise<{ dir: string; segments: SegmentMeta[]; base: BaseMeta }> {
  const work = await makeTempDir('rf-verify-unit-');
  dirs.push(work);
  const dir = path.join(work, 'store');
  const b = await ArchiveBuilder.create(dir, { startedAt: T0, maxSegmentBytes: 400 });
  try {
    await b.add(['SELECT', '0'], T0 + 1);
    for (let i = 0; i < 300; i++) {
      const now = T0 + 10 + i * 10;
      if (i % 50 === 0) await b.add(['ping'], now);
      if (i === 100) await b.add(['SELECT', '3'], now);
      if (i === 200) {
        await b.add(['MULTI'], now);
        await b.add(['SET', 'tx:a', '1'], now);
        await b.add(['SET', 'tx:b', '2'], now);
        await b.add(['EXEC'], now);
      }
      await b.add(['SET', `k:${i}`, `v${i}`], now);
    }
    await b.flush();
    const archive = new Archive(b.store);
    const segments: SegmentMeta[] = [];
    for await (const m of archive.segments(SRC, 1)) segments.push(m);
    const base = (await archive.bases(SRC))[0]!;
    return { dir, segments, base };
  } finally {
    await b.close();
  }
}

async function verify(dir: string): Promise<SourceReport> {
  const store = await Store.open(dir, { create: false });
  try {
    const source = (await new Archive(store).source(SRC))!;
    return await verifySource(store, source, {
      counters: emptyCounters(),
      progress: { done: 0, total: 0, phase: '' },
    });
  } finally {
    await store.close();
  }
}

async function damage(dir: string, f: (s: Store) => Promise<void>): Promise<void> {
  const store = await Store.open(dir, { create: false });
  try {
    await f(store);
  } finally {
    await store.close();
  }
}

/**
 * Stores `patch`'s entries in place of the segment's, under a matching checksum and count: the
 * damage only the check of the commands themselves can see.
 */
async function rewriteSegment(
  dir: string,
  seg: SegmentMeta,
  patch: (entries: Entry[]) => Entry[],
): Promise<void> {
  await damage(dir, async (s) => {
    const { entries } = await new Archive(s).readSegment(SRC, seg);
    const patched = patch(entries);
    const data = encodeSegment(patched);
    const meta: SegmentMeta = { ...seg, count: patched.length, crc: segmentChecksum(data) };
    await s.batch([
      { type: 'put', key: keys.data(SRC, 1, seg.start), value: data },
      { type: 'put', key: keys.segment(SRC, 1, seg.start), value: json.encode(meta) },
    ]);
  });
}

describe('rf verify: the stream', () => {
  it('a clean archive has no problem, and every segment was read', async () => {
    const { dir, segments } = await buildArchive();
    expect(segments.length).toBeGreaterThan(20);
    const counters = emptyCounters();
    const store = await Store.open(dir, { create: false });
    let report: SourceReport;
    try {
      const source = (await new Archive(store).source(SRC))!;
      report = await verifySource(store, source, {
        counters,
        progress: { done: 0, total: 0, phase: '' },
      });
    } finally {
      await store.close();
    }
    expect(report.problems).toEqual([]);
    expect(counters.segments).toBe(segments.length);
    // SELECT 0, 300 SETs, 6 PINGs, SELECT 3, MULTI + 2 SETs + EXEC
    expect(counters.entries).toBe(1 + 300 + 6 + 1 + 4);
    expect(counters.bases).toBe(1);
  });

  it('a flipped bit in a segment value: segment-checksum at that segment, with its times', async () => {
    const { dir, segments } = await buildArchive();
    const seg = segments[7]!;
    await damage(dir, async (s) => {
      const key = keys.data(SRC, 1, seg.start);
      const data = Buffer.from((await s.get(key))!);
      data[data.length - 5]! ^= 0x04;
      await s.batch([{ type: 'put', key, value: data }]);
    });
    const { problems } = await verify(dir);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      code: 'segment-checksum',
      where: { timeline: 1, offsets: { from: seg.start, until: seg.end } },
      time: { from: seg.firstTime, until: seg.lastTime },
    });
  });

  it('a deleted segment: offsets-missing naming the lost offsets and the time between its neighbours', async () => {
    const { dir, segments } = await buildArchive();
    const [before, gone, after] = [segments[9]!, segments[10]!, segments[11]!];
    await damage(dir, (s) =>
      s.batch([
        { type: 'del', key: keys.segment(SRC, 1, gone.start) },
        { type: 'del', key: keys.data(SRC, 1, gone.start) },
        { type: 'del', key: keys.time(SRC, 1, gone.lastTime, gone.start) },
      ]),
    );
    const { problems } = await verify(dir);
    expect(problems).toEqual([
      expect.objectContaining({
        code: 'offsets-missing',
        where: { timeline: 1, offsets: { from: gone.start, until: gone.end } },
        time: { from: before.lastTime, until: after.firstTime },
      }),
    ]);
  });

  it('the last segment deleted: the offsets up to the durable offset are missing', async () => {
    const { dir, segments } = await buildArchive();
    const last = segments[segments.length - 1]!;
    await damage(dir, (s) =>
      s.batch([
        { type: 'del', key: keys.segment(SRC, 1, last.start) },
        { type: 'del', key: keys.data(SRC, 1, last.start) },
        { type: 'del', key: keys.time(SRC, 1, last.lastTime, last.start) },
      ]),
    );
    const { problems } = await verify(dir);
    expect(problems.map((p) => [p.code, p.where.offsets])).toEqual([
      ['offsets-missing', { from: last.start, until: last.end }],
    ]);
  });

  it('data whose meta is gone: the offsets are missing and the data is an orphan', async () => {
    const { dir, segments } = await buildArchive();
    const seg = segments[3]!;
    await damage(dir, (s) => s.batch([{ type: 'del', key: keys.segment(SRC, 1, seg.start) }]));
    const { problems } = await verify(dir);
    expect(problems.map((p) => p.code).sort()).toEqual([
      'offsets-missing',
      'segment-orphan',
      'time-index',
    ]);
  });

  it('a segment missing from the time index: time-index, since restores and rf log seek by it', async () => {
    const { dir, segments } = await buildArchive();
    const seg = segments[5]!;
    await damage(dir, (s) =>
      s.batch([{ type: 'del', key: keys.time(SRC, 1, seg.lastTime, seg.start) }]),
    );
    const { problems } = await verify(dir);
    expect(problems).toEqual([
      expect.objectContaining({
        code: 'time-index',
        where: { timeline: 1, offsets: { from: seg.start, until: seg.end } },
      }),
    ]);
  });

  it('an entry that is not a whole command, under a valid checksum: command-malformed at its offset', async () => {
    const { dir, segments } = await buildArchive();
    const seg = segments[4]!;
    await rewriteSegment(dir, seg, (entries) => {
      // Same length, so offsets still add up: the frame's argc says 3 but the bytes hold 2 bulks.
      const bad = Buffer.from(entries[1]!.bytes);
      bad.write('*4', 0, 'latin1');
      return entries.map((e, i) => (i === 1 ? { ...e, bytes: bad } : e));
    });
    const { problems } = await verify(dir);
    expect(problems.map((p) => p.code)).toContain('command-malformed');
    const p = problems.find((x) => x.code === 'command-malformed')!;
    expect(p.where.timeline).toBe(1);
    expect(p.where.offsets!.from).toBeGreaterThan(seg.start);
    expect(p.where.offsets!.until).toBeLessThanOrEqual(seg.end);
  });

  it('an entry that holds two whole commands: command-malformed, and the entries after it still checked', async () => {
    const { dir, segments } = await buildArchive();
    const seg = segments[4]!;
    await rewriteSegment(dir, seg, (entries) => {
      // Entries 1 and 2 stored as one: every offset still adds up, the table just lies.
      const joined = {
        ...entries[1]!,
        bytes: Buffer.concat([entries[1]!.bytes, entries[2]!.bytes]),
      };
      return [entries[0]!, joined, ...entries.slice(3)];
    });
    const { problems } = await verify(dir);
    const malformed = problems.filter((x) => x.code === 'command-malformed');
    expect(malformed).toHaveLength(1);
    expect(malformed[0]!.message).toMatch(/^1 stored entry is not one well-formed RESP command/);
    expect(malformed[0]!.where.offsets!.from).toBeGreaterThan(seg.start);
    // The segment's other entries parsed: no other kind of problem is reported for it.
    expect(problems.filter((x) => x.code !== 'command-malformed')).toEqual([]);
  });

  it('a meta whose db disagrees with the SELECTs before it: segment-meta', async () => {
    const { dir, segments } = await buildArchive();
    // A segment after `SELECT 3`: its meta must say db 3, which a restore starting there relies on.
    const seg = segments.find((m) => m.db === 3)!;
    await damage(dir, (s) =>
      s.batch([
        {
          type: 'put',
          key: keys.segment(SRC, 1, seg.start),
          value: json.encode({ ...seg, db: 0 }),
        },
      ]),
    );
    const { problems } = await verify(dir);
    expect(problems).toEqual([
      expect.objectContaining({
        code: 'segment-meta',
        where: { timeline: 1, offsets: { from: seg.start, until: seg.end } },
      }),
    ]);
    expect(problems[0]!.message).toContain('db 0');
  });

  it('a meta that is not JSON: record-unreadable naming the key, and its offsets missing', async () => {
    const { dir, segments } = await buildArchive();
    const seg = segments[2]!;
    await damage(dir, (s) =>
      s.batch([{ type: 'put', key: keys.segment(SRC, 1, seg.start), value: Buffer.from('{nope') }]),
    );
    const { problems } = await verify(dir);
    expect(problems.map((p) => p.code)).toContain('record-unreadable');
    expect(problems.find((p) => p.code === 'record-unreadable')!.where.key).toBe(
      keys.segment(SRC, 1, seg.start),
    );
    expect(problems.find((p) => p.code === 'offsets-missing')!.where.offsets).toEqual({
      from: seg.start,
      until: seg.end,
    });
  });

  it('a timeline record deleted: its segments are reported as a timeline with no record', async () => {
    const { dir } = await buildArchive();
    await damage(dir, (s) => s.batch([{ type: 'del', key: keys.timeline(SRC, 1) }]));
    const { problems } = await verify(dir);
    expect(problems).toEqual([
      expect.objectContaining({ code: 'timeline-missing', where: { timeline: 1 } }),
    ]);
  });
});

describe('rf verify: bases', () => {
  it('a flipped bit in the base file: base-checksum naming the file', async () => {
    const { dir, base } = await buildArchive();
    const file = path.join(dir, base.file);
    const bytes = await readFile(file);
    bytes[3]! ^= 0x01;
    await writeFile(file, bytes);
    const { problems } = await verify(dir);
    expect(problems).toEqual([
      expect.objectContaining({
        code: 'base-checksum',
        where: { timeline: 1, offsets: { from: 0, until: 0 }, file: base.file },
        time: { from: base.takenAt, until: base.takenAt },
      }),
    ]);
    // The RDB check finds the same damage independently: the header is no longer REDIS.
    expect(problems[0]!.message).toContain('not an RDB file');
  });

  it('a truncated base: base-truncated with the missing byte range', async () => {
    const { dir, base } = await buildArchive();
    await truncate(path.join(dir, base.file), base.bytes - 4);
    const { problems } = await verify(dir);
    expect(problems).toEqual([
      expect.objectContaining({
        code: 'base-truncated',
        where: expect.objectContaining({
          file: base.file,
          bytes: { from: base.bytes - 4, until: base.bytes },
        }),
      }),
    ]);
  });

  it('a base file that is gone: base-missing', async () => {
    const { dir, base } = await buildArchive();
    await rm(path.join(dir, base.file));
    const { problems } = await verify(dir);
    expect(problems.map((p) => [p.code, p.where.file])).toEqual([['base-missing', base.file]]);
  });

  it('a base recorded with its damage (sha256 matches, CRC64 does not): base-rdb', async () => {
    const { dir, base } = await buildArchive();
    const file = path.join(dir, base.file);
    const bytes = await readFile(file);
    bytes[bytes.length - 1]! ^= 0xff;
    await writeFile(file, bytes);
    await damage(dir, (s) =>
      s.batch([
        {
          type: 'put',
          key: keys.base(SRC, 1, base.offset),
          value: json.encode({
            ...base,
            sha256: createHash('sha256').update(bytes).digest('hex'),
          }),
        },
      ]),
    );
    const { problems } = await verify(dir);
    expect(problems.map((p) => p.code)).toEqual(['base-rdb']);
    expect(problems[0]!.message).toContain('checksum mismatch');
  });

  it('bytes appended to a base: base-checksum', async () => {
    const { dir, base } = await buildArchive();
    await appendFile(path.join(dir, base.file), 'x');
    const { problems } = await verify(dir);
    expect(problems.map((p) => p.code)).toEqual(['base-checksum']);
  });
});
