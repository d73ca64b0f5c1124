import type { Logger } from '../logger.js';
import { MIGRATE_WINDOW_MS } from '../restore/cluster-migrating.js';
import { type ClusterRecord, type ClusterShardRecord, slotsFrom } from '../store/cluster.js';
import type { Store } from '../store/store.js';
import { nothingPruned, type PruneResult, pruneArchive } from './prune.js';

/**
 * The cluster record once pruned to `windowStart`: its slot changes from the window on (the one in
 * force then moved to it), and the window itself, for `rf info`. Written before the shards are
 * pruned: a crash between the two leaves more of each shard than the window needs, never less.
 */
export function retainedRecord(
  record: ClusterRecord,
  windowStart: number,
  retainMs: number,
  now: number,
): ClusterRecord {
  return {
    ...record,
    slots: slotsFrom(record.slots, windowStart),
    retention: { retainMs, windowStart, prunedAt: now },
  };
}

/**
 * Prunes every shard of a cluster for restores at or after `windowStart`, the cluster's window
 * start, each with the --source prune (its order keeps each shard's archive whole at every step).
 * A shard's window starts the same, less the time a MIGRATE may take: a restore at T looks that
 * far back in every shard's stream for the RESTORE-ASKINGs of keys still in flight at T
 * (cluster-migrating.ts). Each shard keeps the base a restore to that instant uses, however old
 * (an idle shard's last base may be much older than a busy one's), and the timeline it captures
 * now (a shard that gave its slots away, or one rf could not reach, keeps what it has).
 * `migrateWindowMs` is that look-back (keysInFlight's), shortened only where a test's clock is.
 */
export async function pruneShards(
  store: Store,
  shards: readonly ClusterShardRecord[],
  windowStart: number,
  retainMs: number,
  log: Logger,
  migrateWindowMs = MIGRATE_WINDOW_MS,
): Promise<PruneResult> {
  const total = nothingPruned(windowStart);
  for (const shard of shards) {
    const r = await pruneArchive(
      store,
      shard.source,
      windowStart - migrateWindowMs,
      retainMs,
      log.child({ shard: shard.id }),
    );
    total.timelinesDropped += r.timelinesDropped;
    total.segmentsDeleted += r.segmentsDeleted;
    total.basesDeleted += r.basesDeleted;
    total.bytesFreed += r.bytesFreed;
    total.timeRecordsDeleted += r.timeRecordsDeleted;
  }
  return total;
}
