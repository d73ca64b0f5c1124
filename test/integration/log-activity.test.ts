import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activity, chooseBins, spread } from '../../src/log/activity.js';
import { Archive } from '../../src/store/archive.js';
import { Store } from '../../src/store/store.js';
import { indexSource } from '../../src/store/summary.js';
import { ArchiveBuilder } from '../helpers/stream-archive.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * The activity picture `rf info` draws: writes per bin from the segment metas, or stream bytes
 * per bin from time-index seeks when an archive has too many segments to read every meta.
 */

const T0 = Date.parse('2026-11-24T12:00:00.000Z');
const MINUTE = 60_000;
let work: string;
let dir: string;

beforeAll(async () => {
  work = await makeTempDir('rf-activity-');
  dir = path.join(work, 'store');
  const b = await ArchiveBuilder.create(dir, { startedAt: T0, maxSegmentBytes: 500 });
  try {
    await b.add(['SELECT', '0'], T0 + 1);
    // Minute 0: 600 writes; minute 1: nothing but a PING; minute 2: 60 writes; minute 3: 1200.
    for (let i = 0; i < 600; i++) await b.add(['SET', `a:${i}`, 'x'], T0 + 10 + i * 90);
    await b.add(['ping'], T0 + 1.5 * MINUTE);
    for (let i = 0; i < 60; i++) await b.add(['SET', `b:${i}`, 'x'], T0 + 2 * MINUTE + i * 900);
    for (let i = 0; i < 1200; i++) await b.add(['SET', `c:${i}`, 'x'], T0 + 3 * MINUTE + i * 45);
  } finally {
    await b.close();
  }
});

afterAll(async () => {
  if (work) await removeTempDir(work);
});

async function picture(metaLimit: number) {
  const store = await Store.open(dir, { create: false });
  try {
    const archive = new Archive(store);
    const ix = await indexSource(archive, (await archive.source('default'))!);
    return {
      a: (await activity(archive, 'default', ix.timelines, ix.restorable, {
        maxBins: 64,
        metaLimit,
      }))!,
      ix,
    };
  } finally {
    await store.close();
  }
}

describe('activity', () => {
  it('counts writes per minute from the segment metas', async () => {
    const { a } = await picture(100_000);
    expect(a.unit).toBe('writes');
    expect(a.binMs).toBe(5_000);
    const perMinute = [0, 1, 2, 3].map((m) =>
      a.values.slice(m * 12, m * 12 + 12).reduce((n, v) => n + v, 0),
    );
    // Writes spread evenly over a segment's span can land a few in the next bin, never lost.
    expect(perMinute[0]).toBeGreaterThan(590);
    expect(perMinute[1]).toBeLessThan(15);
    expect(perMinute[2]).toBeGreaterThan(50);
    expect(perMinute[3]).toBeGreaterThan(1150);
    expect(a.values.reduce((n, v) => n + v, 0)).toBeGreaterThanOrEqual(1860 - 4);
    expect(a.values.reduce((n, v) => n + v, 0)).toBeLessThanOrEqual(1860 + 4);
  });

  it('past the meta limit, stream bytes per bin from one seek per boundary, adding up to the timeline', async () => {
    const { a, ix } = await picture(0);
    expect(a.unit).toBe('bytes');
    const t = ix.timelines[0]!;
    expect(a.values.reduce((n, v) => n + v, 0)).toBe(t.durableOffset - t.baseOffset);
    // The quiet minute holds at most a segment's worth of bytes; the busy last minute most.
    const perMinute = [0, 1, 2, 3].map((m) =>
      a.values.slice(m * 12, m * 12 + 12).reduce((n, v) => n + v, 0),
    );
    expect(perMinute[3]).toBeGreaterThan(perMinute[0]!);
    expect(perMinute[1]).toBeLessThan(1000);
  });

  it('bins are the smallest readable width that fits, aligned to it', () => {
    expect(chooseBins(T0 + 7, T0 + 59_000, 64)).toEqual({ binMs: 1000, start: T0, bins: 60 });
    expect(chooseBins(T0, T0 + 2 * 3_600_000, 64)).toEqual({ binMs: 300_000, start: T0, bins: 25 });
    const values = [0, 0, 0];
    spread(values, 0, 10, 5, 24, 20);
    expect(values).toEqual([5, 10, 5]);
  });
});
