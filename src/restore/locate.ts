import type { Archive } from '../store/archive.js';
import { indexSource } from '../store/summary.js';
import {
  type Cut,
  checkImprecise,
  chooseBase,
  chooseTimeline,
  cutInSegment,
  type RestorePlan,
} from './plan.js';

/** Reads just what the plan needs: the index, then one seek by time and one segment. */
export async function planRestore(
  archive: Archive,
  source: string,
  target: number,
  /** Cut inside an imprecise window by the stored times instead of refusing (RF_TIME_IMPRECISE). */
  acceptImprecise = false,
  /** Base files not to use (rolled bases found damaged): the plan takes the one before. */
  skip: ReadonlySet<string> = new Set(),
): Promise<RestorePlan> {
  const record = await archive.requireSource(source);
  const full = await indexSource(archive, record);
  const index = { ...full, bases: full.bases.filter((b) => !skip.has(b.file)) };
  const timeline = chooseTimeline(index, target);
  const imprecise = checkImprecise(index, timeline, target, acceptImprecise);
  const seg = await archive.segmentBeforeTime(source, timeline.id, target);
  let cut: Cut;
  if (seg === undefined) {
    // No entry of the timeline was captured at or before T (none yet, or retention pruned
    // them): T is served by the latest base taken by then.
    const bases = index.bases.filter((b) => b.timeline === timeline.id && b.takenAt <= target);
    const offset =
      bases.length === 0 ? timeline.baseOffset : Math.max(...bases.map((b) => b.offset));
    cut = { offset, lastApplied: null, dropped: null };
  } else {
    const { entries } = await archive.readSegment(source, seg);
    cut = cutInSegment(seg, entries, target, seg.end === timeline.durableOffset);
  }
  const base = chooseBase(index.bases, timeline.id, cut.offset, target);
  return { source, target, timeline, base, fromOffset: base.offset + 1, cut, imprecise };
}
