import { isRfError } from '../errors.js';
import { Archive } from './archive.js';
import { indexEntries } from './key-index.js';
import { keys } from './keys.js';
import type { BatchOp, Store } from './store.js';
import type { SegmentMeta } from './types.js';

/** A segment whose key index `rf verify` found missing, damaged or stray. */
export interface SegmentRef {
  timeline: number;
  start: number;
}

/**
 * Makes the key index of each segment agree with its data: rebuilt from the stored writes,
 * or removed when no segment starts there. A segment whose data does not decode keeps what it
 * has (`rf verify` reports that on its own). The store's owner runs this: `rf verify` itself,
 * or the running `rf listen` when verify reads through its control socket. Returns how many
 * indexes were written and removed.
 */
export async function reindexSegments(
  store: Store,
  source: string,
  segments: readonly SegmentRef[],
): Promise<{ written: number; removed: number }> {
  const archive = new Archive(store);
  const result = { written: 0, removed: 0 };
  let ops: BatchOp[] = [];
  const commit = async () => {
    if (ops.length > 0) await store.batch(ops);
    ops = [];
  };
  for (const { timeline, start } of segments) {
    const key = keys.keyIndex(source, timeline, start);
    const raw = await store.get(keys.segment(source, timeline, start));
    if (raw === undefined) {
      ops.push({ type: 'del', key });
      result.removed++;
    } else {
      const meta = JSON.parse(raw.toString('utf8')) as SegmentMeta;
      try {
        const { entries } = await archive.readSegment(source, meta);
        ops.push({ type: 'put', key, value: indexEntries(entries, meta) });
        result.written++;
      } catch (err) {
        // RF_REPO_ONLY: --local-retain removed its data while verify ran; its index stays.
        if (!isRfError(err) || !['RF_CHECKSUM', 'RF_CORRUPT', 'RF_REPO_ONLY'].includes(err.code))
          throw err;
      }
    }
    if (ops.length >= 256) await commit();
  }
  await commit();
  return result;
}
