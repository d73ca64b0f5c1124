import { type ClusterRecord, clusterRestorable, type SlotRanges } from '../store/cluster.js';
import { isoUtc } from '../time.js';
import type { SourceInfo } from './info.js';
import { forkLines, forksJson } from './info-forks.js';
import { duration } from './info-text.js';

/** What `rf info` shows of a shard: its identity and slots, and its source's own record. */
interface ShardSummary {
  id: string;
  source: string;
  slots: SlotRanges;
  master: string | null;
  info: SourceInfo | undefined;
}

function shardsOf(record: ClusterRecord, infos: readonly SourceInfo[]): ShardSummary[] {
  const owners = record.slots.at(-1)?.owners ?? {};
  return record.shards.map((s) => ({
    id: s.id,
    source: s.source,
    slots: owners[s.id] ?? [],
    master: s.master,
    info: infos.find((i) => i.ix.source.name === s.source),
  }));
}

/** Where the cluster can restore: every shard that owned slots at the time can. */
function restorableOf(record: ClusterRecord, shards: readonly ShardSummary[]) {
  return clusterRestorable(record, new Map(shards.map((s) => [s.id, s.info?.ix.restorable ?? []])));
}

/** The stable `--json` shape of a cluster source (DESIGN.md "Redis Cluster"). */
export function clusterJson(record: ClusterRecord, infos: readonly SourceInfo[]) {
  const shards = shardsOf(record, infos);
  return {
    name: record.name,
    kind: 'cluster' as const,
    url: record.url,
    createdAt: isoUtc(record.createdAt),
    shards: shards.map((s) => ({
      id: s.id,
      source: s.source,
      slots: s.slots,
      master: s.master,
      timelines: (s.info?.ix.timelines ?? []).map((t) => ({
        id: t.id,
        replid: t.replid,
        from: isoUtc(t.startedAt),
        until: isoUtc(t.lastTime),
        durableOffset: t.durableOffset,
        reason: t.reason,
      })),
      forks: forksJson(s.info?.ix.timelines ?? []),
      gaps: (s.info?.ix.gaps ?? []).map((g) => ({
        from: isoUtc(g.from),
        until: isoUtc(g.until),
        reason: g.reason,
      })),
      restorable: (s.info?.ix.restorable ?? []).map((r) => ({
        from: isoUtc(r.from),
        until: isoUtc(r.until),
      })),
    })),
    slotChanges: record.slots.map((c) => ({ at: isoUtc(c.at), owners: c.owners })),
    retention: retentionOf(record),
    restorable: restorableOf(record, shards).map((r) => ({
      from: isoUtc(r.from),
      until: isoUtc(r.until),
    })),
  };
}

/** What `rf listen --cluster --retain` last pruned the cluster to, or null. */
function retentionOf(record: ClusterRecord) {
  const r = record.retention;
  return r === undefined
    ? null
    : { retainMs: r.retainMs, windowStart: isoUtc(r.windowStart), prunedAt: isoUtc(r.prunedAt) };
}

/** The text form: one block per cluster, one line per shard. */
export function clusterText(record: ClusterRecord, infos: readonly SourceInfo[]): string[] {
  const shards = shardsOf(record, infos);
  const ranges = (slots: SlotRanges) =>
    slots.map(([a, b]) => (a === b ? String(a) : `${a}-${b}`)).join(',') || '(none)';
  const restorable = restorableOf(record, shards);
  return [
    `cluster ${record.name}: ${shards.length} shards`,
    ...shards.flatMap((s) => {
      const timelines = s.info?.ix.timelines ?? [];
      const gaps = s.info?.ix.gaps.length ?? 0;
      const forks = forkLines(timelines, '    ');
      return [
        `  shard ${s.id}  slots ${ranges(s.slots)}  master ${s.master ?? '(none)'}  timelines ${timelines.length}  gaps ${gaps}  forks ${forks.length}  source ${s.source}`,
        ...forks,
      ];
    }),
    `  restorable (every shard): ${
      restorable.length === 0
        ? '(nowhere yet)'
        : restorable.map((r) => `${isoUtc(r.from)} .. ${isoUtc(r.until)}`).join(', ')
    }`,
    ...(record.retention === undefined
      ? []
      : [
          `  retention ${duration(record.retention.retainMs)}: cluster restores from ${isoUtc(record.retention.windowStart)} on`,
        ]),
  ];
}
