import { Archive } from '../store/archive.js';
import type { KvReader } from '../store/store.js';
import { restorableRanges } from '../store/summary.js';

/** The restorable window of a source as `rf info` derives it, for the metrics. */
export interface ArchiveWindow {
  /** Start of the oldest restorable range, end of the newest (ms), null before a first base. */
  from: number | null;
  until: number | null;
  gaps: number;
}

/** Reads only the timeline, base and seen records: a few small LevelDB values per source. */
export async function archiveWindow(kv: KvReader, source: string): Promise<ArchiveWindow> {
  const archive = new Archive(kv);
  const [timelines, bases, seen] = await Promise.all([
    archive.timelines(source),
    archive.bases(source),
    archive.seen(source),
  ]);
  const { restorable, gaps } = restorableRanges(timelines, bases, seen);
  return {
    from: restorable.length === 0 ? null : Math.min(...restorable.map((r) => r.from)),
    until: restorable.length === 0 ? null : Math.max(...restorable.map((r) => r.until)),
    gaps: gaps.length,
  };
}
