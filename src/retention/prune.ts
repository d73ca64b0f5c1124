import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isRfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { planRestore } from '../restore/locate.js';
import { Archive } from '../store/archive.js';
import { keys, prefixEnd } from '../store/keys.js';
import { pruneTimeEvidence } from '../store/samples.js';
import { type BatchOp, json, type Store } from '../store/store.js';
import type { BaseMeta, RetentionRecord, SegmentMeta, Timeline } from '../store/types.js';
import { isoUtc } from '../time.js';

export interface PruneResult {
  windowStart: number;
  timelinesDropped: number;
  segmentsDeleted: number;
  basesDeleted: number;
  bytesFreed: number;
  /** Offset samples and imprecise windows older than the window (see samples.ts). */
  timeRecordsDeleted: number;
}

/** A prune to `windowStart` that has removed nothing yet. */
export function nothingPruned(windowStart: number): PruneResult {
  return {
    windowStart,
    timelinesDropped: 0,
    segmentsDeleted: 0,
    basesDeleted: 0,
    bytesFreed: 0,
    timeRecordsDeleted: 0,
  };
}

/** Segments deleted per batch: each batch also moves the timeline's prunedBefore, atomically. */
const BATCH = 500;

/**
 * Drops what no restore at or after `windowStart` needs, and never what one does. The base a
 * restore to exactly `windowStart` would use is found with the restore planner itself; every
 * base before it, and every segment that ends before it, goes. Whole timelines that end before
 * the window go too, except the one being captured.
 *
 * Crash-safe: segments go oldest first, in batches that also record how far the timeline has
 * been pruned, so at every instant the archive is a valid archive; base files are unlinked only
 * after their records are gone (a file left by a crash is removed by the next run).
 */
export async function pruneArchive(
  store: Store,
  source: string,
  windowStart: number,
  retainMs: number,
  log: Logger,
): Promise<PruneResult> {
  const archive = new Archive(store);
  const result = nothingPruned(windowStart);
  const state = await archive.state(source);
  const timelines = await archive.timelines(source);
  const bases = await archive.bases(source);

  const keepFrom = await keepBoundary(archive, source, windowStart);

  for (const t of timelines) {
    const current = state?.timeline === t.id;
    if (!current && t.lastTime < windowStart) {
      await dropSegments(store, archive, source, t, Number.POSITIVE_INFINITY, result);
      const tBases = bases.filter((b) => b.timeline === t.id);
      const minutes: BatchOp[] = [];
      const minutePrefix = keys.minutePrefix(source, t.id);
      for await (const [key] of store.entries({ gte: minutePrefix, lt: prefixEnd(minutePrefix) }))
        minutes.push({ type: 'del', key });
      await store.batch([
        ...tBases.map((b): BatchOp => ({ type: 'del', key: keys.base(source, t.id, b.offset) })),
        ...minutes,
        { type: 'del', key: keys.countedFrom(source, t.id) },
        { type: 'del', key: keys.timeline(source, t.id) },
        { type: 'del', key: keys.pruned(source, t.id) },
      ]);
      await unlinkBases(store, tBases, result);
      result.timelinesDropped++;
      log.info(
        { timeline: t.id, until: isoUtc(t.lastTime) },
        'retention: dropped a timeline that ends before the window',
      );
    } else if (keepFrom !== null && keepFrom.timeline === t.id) {
      const old = bases.filter((b) => b.timeline === t.id && b.offset < keepFrom.offset);
      if (old.length > 0) {
        await store.batch(
          old.map((b): BatchOp => ({ type: 'del', key: keys.base(source, t.id, b.offset) })),
        );
        await unlinkBases(store, old, result);
      }
      await dropSegments(store, archive, source, t, keepFrom.segmentsBefore, result);
    }
  }
  await removeOrphanFiles(store, source, await archive.bases(source), result);
  result.timeRecordsDeleted = await pruneTimeEvidence(store, source, windowStart);
  const record: RetentionRecord = { retainMs, windowStart, prunedAt: Date.now() };
  await store.batch([{ type: 'put', key: keys.retention(source), value: json.encode(record) }]);
  return result;
}

/** Where a restore to exactly `windowStart` starts: what is before it no restore in the window needs. */
export interface KeepFrom {
  timeline: number;
  /** The base that restore uses: older bases on its timeline can go. */
  offset: number;
  /** Segments ending at or before this offset can go. */
  segmentsBefore: number;
}

/** null when the window starts before the archive or in a gap: no timeline needs trimming inside. */
export async function keepBoundary(
  archive: Archive,
  source: string,
  windowStart: number,
): Promise<KeepFrom | null> {
  try {
    // Inside an imprecise window the cut by stored times keeps every write a restore can need.
    const plan = await planRestore(archive, source, windowStart, true);
    // Keep the base that restore uses, and the segment that holds its cut even when the base
    // sits at its very end: a restore to the window's start finds its cut by time in it.
    const cutSegment = await archive.segmentAtOffset(source, plan.timeline.id, plan.cut.offset);
    const segmentsBefore = Math.min(
      plan.base.offset,
      cutSegment === undefined ? plan.base.offset : cutSegment.start - 1,
    );
    return { timeline: plan.timeline.id, offset: plan.base.offset, segmentsBefore };
  } catch (err) {
    if (
      !isRfError(err) ||
      !['RF_TIME_OUT_OF_RANGE', 'RF_TIME_IN_GAP', 'RF_UNKNOWN_SOURCE'].includes(err.code)
    )
      throw err;
    return null;
  }
}

/** Deletes the timeline's segments that end at or before `upTo` (all of them for Infinity). */
async function dropSegments(
  store: Store,
  archive: Archive,
  source: string,
  t: Timeline,
  upTo: number,
  result: PruneResult,
): Promise<void> {
  for (;;) {
    const batch: SegmentMeta[] = [];
    for await (const seg of archive.segments(source, t.id)) {
      if (seg.end > upTo || batch.length >= BATCH) break;
      batch.push(seg);
    }
    const last = batch[batch.length - 1];
    if (last === undefined) return;
    const ops: BatchOp[] = [];
    for (const seg of batch) {
      ops.push({ type: 'del', key: keys.segment(source, t.id, seg.start) });
      ops.push({ type: 'del', key: keys.data(source, t.id, seg.start) });
      ops.push({ type: 'del', key: keys.time(source, t.id, seg.lastTime, seg.start) });
      ops.push({ type: 'del', key: keys.keyIndex(source, t.id, seg.start) });
      result.bytesFreed += seg.end - seg.start + 1;
    }
    // Its own key, not a field of the timeline record, which the writer rewrites on every commit.
    ops.push({ type: 'put', key: keys.pruned(source, t.id), value: json.encode(last.end) });
    await store.batch(ops);
    result.segmentsDeleted += batch.length;
  }
}

async function unlinkBases(
  store: Store,
  bases: readonly BaseMeta[],
  result: PruneResult,
): Promise<void> {
  for (const b of bases) {
    await fs.rm(path.join(store.dir, b.file), { force: true });
    result.basesDeleted++;
    result.bytesFreed += b.bytes;
  }
}

/** Base files no record points at: left by a crash between a record's deletion and the unlink. */
async function removeOrphanFiles(
  store: Store,
  source: string,
  bases: readonly BaseMeta[],
  result: PruneResult,
): Promise<void> {
  const dir = path.join(store.dir, 'bases', source);
  const referenced = new Set(bases.map((b) => path.basename(b.file)));
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return;
  }
  // A base being installed is renamed into place just before its record is committed: leave
  // recent files alone.
  const settled = Date.now() - 10 * 60_000;
  for (const name of names) {
    if (!name.endsWith('.rdb') || referenced.has(name)) continue;
    const st = await fs.stat(path.join(dir, name)).catch(() => null);
    if (st === null || st.mtimeMs > settled) continue;
    await fs.rm(path.join(dir, name), { force: true });
    result.basesDeleted++;
  }
}
