import { type ImpreciseWindow, windowAt } from '../bounds/windows.js';
import { RfError } from '../errors.js';
import { CommandState, commandName, frameKind, Kind, parseArgs } from '../store/commands.js';
import type { Gap, Range, SourceIndex } from '../store/summary.js';
import type { BaseMeta, Entry, SegmentMeta, Timeline } from '../store/types.js';
import { isoUtc } from '../time.js';

/**
 * Restore planning: pure functions of the archive's index and the target time. They pick the
 * timeline that holds T, the cut (the last entry captured at or before T, moved back to before
 * an open MULTI), and the latest base at or before the cut. Nothing here does I/O.
 */

export interface AppliedEntry {
  offset: number;
  time: number;
  command: string;
}

export interface DroppedTransaction {
  /** Offset of the MULTI that opened it. */
  multiAt: number;
  /** MULTI's capture time (null when it sits in an earlier segment). */
  time: number | null;
  /** Commands queued in it up to the target time (MULTI itself excluded). */
  commands: number;
  /** Why: T falls inside it, or the archive ends inside it. */
  reason: 'target-inside-transaction' | 'open-at-archive-end';
}

export interface Cut {
  /** Last offset applied: every entry ending at or before it is replayed. */
  offset: number;
  /** The last write applied, when the segment holding T has one before the cut. */
  lastApplied: AppliedEntry | null;
  dropped: DroppedTransaction | null;
}

export interface RestorePlan {
  source: string;
  target: number;
  timeline: Timeline;
  base: BaseMeta;
  /** First stream offset replayed on top of the base. */
  fromOffset: number;
  cut: Cut;
  /** The imprecise window T falls in, when the restore was told to cut by its bounds anyway. */
  imprecise: ImpreciseWindow | null;
}

/** A window as the operator sees it (rf info --json `imprecise`, the RF_TIME_IMPRECISE details). */
export function windowJson(w: ImpreciseWindow, precision: 'bounds' | 'second' = 'bounds') {
  return {
    timeline: w.timeline,
    from: isoUtc(w.from),
    until: isoUtc(w.until),
    offsets: [w.firstOffset, w.lastOffset] as [number, number],
    writes: w.writes,
    precision,
  };
}

/**
 * T strictly inside an imprecise window: the stream holds those writes, but received them late,
 * so it cannot say which of them had run by T. Refused unless the operator accepts a cut by the
 * best bounds known (the stored times, each the latest the write can have run at).
 */
export function checkImprecise(
  index: SourceIndex,
  timeline: Timeline,
  target: number,
  accept: boolean,
): ImpreciseWindow | null {
  const w = windowAt(index.imprecise, timeline.id, target);
  if (w === undefined || accept) return w ?? null;
  throw new RfError(
    'RF_TIME_IMPRECISE',
    `${isoUtc(target)} falls in an imprecise window (${isoUtc(w.from)} .. ${isoUtc(w.until)}, offsets ${w.firstOffset}..${w.lastOffset}): rf received those ${w.writes} writes late, so the stream cannot tell which of them had run by then`,
    {
      details: {
        source: index.source.name,
        target: isoUtc(target),
        window: windowJson(w),
      },
      hint: `pick a time at or before ${isoUtc(w.from)} or at or after ${isoUtc(w.until)}, restore from an AOF record that covers it (--from aof), or pass --accept-imprecise to cut by the latest time each write can have run at`,
    },
  );
}

function rangesText(ranges: readonly Range[]): string {
  return ranges.length === 0
    ? '(none yet)'
    : ranges.map((r) => `${isoUtc(r.from)} .. ${isoUtc(r.until)}`).join(', ');
}

/** The timeline whose restorable range holds T; refuses T before, after, or between them. */
export function chooseTimeline(index: SourceIndex, target: number): Timeline {
  const restorable = index.restorable.map((r) => ({
    from: isoUtc(r.from),
    until: isoUtc(r.until),
  }));
  const details = { source: index.source.name, target: isoUtc(target), restorable };
  const hint = 'pick a time inside a restorable range; `rf info` lists them';
  const inGap = index.gaps.find((g: Gap) => target > g.from && target < g.until);
  if (inGap !== undefined) {
    throw new RfError(
      'RF_TIME_IN_GAP',
      `${isoUtc(target)} falls in a gap of the archive (${isoUtc(inGap.from)} .. ${isoUtc(inGap.until)}, ${inGap.reason}): no write of that span was captured`,
      {
        details: {
          ...details,
          gap: { from: isoUtc(inGap.from), until: isoUtc(inGap.until), reason: inGap.reason },
        },
        hint,
      },
    );
  }
  const range = index.restorable.find((r) => target >= r.from && target <= r.until);
  const timeline =
    range === undefined ? undefined : index.timelines.find((t) => t.id === range.timeline);
  if (timeline !== undefined) return timeline;

  throw new RfError(
    'RF_TIME_OUT_OF_RANGE',
    `${isoUtc(target)} is outside what the archive can restore: ${rangesText(index.restorable)}`,
    { details, hint },
  );
}

/**
 * The cut inside the segment that holds T (the last one whose first entry is at or before T):
 * after the last entry captured at or before T, unless that leaves a MULTI open, in which case
 * just before that MULTI. `atEnd` says the segment is the archive's last, to name the reason.
 */
export function cutInSegment(
  meta: SegmentMeta,
  entries: readonly Entry[],
  target: number,
  atEnd: boolean,
): Cut {
  const state = new CommandState(meta.db, meta.multiAt);
  // A MULTI opened in an earlier segment: its time is not in this one.
  let multiTime: number | null = null;
  let queued = 0;
  let last: Entry | null = null;
  // Entries, not names: a name is made for the one entry reported, not for every entry read.
  let lastApplied: Entry | null = null;
  let beforeMulti: Entry | null = null;
  for (const e of entries) {
    if (e.time > target) break;
    const kind = frameKind(e.bytes);
    state.applyKind(kind, () => parseArgs(e.bytes), e.offset);
    if (kind === Kind.multi) {
      multiTime = e.time;
      queued = 0;
      beforeMulti = lastApplied;
    } else if (kind === Kind.exec) {
      lastApplied = e;
    } else if (kind === Kind.write) {
      if (state.multiAt === null) lastApplied = e;
      else queued++;
    }
    last = e;
  }
  if (last === null)
    throw new TypeError('cutInSegment: the segment has no entry at or before the target');
  if (state.multiAt === null) {
    return {
      offset: last.offset + last.bytes.length - 1,
      lastApplied: applied(lastApplied),
      dropped: null,
    };
  }
  const endOfArchive = atEnd && last === entries[entries.length - 1];
  return {
    offset: state.multiAt - 1,
    lastApplied: applied(beforeMulti),
    dropped: {
      multiAt: state.multiAt,
      time: multiTime,
      commands: queued,
      reason: endOfArchive ? 'open-at-archive-end' : 'target-inside-transaction',
    },
  };
}

function applied(e: Entry | null): AppliedEntry | null {
  return e === null ? null : { offset: e.offset, time: e.time, command: commandName(e.bytes) };
}

/**
 * The latest base of the timeline that the cut does not precede, and that was taken by the
 * target time. A fresh base's takenAt (its +FULLRESYNC) can come after the stream entries up to
 * its offset were stamped: a restore to a moment between them uses the base before it, so that
 * what a restore to T uses is what `rf info` counts restorable at T (a timeline's restorable
 * range starts at its first base's takenAt) and what retention keeps for its window's start.
 */
export function chooseBase(
  bases: readonly BaseMeta[],
  timeline: number,
  cutOffset: number,
  target: number = Number.POSITIVE_INFINITY,
): BaseMeta {
  let best: BaseMeta | undefined;
  let anyTime: BaseMeta | undefined;
  for (const b of bases) {
    if (b.timeline !== timeline || b.offset > cutOffset) continue;
    if (anyTime === undefined || b.offset > anyTime.offset) anyTime = b;
    if (b.takenAt <= target && (best === undefined || b.offset > best.offset)) best = b;
  }
  // No base taken by then (retention kept only a later one): the cut still has one below it.
  best ??= anyTime;
  if (best === undefined) {
    throw new RfError(
      'RF_CORRUPT',
      `timeline ${timeline} has no base at or before offset ${cutOffset}`,
      {
        details: { timeline, cutOffset },
        hint: 'run `rf verify` to check the archive',
      },
    );
  }
  return best;
}
