import type { SlotRanges } from '../store/cluster.js';
import type { ResolvedTime } from '../time.js';
import { type ClusterOutOptions, clusterMoment, restoreShardAt } from './cluster-out.js';
import type { RestoreResult } from './restore.js';

export type ClusterPlanOptions = Omit<ClusterOutOptions, 'dir'>;

export interface ClusterPlanResult {
  until: ResolvedTime;
  shards: Array<{
    id: string;
    source: string;
    slots: SlotRanges;
    /** Keys in the middle of a MIGRATE at T that this shard's copy leaves to the other. */
    inFlight: number;
    result: RestoreResult;
  }>;
}

/**
 * `rf restore --dry-run` of a cluster: what a restore at T would do, shard by shard, refused
 * where the restore itself would be (a T before the topology was known, unowned slots, a T in
 * a gap or an imprecise window of any shard), writing nothing. Each shard's plan is the ordinary
 * dry run of its source at the same millisecond, with the keys in flight at T left out as the
 * restore leaves them out.
 */
export async function planCluster(options: ClusterPlanOptions): Promise<ClusterPlanResult> {
  const { cluster } = options;
  const { until, owners, shards: ids, drops } = await clusterMoment(options);
  const at = `@${until.ms / 1000}`;
  const shards: ClusterPlanResult['shards'] = [];
  // One shard after another, each opening the store as any reader does: a plan reads little.
  for (const shard of cluster.shards.filter((s) => ids.includes(s.id))) {
    const result = await restoreShardAt(options, shard.source, at, null, drops, options.open);
    shards.push({
      id: shard.id,
      source: shard.source,
      slots: owners.owners[shard.id] ?? [],
      inFlight: drops.get(shard.source)?.length ?? 0,
      result,
    });
  }
  return { until, shards };
}
