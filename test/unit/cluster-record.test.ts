import { describe, expect, it } from 'vitest';
import { clusterJson, clusterText } from '../../src/cli/info-cluster.js';
import {
  type ClusterRecord,
  clusterRestorable,
  intersectRanges,
  ownersAt,
  slotsFrom,
} from '../../src/store/cluster.js';

describe('intersectRanges', () => {
  it('keeps only the times every shard can restore', () => {
    const a = [
      { from: 0, until: 100 },
      { from: 200, until: 300 },
    ];
    const b = [{ from: 50, until: 250 }];
    const c = [
      { from: 60, until: 70 },
      { from: 240, until: 400 },
    ];
    expect(intersectRanges([a, b, c])).toEqual([
      { from: 60, until: 70 },
      { from: 240, until: 250 },
    ]);
  });

  it('is empty when one shard has nothing, or there is no shard', () => {
    expect(intersectRanges([[{ from: 0, until: 10 }], []])).toEqual([]);
    expect(intersectRanges([])).toEqual([]);
  });

  it('keeps a single instant where two ranges touch', () => {
    expect(intersectRanges([[{ from: 0, until: 10 }], [{ from: 10, until: 20 }]])).toEqual([
      { from: 10, until: 10 },
    ]);
  });
});

describe('ownersAt', () => {
  const record: ClusterRecord = {
    name: 'c',
    createdAt: 0,
    url: 'redis://127.0.0.1:7000',
    shards: [],
    slots: [
      { at: 100, owners: { a: [[0, 16383]] } },
      { at: 200, owners: { a: [[0, 8191]], b: [[8192, 16383]] } },
    ],
  };
  it('gives the owners in force at T: the last change at or before it', () => {
    expect(ownersAt(record, 99)).toBeUndefined();
    expect(ownersAt(record, 100)?.owners).toEqual({ a: [[0, 16383]] });
    expect(ownersAt(record, 199)?.owners).toEqual({ a: [[0, 16383]] });
    expect(ownersAt(record, 200)?.owners.b).toEqual([[8192, 16383]]);
  });
});

describe('clusterRestorable', () => {
  const shard = (id: string) => ({ id, source: `c.${id}`, nodeIds: [id], master: null });
  const record: ClusterRecord = {
    name: 'c',
    createdAt: 0,
    url: 'redis://127.0.0.1:7000',
    shards: [shard('a'), shard('b'), shard('n')],
    slots: [
      { at: 100, owners: { a: [[0, 8191]], b: [[8192, 16383]] } },
      // n added and given slots at 500, and left with none at 800.
      { at: 500, owners: { a: [[0, 8191]], b: [[8192, 12000]], n: [[12001, 16383]] } },
      { at: 800, owners: { a: [[0, 8191]], b: [[8192, 16383]] } },
    ],
  };

  it('is narrowed by a shard only while it owns slots', () => {
    const ranges = new Map([
      ['a', [{ from: 110, until: 1000 }]],
      ['b', [{ from: 120, until: 990 }]],
      // Its archive starts after the first topology, and ends when it gave its slots away.
      ['n', [{ from: 300, until: 810 }]],
    ]);
    expect(clusterRestorable(record, ranges)).toEqual([{ from: 120, until: 990 }]);
  });

  it('has a hole where an owning shard could not restore', () => {
    const ranges = new Map([
      ['a', [{ from: 110, until: 1000 }]],
      ['b', [{ from: 120, until: 990 }]],
      ['n', [{ from: 600, until: 810 }]],
    ]);
    expect(clusterRestorable(record, ranges)).toEqual([
      { from: 120, until: 499 },
      { from: 600, until: 990 },
    ]);
  });

  it('read back from a bucket, ends where the record knew the slot owners', () => {
    const ranges = new Map([
      ['a', [{ from: 110, until: 1000 }]],
      ['b', [{ from: 120, until: 990 }]],
      ['n', [{ from: 300, until: 810 }]],
    ]);
    expect(clusterRestorable({ ...record, knownUntil: 700 }, ranges)).toEqual([
      { from: 120, until: 700 },
    ]);
    expect(clusterRestorable({ ...record, knownUntil: 5000 }, ranges)).toEqual([
      { from: 120, until: 990 },
    ]);
  });

  it('is nothing before rf first read the topology, or when an owner has nothing', () => {
    expect(clusterRestorable({ ...record, slots: [] }, new Map())).toEqual([]);
    expect(clusterRestorable(record, new Map([['a', [{ from: 0, until: 1000 }]]]))).toEqual([]);
  });
});

describe('slotsFrom', () => {
  const a: Record<string, Array<[number, number]>> = { s1: [[0, 16383]] };
  const b: Record<string, Array<[number, number]>> = { s1: [[0, 99]], s2: [[100, 16383]] };
  const c: Record<string, Array<[number, number]>> = { s2: [[0, 16383]] };
  const slots = [
    { at: 100, owners: a },
    { at: 200, owners: b },
    { at: 300, owners: c },
  ];

  it('keeps the change in force at the window start, from the start on, and every later one', () => {
    expect(slotsFrom(slots, 250)).toEqual([
      { at: 250, owners: b },
      { at: 300, owners: c },
    ]);
    // Owners inside the window are the ones the whole record gave.
    const record = { name: 'c', createdAt: 0, url: '', shards: [], slots };
    const trimmed = { ...record, slots: slotsFrom(slots, 250) };
    for (const t of [250, 299, 300, 1000])
      expect(ownersAt(trimmed, t)?.owners).toEqual(ownersAt(record, t)?.owners);
    // Before it, none: a restore there is refused as one before the first topology.
    expect(ownersAt(trimmed, 249)).toBeUndefined();
  });

  it('changes nothing for a window that starts before the first change', () => {
    expect(slotsFrom(slots, 50)).toEqual(slots);
  });

  it('a window start on a change keeps it as it is', () => {
    expect(slotsFrom(slots, 200)).toEqual(slots.slice(1));
  });
});

describe('rf info of a pruned cluster', () => {
  it('shows the retained window in the text and --json forms', () => {
    const record: ClusterRecord = {
      name: 'c',
      createdAt: 0,
      url: 'redis://127.0.0.1:7000',
      shards: [],
      slots: [{ at: 1_800_000_000_000, owners: {} }],
      retention: {
        retainMs: 7 * 86_400_000,
        windowStart: 1_800_000_000_000,
        prunedAt: 1_800_000_001_000,
      },
    };
    expect(clusterJson(record, []).retention).toEqual({
      retainMs: 7 * 86_400_000,
      windowStart: '2027-01-15T08:00:00.000Z',
      prunedAt: '2027-01-15T08:00:01.000Z',
    });
    expect(clusterText(record, [])).toContain(
      '  retention 7.0 days: cluster restores from 2027-01-15T08:00:00.000Z on',
    );
    expect(clusterJson({ ...record, retention: undefined }, []).retention).toBeNull();
  });
});
