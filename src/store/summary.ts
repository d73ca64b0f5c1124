import type { Archive } from './archive.js';
import type { BaseMeta, SourceRecord, Timeline, TimelineReason } from './types.js';

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

export interface SourceIndex {
  source: SourceRecord;
  timelines: Timeline[];
  bases: BaseMeta[];
  gaps: Gap[];
  restorable: Range[];
}

/**
 * What can be restored, derived from the timeline records: each timeline covers the instant of
 * its first base through its last durable entry, and the time between two timelines is a gap.
 */
export function restorableRanges(
  timelines: readonly Timeline[],
  bases: readonly BaseMeta[],
): { restorable: Range[]; gaps: Gap[] } {
  const restorable: Range[] = [];
  const gaps: Gap[] = [];
  const sorted = [...timelines].sort((a, b) => a.id - b.id);
  let previous: Timeline | undefined;
  for (const t of sorted) {
    const first = bases.filter((b) => b.timeline === t.id).sort((a, b) => a.offset - b.offset)[0];
    if (previous !== undefined) {
      gaps.push({
        from: previous.lastTime,
        until: t.startedAt,
        reason: t.reason,
        before: previous.id,
        after: t.id,
      });
    }
    if (first !== undefined) restorable.push({ from: first.takenAt, until: t.lastTime });
    previous = t;
  }
  return { restorable, gaps };
}

export async function indexSource(archive: Archive, source: SourceRecord): Promise<SourceIndex> {
  const [timelines, bases] = await Promise.all([
    archive.timelines(source.name),
    archive.bases(source.name),
  ]);
  return { source, timelines, bases, ...restorableRanges(timelines, bases) };
}
