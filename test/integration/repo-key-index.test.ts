import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emptyManifest, planUpload, readRecords } from '../../src/repo/snapshot.js';
import { keys } from '../../src/store/keys.js';
import { Store } from '../../src/store/store.js';
import { ArchiveBuilder } from '../helpers/stream-archive.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * A segment's key index goes up to the bucket in the segment's own pack, not among the
 * manifest's records: the manifest stays small, and a store fetched back has the index.
 */

const T0 = Date.parse('2026-11-24T12:00:00.000Z');
let work: string;
let dir: string;

beforeAll(async () => {
  work = await makeTempDir('rf-repo-kix-');
  dir = path.join(work, 'store');
  const b = await ArchiveBuilder.create(dir, { startedAt: T0, maxSegmentBytes: 300 });
  try {
    await b.add(['SELECT', '0'], T0 + 1);
    for (let i = 0; i < 100; i++) await b.add(['SET', `user:${i}`, 'x'], T0 + 10 + i);
  } finally {
    await b.close();
  }
});

afterAll(async () => {
  if (work) await removeTempDir(work);
});

describe('the key index in the bucket', () => {
  it('travels in the seg packs, one per segment, and never as a manifest record', async () => {
    const store = await Store.open(dir, { create: false });
    try {
      const records = await readRecords(store, 'default');
      expect(records.filter(([k]) => k.includes('/kix/'))).toEqual([]);
      const plan = await planUpload(store, 'default', records, emptyManifest('default'), {
        packBytes: 1 << 30,
        maxPacks: 10,
      });
      const packed = plan.packs.flatMap((p) => p.keys);
      const segments = packed.filter((k) => k.startsWith('s/default/seg/'));
      expect(segments.length).toBeGreaterThan(5);
      const prefix = keys.keyIndexPrefix('default', 1);
      expect(packed.filter((k) => k.startsWith(prefix))).toEqual(
        segments.map((k) => `${prefix}${k.slice(k.lastIndexOf('/') + 1)}`),
      );
    } finally {
      await store.close();
    }
  });
});
