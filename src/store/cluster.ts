import { keys, prefixEnd } from './keys.js';
import { json, type KvReader, type Store } from './store.js';

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
