import type { ImpreciseWindow } from '../bounds/windows.js';
import { isoUtc } from '../time.js';
import type { Archive } from './archive.js';
import { AofArchive, type AofGap } from './chunks.js';
import type { KvReader } from './store.js';
import type { BaseMeta, SeenRecord, SourceRecord, Timeline, TimelineReason } from './types.js';

/** A range of capture times, in ms since the epoch, both ends inclusive. */
export interface Range {
  from: number;
  until: number;
}

export interface Gap extends Range {
  reason: TimelineReason;
  /** The timelines on either side. */
  before: number;
  after: number;
}

/** A restorable range and the timeline that serves it. */
export interface Restorable extends Range {
  timeline: number;
}

export interface SourceIndex {
  source: SourceRecord;
  timelines: Timeline[];
  bases: BaseMeta[];
  gaps: Gap[];
  restorable: Restorable[];
  /** Runs of entries received late: their times are known only within each window's bounds. */
  imprecise: ImpreciseWindow[];
}

/**
 * What can be restored, derived from the timeline records: each timeline covers the instant of
 * its first base through its last durable entry, and the time between two timelines is a gap.
 * `seen` extends the timeline being captured: rf listen records when it last saw the master's
 * own offset equal to what was durable, so the archive is known complete up to that instant
 * even when the master was idle.
 */
export function restorableRanges(
  timelines: readonly Timeline[],
  bases: readonly BaseMeta[],
  seen?: SeenRecord,
): { restorable: Restorable[]; gaps: Gap[] } {
  const restorable: Restorable[] = [];
  const gaps: Gap[] = [];
  const sorted = [...timelines].sort((a, b) => a.id - b.id);
  const untilOf = (t: Timeline) =>
    seen !== undefined && seen.timeline === t.id ? Math.max(t.lastTime, seen.time) : t.lastTime;
  let previous: Timeline | undefined;
  for (const t of sorted) {
    const first = bases.filter((b) => b.timeline === t.id).sort((a, b) => a.offset - b.offset)[0];
    if (previous !== undefined) {
      gaps.push({
        from: untilOf(previous),
        until: t.startedAt,
        reason: t.reason,
        before: previous.id,
        after: t.id,
      });
    }
    if (first !== undefined)
      restorable.push({ timeline: t.id, from: first.takenAt, until: untilOf(t) });
    previous = t;
  }
  return { restorable, gaps };
}

export async function indexSource(archive: Archive, source: SourceRecord): Promise<SourceIndex> {
  const [timelines, bases, seen, imprecise] = await Promise.all([
    archive.timelines(source.name),
    archive.bases(source.name),
    archive.seen(source.name),
    archive.imprecise(source.name),
  ]);
  return {
    source,
    timelines,
    bases,
    // PINGs received late change no data: no restore is ambiguous for them (see windowAt).
    imprecise: imprecise.filter((w) => w.writes > 0),
    ...restorableRanges(timelines, bases, seen),
  };
}

/** What `rf info` shows for a source's AOF capture (its `aof` field). */
export interface AofSummary {
  chunks: number;
  bytes: number;
  bases: number;
  files: number;
  lastChunkAt: string | null;
  lastBaseAt: string | null;
  /** The last sampled AOF size on the Redis host, and when it was taken. */
  sizeBytes: number | null;
  sizeAt: string | null;
  gaps: { file: string; start: number; end: number | null; at: string; reason: AofGap['reason'] }[];
}

const iso = (ms: number | null) => (ms === null ? null : isoUtc(ms));

export async function aofSummary(kv: KvReader, src: string): Promise<AofSummary> {
  const archive = new AofArchive(kv);
  const [stats, size, files, gaps] = await Promise.all([
    archive.stats(src),
    archive.size(src),
    archive.files(src),
    archive.gaps(src),
  ]);
  return {
    chunks: stats.chunks,
    bytes: stats.bytes,
    bases: stats.bases,
    files: files.length,
    lastChunkAt: iso(stats.lastChunkAt),
    lastBaseAt: iso(stats.lastBaseAt),
    sizeBytes: size?.bytes ?? null,
    sizeAt: iso(size?.at ?? null),
    gaps: gaps.map((g) => ({
      file: g.file,
      start: g.start,
      end: g.end,
      at: iso(g.at)!,
      reason: g.reason,
    })),
  };
}
