import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/store.js';
import { tmpFile } from '../../src/store/timelines.js';

describe('tmpFile', () => {
  it('names two files made in the same millisecond differently (shards sync at once)', () => {
    const store = { dir: '/var/lib/rf' } as Store;
    const names = new Set(Array.from({ length: 50 }, () => tmpFile(store, 'base')));
    expect(names.size).toBe(50);
  });
});
