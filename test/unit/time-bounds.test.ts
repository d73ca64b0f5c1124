import { describe, expect, it } from 'vitest';
import { OffsetClock, type OffsetSample } from '../../src/bounds/clock.js';
import {
  LIVE_TOLERANCE_MS,
  WindowLookup,
  WindowTracker,
  windowAt,
} from '../../src/bounds/windows.js';

const R = 'a'.repeat(40);
const sample = (offset: number, sentAt: number, answeredAt = sentAt + 1, replid = R) =>
  ({ replid, offset, sentAt, answeredAt }) satisfies OffsetSample;

describe('OffsetClock', () => {
  it('bounds an offset by the last sample below it and the first reaching it', () => {
    const c = new OffsetClock();
    c.add(sample(100, 1_000));
    c.add(sample(200, 1_100));
    c.add(sample(300, 1_200));
    // 150 ran after INFO was sent at 1000 (master then at most at 100), and by the answer at 1101.
    expect(c.boundsOf(150)).toEqual({ lower: 1_000, upper: 1_101 });
    expect(c.boundsOf(200)).toEqual({ lower: 1_000, upper: 1_101 });
    expect(c.boundsOf(201)).toEqual({ lower: 1_100, upper: 1_201 });
    expect(c.boundsOf(50)).toEqual({ lower: Number.NEGATIVE_INFINITY, upper: 1_001 });
    expect(c.boundsOf(301)).toEqual({ lower: 1_200, upper: Number.POSITIVE_INFINITY });
    // The forward-only cursor gives the same answers, and starts over for an earlier offset.
    for (const o of [50, 150, 200, 201, 301, 150]) {
      expect({ lower: c.lowerAt(o), upper: c.upperAt(o) }).toEqual(c.boundsOf(o));
    }
  });

  it('keeps one record for a run of the same offset: the earliest answer, the latest send', () => {
    const c = new OffsetClock();
    c.add(sample(100, 1_000, 1_002));
    c.add(sample(100, 1_100, 1_103));
    c.add(sample(100, 1_200, 1_204));
    expect(c.all()).toEqual([sample(100, 1_200, 1_002)]);
    expect(c.boundsOf(100).upper).toBe(1_002);
    expect(c.boundsOf(101).lower).toBe(1_200);
  });

  it('ignores a sample going back on the same replid, and starts over on a new history', () => {
    const c = new OffsetClock();
    c.add(sample(500, 1_000));
    expect(c.add(sample(400, 1_100))).toBe(false);
    expect(c.all()).toHaveLength(1);
    const other = 'b'.repeat(40);
    expect(c.add(sample(10, 1_200, 1_201, other))).toBe(true);
    expect(c.all()).toEqual([sample(10, 1_200, 1_201, other)]);
  });

  it('follows a timeline: samples of another replid are dropped', () => {
    const c = new OffsetClock();
    const before = 'c'.repeat(40);
    c.add(sample(100, 1_000, 1_001, before));
    c.add(sample(120, 1_100, 1_101));
    c.follow([R]);
    expect(c.all()).toEqual([sample(120, 1_100, 1_101)]);
  });

  it('answers in constant memory over a long capture', () => {
    const c = new OffsetClock();
    for (let i = 1; i <= 10_000; i++) {
      c.add(sample(i * 10, i * 100));
      expect(c.upperAt(i * 10 - 5)).toBe(i * 100 + 1);
    }
    expect(c.all().length).toBeLessThanOrEqual(2_100);
  });
});

describe('OffsetClock without a stream to follow', () => {
  it('stays flat, and a dropped sample still bounds what lies past it', () => {
    const c = new OffsetClock();
    for (let i = 1; i <= 250_000; i++) c.add(sample(i * 10, i * 100));
    expect(c.all().length).toBeLessThanOrEqual(100_000);
    const oldest = c.all()[0]!;
    // Just past the oldest sample held: bounded by it. Below it: by the newest one dropped.
    expect(c.boundsOf(oldest.offset + 1).lower).toBe(oldest.sentAt);
    expect(c.lowerAt(oldest.offset)).toBe(oldest.sentAt - 100);
    expect(c.upperAt(oldest.offset)).toBe(oldest.answeredAt);
    expect(c.boundsOf(5).lower).toBe(Number.NEGATIVE_INFINITY);
  });
});

describe('WindowTracker', () => {
  it('opens a window at the first late entry and closes it at the next live one', () => {
    const t = new WindowTracker(3);
    t.note(101, 10, 5_000, 4_950, true); // live: bracket 50 ms
    expect(t.take()).toEqual([]);
    t.note(111, 10, 9_000, 1_000 + 4_000, true); // arrived 4 s after the last sample below it
    t.note(121, 14, 9_001, 5_000, false);
    t.note(135, 10, 9_002, 8_990, true); // live again
    t.note(145, 10, 12_000, 9_000, true); // a second window
    const windows = t.take();
    expect(windows).toEqual([
      {
        timeline: 3,
        firstOffset: 111,
        lastOffset: 134,
        from: 5_000,
        until: 9_001,
        entries: 2,
        writes: 1,
      },
      {
        timeline: 3,
        firstOffset: 145,
        lastOffset: 154,
        from: 9_000,
        until: 12_000,
        entries: 1,
        writes: 1,
      },
    ]);
    expect(t.take()).toEqual([]);
    const lookup = new WindowLookup([...windows].reverse());
    expect(lookup.at(3, 110)).toBeUndefined();
    expect(lookup.at(3, 111)).toBe(windows[0]);
    expect(lookup.at(3, 134)).toBe(windows[0]);
    expect(lookup.at(3, 135)).toBeUndefined();
    expect(lookup.at(3, 150)).toBe(windows[1]);
    expect(lookup.at(3, 155)).toBeUndefined();
    expect(lookup.at(4, 121)).toBeUndefined();
  });

  it('a bracket of exactly the tolerance is live; no sample below is no evidence', () => {
    const t = new WindowTracker(1);
    t.note(1, 5, 2_000 + LIVE_TOLERANCE_MS, 2_000, true);
    t.note(6, 5, 9_999_999, Number.NEGATIVE_INFINITY, true);
    expect(t.take()).toEqual([]);
  });

  it('continues the stored window when the first entry after a resume is late too', () => {
    const last = {
      timeline: 2,
      firstOffset: 50,
      lastOffset: 99,
      from: 1_000,
      until: 2_000,
      entries: 5,
      writes: 5,
    };
    const t = new WindowTracker(2, last);
    t.note(100, 10, 6_000, 1_500, true);
    expect(t.take()).toEqual([{ ...last, lastOffset: 109, until: 6_000, entries: 6, writes: 6 }]);
    // The record handed in is not changed in place.
    expect(last.lastOffset).toBe(99);
  });

  it('windowAt: only a T strictly inside a window is ambiguous', () => {
    const w = [
      { timeline: 1, firstOffset: 1, lastOffset: 9, from: 100, until: 200, entries: 1, writes: 1 },
    ];
    expect(windowAt(w, 1, 100)).toBeUndefined();
    expect(windowAt(w, 1, 101)).toBe(w[0]);
    expect(windowAt(w, 1, 199)).toBe(w[0]);
    expect(windowAt(w, 1, 200)).toBeUndefined();
    expect(windowAt(w, 2, 150)).toBeUndefined();
    // The master's PINGs alone, received late: no data changed, so no T is ambiguous.
    expect(windowAt([{ ...w[0]!, writes: 0 }], 1, 150)).toBeUndefined();
  });
});
