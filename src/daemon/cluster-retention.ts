import type { Logger } from '../logger.js';
import { pruneShards, retainedRecord } from '../retention/prune-cluster.js';
import type { ClusterRecord } from '../store/cluster.js';
import type { Store } from '../store/store.js';
import { scheduleRetention } from './retention-loop.js';
import type { ErrorCounts } from './supervise.js';

/** Tasks run one at a time, in the order given: each starts once the one before has settled. */
export class Turns {
  private last: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const turn = this.last.then(task);
    this.last = turn.catch(() => undefined);
    return turn;
  }
}

export interface ClusterRetention {
  store: Store;
  /** null: no --retain. */
  retainMs: number | null;
  /** Writes the cluster record as `change` makes it, once no other change is under way. */
  update: (change: (record: ClusterRecord) => ClusterRecord) => Promise<ClusterRecord>;
  /** Per shard, until when its bucket holds what a restore needs (Infinity without --repo). */
  heldUntil: () => number[];
  stopping: () => boolean;
  signal: AbortSignal;
  failures: ErrorCounts;
  log: Logger;
}

/**
 * `rf listen --cluster --retain`: the cluster's window is where cluster restores stay possible.
 * Its slot changes move to the window first (with the window, for rf info), then each shard is
 * pruned for it (prune-cluster.ts). Nothing is deleted locally before the bucket holds it: with
 * --repo the window starts no later than what every shard's bucket holds.
 */
export function scheduleClusterRetention(c: ClusterRetention): Promise<void> {
  return scheduleRetention({
    retainMs: c.retainMs,
    prune: async (now, retain) => {
      const windowStart = Math.min(now, ...c.heldUntil());
      const record = await c.update((r) => retainedRecord(r, windowStart, retain, Date.now()));
      return pruneShards(c.store, record.shards, windowStart, retain, c.log);
    },
    stopping: c.stopping,
    signal: c.signal,
    failures: c.failures,
    log: c.log,
  });
}
