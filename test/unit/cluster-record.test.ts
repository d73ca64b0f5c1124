import { describe, expect, it } from 'vitest';
import { type ClusterRecord, intersectRanges, ownersAt } from '../../src/store/cluster.js';

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
