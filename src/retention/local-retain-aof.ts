import { isRfError } from '../errors.js';
import { planAofRestore } from '../restore/aof-source.js';
import { aofKeys } from '../store/aof-keys.js';
import { AofArchive } from '../store/chunks.js';
import type { BucketHolds, OffloadRecord } from '../store/offload.js';
import type { BatchOp, Store } from '../store/store.js';

const BATCH = 500;

/**
 * The AOF chunks' share of `--local-retain`: the chunk data of the AOF files that no restore at
 * or after `keepFrom` replays, once the bucket holds it. Every such restore starts from the AOF
 * base the plan for `keepFrom` starts from, and replays only the files after it; the files
 * before serve older times alone. Each batch deletes data and records how far in one write, as
 * the segments' share does. A `keepFrom` the AOF record cannot place (before its first base,
 * after its last chunk, in a gap) removes nothing.
 */
export async function offloadAofChunks(
  store: Store,
  source: string,
  keepFrom: number,
  holds: BucketHolds,
  rec: OffloadRecord,
  save: () => BatchOp,
): Promise<{ chunks: number; bytesFreed: number }> {
  const result = { chunks: 0, bytesFreed: 0 };
  let firstNeeded: number;
  try {
    const plan = await planAofRestore(store, source, keepFrom);
    firstNeeded = plan.files[0]?.fileNo ?? plan.base.firstFileNo ?? Number.NEGATIVE_INFINITY;
  } catch (err) {
    if (isRfError(err)) return result;
    throw err;
  }
  const archive = new AofArchive(store);
  for (const f of await archive.files(source)) {
    if (f.fileNo >= firstNeeded) continue;
    const upTo = holds.aofEnd.get(f.fileNo) ?? -1;
    for (;;) {
      const ops: BatchOp[] = [];
      let last = -1;
      const done = rec.aofUpTo?.[String(f.fileNo)] ?? -1;
      for await (const c of archive.chunks(source, f.fileNo)) {
        if (c.end <= done) continue;
        if (c.end > upTo || ops.length >= BATCH) break;
        ops.push({ type: 'del', key: aofKeys.data(source, f.fileNo, c.start) });
        result.bytesFreed += c.end - c.start;
        last = c.end;
      }
      if (ops.length === 0) break;
      rec.aofUpTo = { ...rec.aofUpTo, [String(f.fileNo)]: last };
      await store.batch([...ops, save()]);
      result.chunks += ops.length;
    }
  }
  return result;
}
