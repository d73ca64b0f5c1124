import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyLogStats, type LogFilter, type LogWrite, queryLog } from '../../src/log/query.js';
import { keyArgs } from '../../src/resp/key-args.js';
import { Archive } from '../../src/store/archive.js';
import { keys } from '../../src/store/keys.js';
import { Store } from '../../src/store/store.js';
import { ArchiveBuilder } from '../helpers/stream-archive.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * The `rf log` query over an archive written with the store's own writer: exact times, dbs and
 * segment boundaries, so the window bounds, the key arguments and the seek can be checked.
 */

const SRC = 'default';
const T0 = Date.parse('2026-11-24T12:00:00.000Z');
const MINUTE = 60_000;
let work: string;
let dir: string;
/** Offsets of a few writes, by a name the tests use. */
const at: Record<string, number> = {};

beforeAll(async () => {
  work = await makeTempDir('rf-log-query-');
  dir = path.join(work, 'store');
  const b = await ArchiveBuilder.create(dir, { startedAt: T0, maxSegmentBytes: 2000 });
  try {
    await b.add(['SELECT', '0'], T0 + 1);
    // 20 minutes of background writes, one every 50 ms: many segments to seek over.
    for (let i = 0; i < 24_000; i++) {
      const now = T0 + 10 + i * 50;
      if (i % 200 === 0) await b.add(['ping'], now);
      await b.add(['SET', `bg:${i}`, `v${i}`], now);
      if (i === 6000) {
        // 12:05:00.010: the writes the key tests look for
        at.mset = await b.add(['MSET', 'a', 'user:42', 'user:42', 'x'], now);
        at.del = await b.add(['DEL', 'other', 'user:42'], now);
        at.unknown = await b.add(['MODULE.CMD', 'zzz', 'user:42'], now);
        at.valueOnly = await b.add(['SET', 'not-it', 'user:42'], now);
        await b.add(['SELECT', '3'], now);
        at.db3 = await b.add(['HSET', 'user:42', 'name', 'ann'], now);
        at.flushdb = await b.add(['FLUSHDB'], now);
        await b.add(['MULTI'], now);
        at.inTx = await b.add(['set', 'user:42', 'tx'], now);
        await b.add(['SELECT', '5'], now);
        at.inTxDb5 = await b.add(['SET', 'user:43', 'tx5'], now);
        await b.add(['EXEC'], now);
        at.swapdb = await b.add(['SWAPDB', '0', '5'], now);
        await b.add(['SELECT', '0'], now);
      }
    }
    // A second timeline, after a gap of one minute.
    await b.newTimeline(T0 + 21 * MINUTE, 'b'.repeat(40));
    await b.add(['SELECT', '0'], T0 + 21 * MINUTE + 5);
    at.tl2 = await b.add(['SET', 'user:42', 'second timeline'], T0 + 21 * MINUTE + 10);
  } finally {
    await b.close();
  }
}, 60_000);

afterAll(async () => {
  if (work) await removeTempDir(work);
});

async function query(
  window: { since: number | null; until: number | null },
  filter: LogFilter = {},
): Promise<{ writes: LogWrite[]; stats: ReturnType<typeof emptyLogStats> }> {
  const store = await Store.open(dir, { create: false });
  try {
    const stats = emptyLogStats();
    const writes: LogWrite[] = [];
    for await (const w of queryLog(new Archive(store), SRC, window, filter, stats)) writes.push(w);
    return { writes, stats };
  } finally {
    await store.close();
  }
}

describe('rf log: the window', () => {
  it('seeks to --since: a one-minute window in the middle reads a few segments, not all', async () => {
    const all = await query({ since: null, until: null }, { command: 'hset' });
    const window = await query({ since: T0 + 10 * MINUTE, until: T0 + 11 * MINUTE - 1 });
    // 1200 background writes a minute, plus PINGs; no HSET in that minute.
    expect(window.writes).toHaveLength(1200);
    expect(window.writes[0]!.time).toBe(T0 + 10 * MINUTE + 10);
    expect(all.stats.segments).toBeGreaterThan(400);
    expect(window.stats.segments).toBeLessThan(all.stats.segments / 10);
  });

  it('both bounds are inclusive, to the millisecond', async () => {
    const t = T0 + 10 + 100 * 50;
    const { writes } = await query({ since: t, until: t });
    expect(writes.map((w) => w.args.map(String))).toEqual([['SET', 'bg:100', 'v100']]);
    const none = await query({ since: t + 1, until: t + 49 });
    expect(none.writes).toEqual([]);
  });

  it('PING, SELECT, MULTI and EXEC are not writes and are never printed', async () => {
    const { writes } = await query({ since: T0, until: T0 + 10 + 209 * 50 });
    expect(writes.some((w) => ['ping', 'select', 'multi', 'exec'].includes(w.name))).toBe(false);
    expect(writes).toHaveLength(210);
  });

  it('reads every timeline the window covers, each from its own offsets', async () => {
    const { writes } = await query(
      { since: T0 + 19 * MINUTE, until: null },
      {
        key: Buffer.from('user:42'),
      },
    );
    expect(writes.map((w) => [w.timeline, w.offset])).toEqual([[2, at.tl2]]);
  });
});

describe('rf log --key: which arguments are keys', () => {
  const window = { since: T0 + 5 * MINUTE, until: T0 + 5 * MINUTE + 10 };

  it('matches key arguments only: MSET keys (not values), DEL any key, an unknown command on any argument', async () => {
    const { writes } = await query(window, { key: Buffer.from('user:42') });
    const found = writes.map((w) => w.offset);
    expect(found).toEqual([at.mset, at.del, at.unknown, at.db3, at.flushdb, at.inTx, at.swapdb]);
    expect(found).not.toContain(at.valueOnly);
  });

  it('globs follow Redis: user:4? matches user:42 and user:43', async () => {
    const { writes } = await query(window, { key: Buffer.from('user:4?') });
    expect(writes.map((w) => w.offset)).toContain(at.inTxDb5);
  });

  it('each write carries the db of the SELECT in effect, inside a MULTI too', async () => {
    const { writes } = await query(window, { key: Buffer.from('user:4[23]') });
    const byOffset = new Map(writes.map((w) => [w.offset, w]));
    const get = (name: string) => byOffset.get(at[name]!);
    expect(get('mset')!.db).toBe(0);
    expect(get('db3')!.db).toBe(3);
    expect(get('inTx')).toMatchObject({ db: 3, multiAt: expect.any(Number) });
    expect(get('inTxDb5')).toMatchObject({ db: 5 });
    expect(get('mset')!.multiAt).toBeNull();
  });

  it('--db keeps writes to that db; SWAPDB matches both its dbs', async () => {
    const db5 = await query(window, { db: 5 });
    expect(db5.writes.map((w) => w.offset)).toEqual([at.inTxDb5, at.swapdb]);
  });

  it('--command is case-insensitive against the stream', async () => {
    const { writes } = await query(window, { command: 'set', key: Buffer.from('user:42') });
    // `set` was sent in lower case inside the MULTI.
    expect(writes.map((w) => w.offset)).toEqual([at.inTx]);
  });

  it('key positions of multi-key commands', () => {
    const args = (...a: string[]) => a.map((x) => Buffer.from(x));
    expect(
      keyArgs('zunionstore', args('ZUNIONSTORE', 'dst', '2', 'a', 'b', 'WEIGHTS', '1', '2')),
    ).toEqual({
      kind: 'keys',
      indices: [1, 3, 4],
    });
    expect(keyArgs('bitop', args('BITOP', 'OR', 'dst', 'a', 'b'))).toEqual({
      kind: 'keys',
      indices: [2, 3, 4],
    });
    expect(keyArgs('sort', args('SORT', 'src', 'BY', 'w_*', 'STORE', 'dst'))).toEqual({
      kind: 'keys',
      indices: [1, 5],
    });
    expect(keyArgs('xgroup', args('XGROUP', 'CREATE', 'stream', 'grp', '0'))).toEqual({
      kind: 'keys',
      indices: [2],
    });
    expect(keyArgs('eval', args('EVAL', 'return 1', '1', 'k', 'argv'))).toEqual({
      kind: 'keys',
      indices: [3],
    });
  });
});

describe('rf log over damage', () => {
  it('a segment that fails its checksum is reported and skipped; the writes around it are still shown', async () => {
    const copy = path.join(work, 'damaged');
    const { cp } = await import('node:fs/promises');
    await cp(dir, copy, { recursive: true });
    const store = await Store.open(copy, { create: false });
    const t = T0 + 3 * MINUTE;
    try {
      const seg = (await new Archive(store).segmentAtTime(SRC, 1, t))!;
      const key = keys.data(SRC, 1, seg.start);
      const data = Buffer.from((await store.get(key))!);
      data[data.length - 3]! ^= 0x20;
      await store.batch([{ type: 'put', key, value: data }]);
      const stats = emptyLogStats();
      const writes: LogWrite[] = [];
      for await (const w of queryLog(
        new Archive(store),
        SRC,
        { since: t - MINUTE, until: t + MINUTE },
        {},
        stats,
      )) {
        writes.push(w);
      }
      expect(stats.damaged).toEqual([
        expect.objectContaining({
          timeline: 1,
          start: seg.start,
          end: seg.end,
          code: 'RF_CHECKSUM',
        }),
      ]);
      expect(writes.length).toBeGreaterThan(2000);
      expect(writes.some((w) => w.offset >= seg.start && w.offset <= seg.end)).toBe(false);
    } finally {
      await store.close();
    }
  });
});
