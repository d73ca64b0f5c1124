import { keys, prefixEnd } from './keys.js';
import { json, type KvReader, type Store } from './store.js';
import type { RetentionRecord } from './types.js';

/** An inclusive range of hash slots, `[from, to]`. */
export type SlotRanges = Array<[number, number]>;

export interface ClusterShardRecord {
  /** Short hex id, from the node id of the shard's first master. */
  id: string;
  /** The source its stream is archived under (`<cluster>.<id>`). */
  source: string;
  /** Every node id seen in the shard: how it is recognised after a failover. */
  nodeIds: string[];
  /** `host:port` of its master when last seen. */
  master: string | null;
}

/** Who owned which slots from `at` on, as the topology said: one entry per change. */
export interface SlotOwnership {
  at: number;
  /** Shard id → its slots. A shard absent here owned none. */
  owners: Record<string, SlotRanges>;
}

export interface ClusterRecord {
  name: string;
  createdAt: number;
  /** The seed URL, password removed. */
  url: string;
  shards: ClusterShardRecord[];
  slots: SlotOwnership[];
  /**
   * Read back from a bucket: the slot owners are known up to this moment only (the shards'
   * archives may reach further). Absent in the store rf listen owns, where the record is current.
   */
  knownUntil?: number;
  /** What --retain last pruned the cluster to: restores from `windowStart` on (absent: never). */
  retention?: RetentionRecord;
}

export async function readCluster(kv: KvReader, name: string): Promise<ClusterRecord | undefined> {
  const raw = await kv.get(keys.cluster(name));
  return raw === undefined ? undefined : json.decode<ClusterRecord>(raw);
}

export async function listClusters(kv: KvReader): Promise<ClusterRecord[]> {
  const out: ClusterRecord[] = [];
  for await (const [, raw] of kv.entries({
    gte: keys.clustersPrefix,
    lt: prefixEnd(keys.clustersPrefix),
  }))
    out.push(json.decode<ClusterRecord>(raw));
  return out;
}

export async function writeCluster(store: Store, record: ClusterRecord): Promise<void> {
  await store.batch([{ type: 'put', key: keys.cluster(record.name), value: json.encode(record) }]);
}

/** The slot owners in force at `t` (the last change at or before it), or undefined before the first. */
export function ownersAt(record: ClusterRecord, t: number): SlotOwnership | undefined {
  let found: SlotOwnership | undefined;
  for (const s of record.slots) if (s.at <= t) found = s;
  return found;
}

/**
 * The slot changes a restore at or after `windowStart` needs: the one in force then, from
 * `windowStart` on, and every later one. A restore before the window finds no owners, and is
 * refused as one before rf first read the topology is.
 */
export function slotsFrom(slots: readonly SlotOwnership[], windowStart: number): SlotOwnership[] {
  const inForce = slots.findLastIndex((s) => s.at <= windowStart);
  if (inForce < 0) return [...slots];
  return [{ at: windowStart, owners: slots[inForce]!.owners }, ...slots.slice(inForce + 1)];
}

/** An inclusive time range, ms since the epoch. */
export interface TimeRange {
  from: number;
  until: number;
}

/**
 * Where every shard can restore: the intersection of each shard's restorable ranges. A cluster
 * restore cuts every shard at one T, so a T one shard cannot reach is no cluster moment.
 */
export function intersectRanges(perShard: ReadonlyArray<readonly TimeRange[]>): TimeRange[] {
  if (perShard.length === 0) return [];
  let acc: TimeRange[] = [...perShard[0]!].sort((a, b) => a.from - b.from);
  for (const ranges of perShard.slice(1)) {
    const next: TimeRange[] = [];
    for (const a of acc) {
      for (const b of ranges) {
        const from = Math.max(a.from, b.from);
        const until = Math.min(a.until, b.until);
        if (from <= until) next.push({ from, until });
      }
    }
    acc = next.sort((x, y) => x.from - y.from);
  }
  return acc;
}

/** Sorted, with overlapping and touching ranges joined. */
function unionRanges(ranges: readonly TimeRange[]): TimeRange[] {
  const out: TimeRange[] = [];
  for (const r of [...ranges].sort((a, b) => a.from - b.from)) {
    const last = out.at(-1);
    if (last !== undefined && r.from <= last.until + 1) last.until = Math.max(last.until, r.until);
    else out.push({ ...r });
  }
  return out;
}

/**
 * Where the whole cluster can restore: at each instant, every shard that owned slots then can.
 * A shard that owned none (added and not yet given slots, or one that gave all of them away and
 * was left to follow another shard) holds nothing a restore needs, so it narrows nothing then.
 * Before rf first read the topology nothing is known: no cluster moment.
 */
export function clusterRestorable(
  record: ClusterRecord,
  restorable: ReadonlyMap<string, readonly TimeRange[]>,
): TimeRange[] {
  const first = record.slots[0];
  if (first === undefined) return [];
  const end = Number.MAX_SAFE_INTEGER;
  const perShard = record.shards.map((shard) => {
    const idle: TimeRange[] = [];
    record.slots.forEach((change, i) => {
      const until = (record.slots[i + 1]?.at ?? end + 1) - 1;
      if (change.owners[shard.id] === undefined && change.at <= until)
        idle.push({ from: change.at, until });
    });
    return unionRanges([...(restorable.get(shard.id) ?? []), ...idle]);
  });
  return intersectRanges([
    [{ from: first.at, until: record.knownUntil ?? end }],
    ...perShard,
  ]).filter((r) => r.until < end);
}
