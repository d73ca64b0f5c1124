import type { ClusterListenerStatus } from './cluster-listener.js';
import type { MetricsSnapshot, SourceMetrics } from './metrics.js';
import type { ShardRunnerStatus } from './shard-runner.js';

/**
 * The series of `rf listen --cluster --metrics`: one set per shard, labelled with the shard's
 * source name, so a single shard that stops streaming is seen (and alerted on) by itself.
 * Only what each shard's runner knows is exported: its master's offset (sampled as rf listen
 * --source samples it) and so the lag series, and no series for the counts runners do not keep.
 */
export function clusterMetrics(status: ClusterListenerStatus): MetricsSnapshot {
  return {
    sources: status.shards.map((shard) => ({
      source: shard.source,
      shard: shard.source,
      metrics: runnerMetrics(shard),
    })),
    errors: { ...status.errors },
  };
}

/**
 * What one ShardRunner knows, as metrics: a cluster shard's, or the one source of
 * `rf listen --sentinel`.
 */
export function runnerMetrics(
  shard: Pick<
    ShardRunnerStatus,
    'session' | 'reconnects' | 'masterSample' | 'lastBaseAt' | 'baseEveryMs' | 'repo'
  >,
): SourceMetrics {
  const s = shard.session;
  return {
    connected: s?.phase === 'streaming',
    timeline: s?.timeline ?? null,
    durableOffset: s?.durableOffset ?? null,
    receivedOffset: s?.receivedOffset ?? null,
    masterOffset: shard.masterSample?.offset ?? null,
    lastDurableAt: s?.lastDurableAt ?? null,
    lastBaseAt: shard.lastBaseAt,
    baseEveryMs: shard.baseEveryMs,
    totals: { segments: null, streamBytes: null, bases: null, reconnects: shard.reconnects },
    // Absent without --repo, so its series are not exported at all, as rf listen --source does.
    ...(shard.repo === null ? {} : { repo: shard.repo }),
  };
}
