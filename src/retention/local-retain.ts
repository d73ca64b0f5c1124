import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logger.js';
import { Archive } from '../store/archive.js';
import { keys } from '../store/keys.js';
import { type BucketHolds, type OffloadRecord, offloadKey, readOffload } from '../store/offload.js';
import { type BatchOp, json, type Store } from '../store/store.js';
import { offloadAofChunks } from './local-retain-aof.js';
import { keepBoundary } from './prune.js';

export interface OffloadResult {
  segments: number;
  bases: number;
  /** AOF chunks (local-retain-aof.ts). */
  chunks: number;
  bytesFreed: number;
}

const BATCH = 500;

/**
 * `--local-retain`: removes from the store the segment data, base files and AOF chunk data that
 * no restore at or after `keepFrom` needs and that the bucket already holds. Their records stay: the manifest
 * is made from them and the bucket's own retention reads them (snapshot.ts prunable), so
 * removing them would prune the bucket too. Each batch deletes data and records how far in one
 * write (crash-safe: a reader never finds data missing that the record does not explain).
 */
export async function offloadHeld(
  store: Store,
  source: string,
  keepFrom: number,
  holds: BucketHolds,
  log: Logger,
): Promise<OffloadResult> {
  const archive = new Archive(store);
  const result: OffloadResult = { segments: 0, bases: 0, chunks: 0, bytesFreed: 0 };
  const state = await archive.state(source);
  const boundary = await keepBoundary(archive, source, keepFrom);
  const rec: OffloadRecord = (await readOffload(store, source)) ?? {
    repo: holds.repo,
    segmentsUpTo: {},
    files: [],
    at: 0,
  };
  const save = (): BatchOp => {
    rec.at = Date.now();
    return { type: 'put', key: offloadKey(source), value: json.encode(rec) };
  };
  const goneFiles: string[] = [];
  for (const t of await archive.timelines(source)) {
    const whole = state?.timeline !== t.id && t.lastTime < keepFrom;
    const within = boundary?.timeline === t.id;
    if (!whole && !within) continue;
    const upTo = Math.min(
      whole ? Number.POSITIVE_INFINITY : boundary!.segmentsBefore,
      holds.segmentsEnd.get(t.id) ?? -1,
    );
    for (;;) {
      const ops: BatchOp[] = [];
      let last = -1;
      const done = rec.segmentsUpTo[String(t.id)] ?? -1;
      for await (const seg of archive.segments(source, t.id, done + 1)) {
        if (seg.end > upTo || ops.length >= BATCH) break;
        if (seg.end <= done) continue;
        ops.push({ type: 'del', key: keys.data(source, t.id, seg.start) });
        result.bytesFreed += seg.end - seg.start + 1;
        last = seg.end;
      }
      if (ops.length === 0) break;
      rec.segmentsUpTo[String(t.id)] = last;
      await store.batch([...ops, save()]);
      result.segments += ops.length;
    }
    for (const b of await archive.bases(source, t.id)) {
      if (!holds.files.has(b.file) || rec.files.includes(b.file)) continue;
      if (!whole && b.offset >= boundary!.offset) continue;
      rec.files.push(b.file);
      goneFiles.push(b.file);
      result.bytesFreed += b.bytes;
    }
  }
  const aof = await offloadAofChunks(store, source, keepFrom, holds, rec, save);
  result.chunks = aof.chunks;
  result.bytesFreed += aof.bytesFreed;
  if (goneFiles.length > 0) {
    // The record first: a crash before the unlink leaves a file nothing reads, not a hole.
    await store.batch([save()]);
    for (const f of goneFiles) await fs.rm(path.join(store.dir, f), { force: true });
    result.bases = goneFiles.length;
  }
  if (result.segments + result.bases + result.chunks > 0)
    log.info(result, 'local retention: removed what the bucket holds from the store');
  return result;
}
