import type { Archive } from '../store/archive.js';
import { MINUTE_MS } from '../store/minutes.js';
import type { Range } from '../store/summary.js';
import type { Timeline } from '../store/types.js';

/**
 * How busy the source was across the restorable range, in fixed time bins: what `rf info` draws
 * as a sparkline so a person sees where the activity was before choosing a restore time.
 *
 * Bins of a minute or more are counted from the writes per minute rf keeps as it writes
 * (store/minutes.ts): one record per minute, however many segments. Finer bins, or a timeline an
 * older rf began (it has no counts), take writes from the segment metas (`writes`, spread evenly
 * over a segment's `firstTime..lastTime`), one small record per segment; an archive with more
 * segments than `metaLimit` is measured in stream bytes instead, from one time-index seek per
 * bin boundary, so `rf info` stays quick however long the archive is.
 */
export interface Activity {
  unit: 'writes' | 'bytes';
  /** Width of one bin, ms. */
  binMs: number;
  /** Start of the first bin (a multiple of binMs). */
  from: number;
  values: number[];
  /** Whether each bin overlaps a restorable range (a bin outside all of them is a gap). */
  covered: boolean[];
}

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;
/** Bin widths a person reads easily, smallest first. */
const STEPS = [
  S,
  5 * S,
  10 * S,
  30 * S,
  M,
  5 * M,
  15 * M,
  30 * M,
  H,
  3 * H,
  6 * H,
  12 * H,
  D,
  7 * D,
];

/** The smallest readable bin width that fits [from, until] into at most `maxBins` bins. */
export function chooseBins(
  from: number,
  until: number,
  maxBins: number,
): { binMs: number; start: number; bins: number } {
  for (const step of [...STEPS, Number.POSITIVE_INFINITY]) {
    const binMs = Number.isFinite(step) ? step : Math.ceil((until - from + 1) / maxBins / D) * D;
    const start = Math.floor(from / binMs) * binMs;
    const bins = Math.floor(until / binMs) - Math.floor(from / binMs) + 1;
    if (bins <= maxBins) return { binMs, start, bins };
  }
  throw new TypeError('unreachable: the last step always fits');
}

/** Adds `count` spread evenly over [first, last] (ms, inclusive) to the bins it overlaps. */
export function spread(
  values: number[],
  start: number,
  binMs: number,
  first: number,
  last: number,
  count: number,
): void {
  if (count === 0) return;
  const span = last - first + 1;
  const a = Math.max(0, Math.floor((first - start) / binMs));
  const b = Math.min(values.length - 1, Math.floor((last - start) / binMs));
  for (let i = a; i <= b; i++) {
    const lo = Math.max(first, start + i * binMs);
    const hi = Math.min(last + 1, start + (i + 1) * binMs);
    if (hi > lo) values[i]! += (count * (hi - lo)) / span;
  }
}

export async function activity(
  archive: Archive,
  source: string,
  timelines: readonly Timeline[],
  restorable: readonly Range[],
  options: { maxBins: number; metaLimit: number },
): Promise<Activity | null> {
  const first = restorable[0];
  const last = restorable[restorable.length - 1];
  if (first === undefined || last === undefined) return null;
  const { binMs, start, bins } = chooseBins(first.from, last.until, options.maxBins);
  const values = new Array<number>(bins).fill(0);
  const covered = new Array<boolean>(bins).fill(false);
  for (const r of restorable) {
    const a = Math.floor((r.from - start) / binMs);
    const b = Math.floor((r.until - start) / binMs);
    for (let i = Math.max(0, a); i <= Math.min(bins - 1, b); i++) covered[i] = true;
  }
  if (binMs % MINUTE_MS === 0 && (await countedThroughout(archive, source, timelines))) {
    const last = start + bins * binMs - 1;
    for (const t of timelines) {
      if (t.durableOffset === t.baseOffset) continue;
      const from = Math.floor(start / MINUTE_MS);
      for await (const m of archive.minutes(source, t.id, from, Math.floor(last / MINUTE_MS))) {
        values[Math.floor((m.minute * MINUTE_MS - start) / binMs)]! += m.writes;
      }
    }
    return { unit: 'writes', binMs, from: start, values, covered };
  }
  const segments = timelines.reduce((n, t) => n + t.segments, 0);
  const unit = segments <= options.metaLimit ? 'writes' : 'bytes';
  for (const t of timelines) {
    if (t.durableOffset === t.baseOffset) continue;
    if (unit === 'writes') {
      for await (const meta of archive.segments(source, t.id)) {
        if (meta.start > t.durableOffset) break;
        spread(values, start, binMs, meta.firstTime, meta.lastTime, meta.writes);
      }
    } else {
      await bytesPerBin(archive, source, t, values, start, binMs);
    }
  }
  return { unit, binMs, from: start, values: values.map((v) => Math.round(v)), covered };
}

/**
 * Whether every timeline holding writes has its writes counted by minute from its first segment
 * on (or from where retention pruned it to).
 */
async function countedThroughout(
  archive: Archive,
  source: string,
  timelines: readonly Timeline[],
): Promise<boolean> {
  for (const t of timelines) {
    if (t.durableOffset === t.baseOffset) continue;
    const counted = await archive.countedFrom(source, t.id);
    if (counted === undefined) return false;
    const first = ((await archive.prunedBefore(source, t.id)) ?? t.baseOffset) + 1;
    if (counted > first) return false;
  }
  return true;
}

/** Stream bytes per bin from the offsets at the bin boundaries: one seek each. */
async function bytesPerBin(
  archive: Archive,
  source: string,
  t: Timeline,
  values: number[],
  start: number,
  binMs: number,
): Promise<void> {
  const end = t.durableOffset + 1;
  const offsetAt = async (time: number): Promise<number> => {
    if (time <= t.startedAt) return t.baseOffset + 1;
    if (time > t.lastTime) return end;
    return (await archive.segmentAtTime(source, t.id, time))?.start ?? end;
  };
  let previous = await offsetAt(start);
  for (let i = 0; i < values.length; i++) {
    const next = await offsetAt(start + (i + 1) * binMs);
    values[i]! += next - previous;
    previous = next;
    if (next === end) break;
  }
}
