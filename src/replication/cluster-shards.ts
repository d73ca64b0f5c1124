import { RfError } from '../errors.js';
import { isValidSourceName } from '../store/keys.js';
import type { ClusterNode, ShardView } from './cluster-topology.js';

/**
 * A shard as rf knows it across failovers. Redis 7.0 gives a shard no id of its own (the
 * `shard-id` of 7.2 is absent), so a shard is named by the node id of the first master rf saw
 * for it, and recognised later by any node it has held: after a failover the promoted replica
 * was already one of its nodes.
 */
export interface KnownShard {
  /** 12 hex characters of the first master's node id: short, and safe in a source name. */
  id: string;
  /** The source the shard's stream is archived under: `<cluster>.<id>`. */
  source: string;
  /** Every node id seen in the shard. */
  nodeIds: string[];
}

export const SHARD_ID_LENGTH = 12;

/**
 * The source name of a shard. Validated like any source name, so a shard id (data from the
 * network) never becomes a path or a key prefix of its own making.
 */
export function shardSourceName(cluster: string, id: string): string {
  const name = `${cluster}.${id}`;
  if (!/^[0-9a-f]+$/.test(id)) throw new TypeError(`not a shard id: ${JSON.stringify(id)}`);
  if (!isValidSourceName(name)) {
    throw new RfError(
      'RF_USAGE',
      `the cluster name ${JSON.stringify(cluster)} leaves no room for its shards' names`,
      {
        details: { name: cluster, shardSource: name },
        hint: `give --name at most ${63 - SHARD_ID_LENGTH - 1} characters`,
      },
    );
  }
  return name;
}

/**
 * Matches what a node reports against the shards rf already knows. A view that shares a node
 * with a known shard is that shard (a failover keeps the nodes, swaps the roles); one that
 * shares none is a new shard, named by its master. Pure: the caller stores the result.
 */
export function assignShards(
  cluster: string,
  known: readonly KnownShard[],
  views: readonly ShardView[],
): { shards: KnownShard[]; matched: Array<{ shard: KnownShard; view: ShardView }> } {
  const shards = known.map((s) => ({ ...s, nodeIds: [...s.nodeIds] }));
  const matched: Array<{ shard: KnownShard; view: ShardView }> = [];
  for (const view of views) {
    const ids = view.nodes.map((n) => n.id);
    // By its master first: a master that gave away its last slot becomes a replica of the node
    // that took it (cluster-allow-replica-migration), so a view can hold nodes of two shards.
    const master = view.master?.id;
    let shard =
      (master === undefined ? undefined : shards.find((s) => s.nodeIds.includes(master))) ??
      shards.find((s) => s.nodeIds.some((id) => ids.includes(id)));
    if (shard === undefined) {
      const first = view.master ?? view.nodes[0];
      // A shard with no node at all cannot be followed or named: nothing to archive from it.
      if (first === undefined) continue;
      let length = SHARD_ID_LENGTH;
      // Two masters whose ids share a prefix: lengthen until the name is unique.
      while (shards.some((s) => s.id === first.id.slice(0, length))) length++;
      const id = first.id.slice(0, length);
      shard = { id, source: shardSourceName(cluster, id), nodeIds: [] };
      shards.push(shard);
    }
    // A node already known as another shard's stays that shard's: it joined this one as a replica.
    const mine = ids.filter((id) => !shards.some((s) => s !== shard && s.nodeIds.includes(id)));
    for (const id of mine) if (!shard.nodeIds.includes(id)) shard.nodeIds.push(id);
    matched.push({ shard, view });
  }
  return { shards, matched };
}

/**
 * The master to follow per shard. A master killed and replaced by its replica stays listed as a
 * master of no slots (still "online" until cluster-node-timeout marks it failed, CLUSTER SHARDS
 * lists every master), sharing a node id with the shard: the view that serves slots with a live
 * master wins over it, whatever order the node lists them in.
 */
export function mastersOf(
  matched: ReadonlyArray<{ shard: { id: string }; view: ShardView }>,
): Map<string, ClusterNode | null> {
  const score = (v: ShardView) => (v.master === null ? 0 : 2) + (v.slots.length > 0 ? 1 : 0);
  const best = new Map<string, ShardView>();
  for (const { shard, view } of matched) {
    const seen = best.get(shard.id);
    if (seen === undefined || score(view) > score(seen)) best.set(shard.id, view);
  }
  return new Map([...best].map(([id, v]) => [id, v.master]));
}
