import { RfError } from '../errors.js';
import { type ClusterOutOptions, clusterMoment, restoreShardAt } from './cluster-out.js';
import type { IntoResult } from './into/into.js';
import type { RestoreInto, RestoreResult } from './restore.js';

export interface ClusterIntoOptions extends Omit<ClusterOutOptions, 'dir'> {
  /** The `--into` destination, as a dry run (the conflict check) or for real. */
  into: (dryRun: boolean) => RestoreInto & { kind: 'into' };
  conflict: 'fail' | 'skip' | 'replace';
  dryRun: boolean;
}

export interface ClusterIntoResult {
  until: RestoreResult['until'];
  shards: Array<{ id: string; result: IntoResult }>;
  written: number;
  skipped: number;
  expired: number;
  conflicts: string[];
  conflictCount: number;
}

function intoOf(r: RestoreResult): IntoResult {
  if (r.into?.kind !== 'into') throw new TypeError('a cluster --into restore returned no copy');
  return r.into;
}

/**
 * `rf restore --into URL` of a cluster: every shard that owned slots at T, cut at that same T,
 * merged into one target (a standalone instance, or a cluster routed by slot). Shards hold
 * disjoint slots, so their keys never meet each other; they may meet the target's. With
 * `--conflict fail` every shard is first run dry, so a conflict in the last shard refuses the
 * restore before the first shard has written anything.
 */
export async function restoreClusterInto(options: ClusterIntoOptions): Promise<ClusterIntoResult> {
  const { until, shards: ids, drops } = await clusterMoment(options);
  const at = `@${until.ms / 1000}`;
  const shards = options.cluster.shards.filter((s) => ids.includes(s.id));
  const run = async (dryRun: boolean) => {
    const results: ClusterIntoResult['shards'] = [];
    for (const shard of shards) {
      const r = await restoreShardAt(
        options,
        shard.source,
        at,
        options.into(dryRun),
        drops,
        options.open,
      );
      results.push({ id: shard.id, result: intoOf(r) });
    }
    return results;
  };
  const sum = (results: ClusterIntoResult['shards']): ClusterIntoResult => {
    const conflicts = results.flatMap((r) => r.result.conflicts).slice(0, 100);
    return {
      until,
      shards: results,
      written: results.reduce((n, r) => n + r.result.written, 0),
      skipped: results.reduce((n, r) => n + r.result.skipped, 0),
      expired: results.reduce((n, r) => n + r.result.expired, 0),
      conflicts,
      conflictCount: results.reduce((n, r) => n + r.result.conflictCount, 0),
    };
  };
  if (options.dryRun) return sum(await run(true));
  if (options.conflict === 'fail') {
    const planned = sum(await run(true));
    if (planned.conflictCount > 0) {
      throw new RfError(
        'RF_INTO_CONFLICT',
        `${planned.conflictCount} keys of the cluster at T already exist on the target; nothing was written`,
        {
          details: { conflicts: planned.conflicts.slice(0, 10), count: planned.conflictCount },
          hint: 'choose --conflict skip or --conflict replace, or narrow the selection with --key',
        },
      );
    }
  }
  return sum(await run(false));
}
