import calculateSlot from 'cluster-key-slot';
import { RfError } from '../errors.js';
import { describeEndpoint, type RedisEndpoint } from '../redis-url.js';
import { RedisClient, RedisReplyError } from '../resp/client.js';
import { noPermission } from './handshake.js';

/** Redis Cluster has 16384 hash slots (cluster.h CLUSTER_SLOTS). */
export const CLUSTER_SLOTS = 16384;

/** An inclusive range of hash slots, `[from, to]`. */
export type SlotRange = [number, number];

export interface ClusterNode {
  /** The node's 40-hex cluster id (cluster.h CLUSTER_NAMELEN). */
  id: string;
  host: string;
  port: number;
  role: 'master' | 'replica';
  health: 'online' | 'failed' | 'loading';
}

/** One shard as a node reports it: a master (if it has one that is up), its replicas, its slots. */
export interface ShardView {
  slots: SlotRange[];
  master: ClusterNode | null;
  nodes: ClusterNode[];
}

export interface Topology {
  shards: ShardView[];
  /** The node that answered, `host:port`. */
  from: string;
  via: 'CLUSTER SHARDS' | 'CLUSTER NODES';
}

const NODE_ID = /^[0-9a-f]{40}$/;

/** The slot of a key: CRC16 of the key or of its {hash tag} (cluster.c keyHashSlot). */
export function slotOf(key: string | Buffer): number {
  return calculateSlot(key);
}

/** Sorted, merged slot ranges: adjacent and overlapping ranges become one. */
export function mergeRanges(ranges: readonly SlotRange[]): SlotRange[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: SlotRange[] = [];
  for (const [from, to] of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && from <= last[1] + 1) last[1] = Math.max(last[1], to);
    else out.push([from, to]);
  }
  return out;
}

/** The slots no shard serves, as ranges. */
export function uncovered(shards: readonly ShardView[]): SlotRange[] {
  const served = mergeRanges(shards.flatMap((s) => (s.master === null ? [] : s.slots)));
  const gaps: SlotRange[] = [];
  let next = 0;
  for (const [from, to] of served) {
    if (from > next) gaps.push([next, from - 1]);
    next = to + 1;
  }
  if (next < CLUSTER_SLOTS) gaps.push([next, CLUSTER_SLOTS - 1]);
  return gaps;
}

function protocolError(what: string, detail: unknown): RfError {
  return new RfError('RF_PROTOCOL', `unexpected ${what} reply: ${String(detail).slice(0, 200)}`, {
    details: { reply: String(detail).slice(0, 200) },
  });
}

/** A RESP2 flat `[name, value, name, value, …]` array (or a RESP3 map) as a Map by name. */
function fields(reply: unknown, what: string): Map<string, unknown> {
  if (reply instanceof Map) return new Map([...reply].map(([k, v]) => [String(k), v]));
  if (!Array.isArray(reply) || reply.length % 2 !== 0) throw protocolError(what, reply);
  const out = new Map<string, unknown>();
  for (let i = 0; i < reply.length; i += 2) out.set(String(reply[i]), reply[i + 1]);
  return out;
}

function slotNumber(v: unknown, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n >= CLUSTER_SLOTS) throw protocolError(what, v);
  return n;
}

function nodeId(v: unknown, what: string): string {
  const id = String(v);
  if (!NODE_ID.test(id)) throw protocolError(what, v);
  return id;
}

function pickMaster(nodes: ClusterNode[]): ClusterNode | null {
  return nodes.find((n) => n.role === 'master' && n.health !== 'failed') ?? null;
}

/**
 * The reply of CLUSTER SHARDS (Redis 7.0+, cluster.c addShardReplyForClusterShards): per shard
 * `slots` as a flat list of range bounds and `nodes`, each with id, ip, endpoint, port, role and
 * health ("online", "failed", "loading").
 */
export function parseClusterShards(reply: unknown): ShardView[] {
  if (!Array.isArray(reply)) throw protocolError('CLUSTER SHARDS', reply);
  return reply.map((entry) => {
    const shard = fields(entry, 'CLUSTER SHARDS');
    const bounds = shard.get('slots');
    const rawNodes = shard.get('nodes');
    if (!Array.isArray(bounds) || bounds.length % 2 !== 0 || !Array.isArray(rawNodes))
      throw protocolError('CLUSTER SHARDS', entry);
    const slots: SlotRange[] = [];
    for (let i = 0; i < bounds.length; i += 2)
      slots.push([slotNumber(bounds[i], 'CLUSTER SHARDS'), slotNumber(bounds[i + 1], 'slots')]);
    const nodes = rawNodes.map((raw): ClusterNode => {
      const n = fields(raw, 'CLUSTER SHARDS node');
      // `endpoint` is what clients are told to use (cluster-preferred-endpoint-type); "?" when unknown.
      const endpoint = String(n.get('endpoint') ?? '');
      const host = endpoint !== '' && endpoint !== '?' ? endpoint : String(n.get('ip') ?? '');
      const port = Number(n.get('port') ?? n.get('tls-port'));
      const health = String(n.get('health'));
      return {
        id: nodeId(n.get('id'), 'CLUSTER SHARDS node id'),
        host,
        port,
        role: String(n.get('role')) === 'master' ? 'master' : 'replica',
        health: health === 'online' || health === 'loading' ? health : 'failed',
      };
    });
    return { slots: mergeRanges(slots), master: pickMaster(nodes), nodes };
  });
}

/**
 * The text of CLUSTER NODES (cluster.c clusterGenNodeDescription), for servers before 7.0: one
 * line per node, `<id> <ip:port@cport[,hostname]> <flags> <master id|-> <ping> <pong> <epoch>
 * <link> <slot ranges…>`; `[slot->-id]` and `[slot-<-id]` entries are migrations, not ownership.
 */
export function parseClusterNodes(text: string): ShardView[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const parsed = lines.map((line) => {
    const parts = line.trim().split(' ');
    if (parts.length < 8) throw protocolError('CLUSTER NODES', line);
    const [id, address, flagText, masterId] = parts as [string, string, string, string];
    const flags = new Set(flagText.split(','));
    const hostPort = address.split('@')[0] ?? '';
    const colon = hostPort.lastIndexOf(':');
    const node: ClusterNode = {
      id: nodeId(id, 'CLUSTER NODES id'),
      host: hostPort.slice(0, colon),
      port: Number(hostPort.slice(colon + 1)),
      role: flags.has('master') ? 'master' : 'replica',
      health: flags.has('fail') || flags.has('noaddr') ? 'failed' : 'online',
    };
    const slots: SlotRange[] = [];
    for (const s of parts.slice(8)) {
      if (s.startsWith('[')) continue;
      const [a, b] = s.split('-');
      slots.push([slotNumber(a, 'CLUSTER NODES'), slotNumber(b ?? a, 'CLUSTER NODES')]);
    }
    return { node, masterId: masterId === '-' ? null : masterId, slots };
  });
  const shards = new Map<string, { slots: SlotRange[]; nodes: ClusterNode[] }>();
  for (const p of parsed) {
    if (p.node.role !== 'master') continue;
    shards.set(p.node.id, { slots: p.slots, nodes: [p.node] });
  }
  for (const p of parsed) {
    if (p.node.role === 'master') continue;
    const shard = p.masterId === null ? undefined : shards.get(p.masterId);
    // A replica whose master is not listed (a handshake in progress) belongs to no shard yet.
    shard?.nodes.push(p.node);
  }
  return [...shards.values()].map((s) => ({
    slots: mergeRanges(s.slots),
    master: pickMaster(s.nodes),
    nodes: s.nodes,
  }));
}

/** The topology as one node sees it: CLUSTER SHARDS, or CLUSTER NODES where that is unknown. */
export async function readTopology(client: RedisClient): Promise<Topology> {
  const from = describeEndpoint(client.endpoint);
  try {
    return {
      shards: parseClusterShards(await client.call('CLUSTER', 'SHARDS')),
      from,
      via: 'CLUSTER SHARDS',
    };
  } catch (err) {
    if (!(err instanceof RedisReplyError)) throw err;
    if (err.prefix === 'NOPERM') throw noPermission(from, 'CLUSTER SHARDS', `-${err.message}`);
    if (/cluster support disabled/i.test(err.message)) throw notCluster(from, err);
    if (!/unknown subcommand/i.test(err.message)) throw refused(from, err);
  }
  try {
    const text = String(await client.call('CLUSTER', 'NODES'));
    return { shards: parseClusterNodes(text), from, via: 'CLUSTER NODES' };
  } catch (err) {
    if (err instanceof RedisReplyError && err.prefix === 'NOPERM')
      throw noPermission(from, 'CLUSTER NODES', `-${err.message}`);
    if (err instanceof RedisReplyError) throw refused(from, err);
    throw err;
  }
}

function notCluster(from: string, cause: Error): RfError {
  return new RfError(
    'RF_NOT_CLUSTER',
    `${from} is not a cluster node (cluster support is disabled)`,
    {
      details: { node: from },
      hint: 'archive a standalone master with rf listen without --cluster (give --source the master)',
      cause,
    },
  );
}

function refused(from: string, cause: Error): RfError {
  return new RfError(
    'RF_CLUSTER',
    `${from} refused CLUSTER SHARDS and CLUSTER NODES: ${cause.message}`,
    {
      details: { node: from, error: cause.message },
      hint: 'rf needs CLUSTER SHARDS or CLUSTER NODES on every node: `rf doctor` prints the ACL line',
      cause,
    },
  );
}

/**
 * The topology from the first of `seeds` that answers: the seed the operator gave may be the node
 * that died, so the caller passes every node seen so far. A node that is not in cluster mode, or
 * refuses the commands, is an answer too (the operator pointed at the wrong thing): it stops the
 * search rather than being skipped.
 */
export async function discoverTopology(
  seeds: readonly RedisEndpoint[],
  options: { timeoutMs: number; tlsOptions?: import('node:tls').ConnectionOptions },
): Promise<Topology> {
  if (seeds.length === 0) throw new TypeError('discoverTopology needs at least one seed');
  const unreachable: string[] = [];
  let lastError: unknown;
  for (const seed of seeds) {
    let client: RedisClient;
    try {
      client = await RedisClient.connect(seed, {
        timeoutMs: options.timeoutMs,
        ...(options.tlsOptions ? { tlsOptions: options.tlsOptions } : {}),
      });
    } catch (err) {
      unreachable.push(describeEndpoint(seed));
      lastError = err;
      continue;
    }
    try {
      return await readTopology(client);
    } finally {
      await client.close().catch(() => undefined);
    }
  }
  throw new RfError('RF_CONNECT', `no cluster node answered (tried ${unreachable.join(', ')})`, {
    details: { tried: unreachable },
    hint: 'check that at least one node of the cluster is up and reachable from here',
    cause: lastError,
  });
}
