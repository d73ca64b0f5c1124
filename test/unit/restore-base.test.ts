import { describe, expect, it } from 'vitest';
import { chooseBase } from '../../src/restore/plan.js';
import type { BaseMeta } from '../../src/store/types.js';

function base(offset: number, takenAt: number): BaseMeta {
  return {
    timeline: 2,
    offset,
    replid: 'r'.repeat(40),
    file: `bases/default/2-${offset}.rdb`,
    bytes: 100,
    sha256: '0'.repeat(64),
    rdbVersion: 10,
    takenAt,
    completedAt: takenAt + 5,
    via: 'rdb-only',
    transfer: 'diskless',
  };
}

describe('the base a restore to T starts from', () => {
  // The stream stamped the writes up to offset 200 by t=1490; the fresh base at offset 200
  // reported its +FULLRESYNC at t=1510. A restore to 1500 cuts past offset 200.
  const bases = [base(100, 1000), base(200, 1510)];

  it('is one taken by T, even when a later one sits below the cut', () => {
    expect(chooseBase(bases, 2, 250, 1500).offset).toBe(100);
    expect(chooseBase(bases, 2, 250, 1510).offset).toBe(200);
  });

  it('is the latest below the cut when none was taken by T (retention kept only that one)', () => {
    expect(chooseBase([base(200, 1510)], 2, 250, 1500).offset).toBe(200);
  });
});
