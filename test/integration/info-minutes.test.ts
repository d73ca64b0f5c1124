import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activity } from '../../src/log/activity.js';
import { silentLogger } from '../../src/logger.js';
import { encodeCommand } from '../../src/resp/encode.js';
import { Archive } from '../../src/store/archive.js';
import { keys } from '../../src/store/keys.js';
import { Store } from '../../src/store/store.js';
import { indexSource } from '../../src/store/summary.js';
import type { DurableState } from '../../src/store/types.js';
import { StreamWriter } from '../../src/store/writer.js';
import { ArchiveBuilder } from '../helpers/stream-archive.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * `rf info`'s activity picture from the writes per minute rf keeps as it writes: exact counts,
 * whatever the number of segments, the same minutes after a restart, and the segment metas
 * still used for a timeline an older rf began.
 */

const T0 = Date.parse('2026-11-24T12:00:00.000Z');
const MINUTE = 60_000;
const MINUTES = 180;
/** Writes in minute m. */
const w = (m: number) => (m % 7) * 3;
let work: string;
let dir: string;

beforeAll(async () => {
  work = await makeTempDir('rf-minutes-');
  dir = path.join(work, 'store');
  const b = await ArchiveBuilder.create(dir, { startedAt: T0, maxSegmentBytes: 300 });
  try {
    await b.add(['SELECT', '0'], T0 + 1);
    for (let m = 0; m < MINUTES; m++) {
      await b.add(['ping'], T0 + m * MINUTE + 5);
      for (let i = 0; i < w(m); i++)
        await b.add(['SET', `k:${m}:${i}`, 'x'], T0 + m * MINUTE + 10 + i * 900);
    }
  } finally {
    await b.close();
  }
});

afterAll(async () => {
  if (work) await removeTempDir(work);
});

async function picture() {
  const store = await Store.open(dir, { create: false });
  try {
    const archive = new Archive(store);
    const ix = await indexSource(archive, (await archive.source('default'))!);
    return (await activity(archive, 'default', ix.timelines, ix.restorable, {
      maxBins: 64,
      metaLimit: 1_000_000,
    }))!;
  } finally {
    await store.close();
  }
}

describe('writes per minute', () => {
  it('gives every bin of a minute or more its exact count of writes', async () => {
    const a = await picture();
    expect(a.unit).toBe('writes');
    expect(a.binMs).toBe(5 * MINUTE);
    const want = a.values.map((_, i) => {
      let n = 0;
      for (let m = 5 * i; m < 5 * i + 5 && m < MINUTES; m++) n += w(m);
      return n;
    });
    expect(a.values).toEqual(want);
  });

  it('a writer started again in the same minute adds to what the minute holds', async () => {
    const store = await Store.open(dir, { create: false });
    const last = Math.floor((T0 + (MINUTES - 1) * MINUTE) / MINUTE);
    try {
      const archive = new Archive(store);
      const minuteOf = async () => {
        for await (const m of archive.minutes('default', 1, last, last)) return m;
        return undefined;
      };
      const before = (await minuteOf())!;
      expect(before.writes).toBe(w(MINUTES - 1));
      const [timeline] = await archive.timelines('default');
      const state = (await archive.state('default')) as DurableState;
      const writer = new StreamWriter(store, 'default', timeline!, state, {
        maxSegmentBytes: 300,
        log: silentLogger(),
      });
      let offset = state.durableOffset + 1;
      for (let i = 0; i < 5; i++) {
        const bytes = encodeCommand(['SET', `again:${i}`, 'y']);
        writer.append(offset, bytes, [Buffer.from('SET')], T0 + (MINUTES - 1) * MINUTE + 59_000);
        offset += bytes.length;
      }
      await writer.flush();
      const after = (await minuteOf())!;
      expect(after.writes).toBe(before.writes + 5);
    } finally {
      await store.close();
    }
    const a = await picture();
    expect(a.values.reduce((n, v) => n + v, 0)).toBe(
      Array.from({ length: MINUTES }, (_, m) => w(m)).reduce((n, v) => n + v, 0) + 5,
    );
  });

  it('a timeline an older rf began, with no counts, is drawn from its segment metas', async () => {
    const store = await Store.open(dir, { create: false });
    try {
      await store.batch([{ type: 'del', key: keys.countedFrom('default', 1) }]);
    } finally {
      await store.close();
    }
    const total = Array.from({ length: MINUTES }, (_, m) => w(m)).reduce((n, v) => n + v, 0) + 5;
    const a = await picture();
    expect(a.unit).toBe('writes');
    // Spread over each segment's span: each write lands in its bin or, a few, in the next.
    const sum = a.values.reduce((n, v) => n + v, 0);
    expect(Math.abs(sum - total)).toBeLessThanOrEqual(a.values.length);
  });
});
