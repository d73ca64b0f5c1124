import type { ClusterListenerStatus } from './cluster-listener.js';
import type { MetricsSnapshot, SourceMetrics } from './metrics.js';
import type { ShardRunnerStatus } from './shard-runner.js';

/**
 * The series of `rf listen --cluster --metrics`: one set per shard, labelled with the shard's
 * source name, so a single shard that stops streaming is seen (and alerted on) by itself.
 * Only what each shard's runner knows is exported: no master offset is sampled per shard, so
 * the lag series are absent, and the counts the runners do not keep have no series.
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
  shard: Pick<ShardRunnerStatus, 'session' | 'reconnects'>,
): SourceMetrics {
  const s = shard.session;
  return {
    connected: s?.phase === 'streaming',
    timeline: s?.timeline ?? null,
    durableOffset: s?.durableOffset ?? null,
    receivedOffset: s?.receivedOffset ?? null,
    masterOffset: null,
    lastDurableAt: s?.lastDurableAt ?? null,
    lastBaseAt: null,
    baseEveryMs: null,
    totals: { segments: null, streamBytes: null, bases: null, reconnects: shard.reconnects },
  };
}
