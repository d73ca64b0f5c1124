/**
 * Archives built in this process, straight through rf's own store code (dist/store): a fresh
 * store with one timeline whose base is an empty snapshot, and a StreamWriter to append to it.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { silentLogger } from '../../dist/logger.js';
import { Archive } from '../../dist/store/archive.js';
import { Store } from '../../dist/store/store.js';
import { beginTimeline, tmpFile } from '../../dist/store/timelines.js';
import { StreamWriter } from '../../dist/store/writer.js';
import { startRedis } from './env.mjs';

let cachedRdb = null;

/** An empty RDB exactly as this redis-server writes it (valid header and CRC64). */
export async function emptyRdb() {
  if (cachedRdb === null) {
    const redis = await startRedis({ label: 'empty-rdb' });
    try {
      await redis.client.call('SAVE');
      cachedRdb = await readFile(path.join(redis.dir, 'dump.rdb'));
    } finally {
      await redis.stop();
    }
  }
  return cachedRdb;
}

export const SOURCE = 'default';
export const SEGMENT_BYTES = 1024 * 1024;

/** A new store in `dir` holding one timeline that starts at offset 0 with an empty base taken at `takenAt`. */
export async function newArchive(dir, takenAt) {
  const rdb = await emptyRdb();
  const store = await Store.open(dir, { create: true });
  const file = tmpFile(store, 'base');
  await writeFile(file, rdb);
  const { timeline, state } = await beginTimeline(
    store,
    { name: SOURCE, url: 'redis://127.0.0.1:0', createdAt: takenAt },
    undefined,
    {
      tmpFile: file,
      replid: 'b'.repeat(40),
      offset: 0,
      takenAt,
      bytes: rdb.length,
      sha256: createHash('sha256').update(rdb).digest('hex'),
      rdbVersion: Number(rdb.toString('latin1', 5, 9)),
      transfer: 'disk',
    },
  );
  const writer = new StreamWriter(store, SOURCE, timeline, state, {
    maxSegmentBytes: SEGMENT_BYTES,
    log: silentLogger(),
  });
  return { store, writer, timeline };
}

/** Sizes of the segments a store holds (rf listen must have stopped: this opens the LevelDB). */
export async function segmentStats(dir) {
  const kv = await Store.open(dir, { create: false });
  try {
    const archive = new Archive(kv);
    const sizes = [];
    for (const t of await archive.timelines(SOURCE)) {
      for await (const meta of archive.segments(SOURCE, t.id))
        sizes.push(meta.end - meta.start + 1);
    }
    sizes.sort((a, b) => a - b);
    return {
      segments: sizes.length,
      medianBytes: sizes[Math.floor(sizes.length / 2)] ?? 0,
      maxBytes: sizes.at(-1) ?? 0,
    };
  } finally {
    await kv.close();
  }
}
