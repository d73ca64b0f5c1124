import { promises as fs } from 'node:fs';
import path from 'node:path';
import { RfError } from '../errors.js';
import { Archive } from '../store/archive.js';
import {
  type ClusterRecord,
  clusterRestorable,
  ownersAt,
  type SlotOwnership,
  type SlotRanges,
  type TimeRange,
} from '../store/cluster.js';
import type { KvReader } from '../store/store.js';
import { indexSource } from '../store/summary.js';
import { isoUtc, type ResolvedTime, resolveTime } from '../time.js';
import { keysInFlight } from './cluster-migrating.js';
import { type RestoreOptions, type RestoreResult, restore } from './restore.js';
import { checkOutDir } from './write-dir.js';

const CLUSTER_SLOTS = 16384;

export interface ClusterOutOptions
  extends Pick<RestoreOptions, 'open' | 'tz' | 'now' | 'from' | 'acceptImprecise' | 'onResolved'> {
  cluster: ClusterRecord;
  until: string;
  dir: string;
}

export interface ClusterOutResult {
  until: ResolvedTime;
  shards: Array<{ id: string; dir: string; slots: SlotRanges; result: RestoreResult }>;
  manifest: string;
}

/** Each shard's restorable ranges, by shard id (a shard with nothing archived yet: none). */
export async function rangesOf(
  kv: KvReader,
  cluster: ClusterRecord,
): Promise<Map<string, TimeRange[]>> {
  const archive = new Archive(kv);
  const out = new Map<string, TimeRange[]>();
  for (const s of cluster.shards) {
    const source = await archive.source(s.source);
    out.set(s.id, source === undefined ? [] : (await indexSource(archive, source)).restorable);
  }
  return out;
}

/**
 * The shards a restore at `t` reads: those that owned slots at `t` by the record, and every other
 * one whose archive reaches `t`. The record is read from the topology every few seconds, so a
 * shard that received slots shortly before `t` may not be an owner in it yet (or not until after
 * the restore ran); its stream holds what it received. A shard that owns nothing holds nothing:
 * MIGRATE deleted what it gave away, and it restores empty.
 */
function shardsAt(
  cluster: ClusterRecord,
  owners: SlotOwnership,
  ranges: Map<string, TimeRange[]>,
  t: number,
): string[] {
  const covers = (id: string) => (ranges.get(id) ?? []).some((r) => r.from <= t && t <= r.until);
  return cluster.shards
    .map((s) => s.id)
    .filter((id) => owners.owners[id] !== undefined || covers(id));
}

/** The slot ranges no shard owns in `owners`. */
function unownedSlots(owners: Record<string, SlotRanges>): SlotRanges {
  const owned = Object.values(owners)
    .flat()
    .sort((x, y) => x[0] - y[0]);
  const out: SlotRanges = [];
  let next = 0;
  for (const [a, b] of owned) {
    if (a > next) out.push([next, a - 1]);
    next = Math.max(next, b + 1);
  }
  if (next < CLUSTER_SLOTS) out.push([next, CLUSTER_SLOTS - 1]);
  return out;
}

function slotCount(owners: Record<string, SlotRanges>): number {
  return Object.values(owners)
    .flat()
    .reduce((n, [a, b]) => n + b - a + 1, 0);
}

/**
 * The instant a cluster restore cuts every shard at, and who owned which slots then. A T before
 * rf first read the topology, or one at which some slot had no owner, is refused: that part of
 * the keyspace was not being written anywhere rf could see.
 */
export async function clusterMoment(
  options: Pick<ClusterOutOptions, 'open' | 'tz' | 'now' | 'onResolved' | 'cluster' | 'until'>,
): Promise<{
  until: ResolvedTime;
  owners: SlotOwnership;
  shards: string[];
  drops: Map<string, Buffer[]>;
}> {
  const { cluster } = options;
  const kv = await options.open();
  try {
    const ranges = await rangesOf(kv, cluster);
    // The cluster's restorable end: where the shards that owned slots then can all restore.
    const latest = clusterRestorable(cluster, ranges).at(-1)?.until;
    const until = resolveTime(options.until, {
      now: options.now,
      tz: options.tz,
      ...(latest === undefined ? {} : { latest }),
    });
    options.onResolved?.(until);
    const owners = ownersAt(cluster, until.ms);
    if (owners === undefined) {
      throw new RfError(
        'RF_TIME_OUT_OF_RANGE',
        cluster.retention === undefined
          ? `${isoUtc(until.ms)} is before rf first read the topology of the cluster ${cluster.name}`
          : `${isoUtc(until.ms)} is before the retained window of the cluster ${cluster.name}, which starts at ${isoUtc(cluster.slots[0]?.at ?? cluster.retention.windowStart)}`,
        {
          details: { cluster: cluster.name, until: isoUtc(until.ms) },
          hint: `run \`rf info --name ${cluster.name}\` to see where every shard can restore`,
        },
      );
    }
    const unowned = unownedSlots(owners.owners);
    if (unowned.length > 0) {
      const text = unowned.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',');
      throw new RfError(
        'RF_SLOTS_UNOWNED',
        `at ${isoUtc(until.ms)} ${CLUSTER_SLOTS - slotCount(owners.owners)} slots of the cluster ${cluster.name} had no owner (${text}): their keys were not served anywhere rf could see`,
        {
          details: { cluster: cluster.name, until: isoUtc(until.ms), slots: unowned },
          hint: `pick a T where every slot had an owner: \`rf info --name ${cluster.name} --json\` lists the slot changes (slotChanges)`,
        },
      );
    }
    return {
      until,
      owners,
      shards: shardsAt(cluster, owners, ranges, until.ms),
      drops: await keysInFlight(new Archive(kv), cluster, until.ms),
    };
  } finally {
    await kv.close();
  }
}

/**
 * One shard's ordinary restore at the cluster's instant `at` (`@<seconds>`), with the keys in
 * flight at that instant that another shard's copy holds left out (`drops`, by source).
 */
export function restoreShardAt(
  options: Pick<ClusterOutOptions, 'tz' | 'now' | 'from' | 'acceptImprecise'>,
  source: string,
  at: string,
  into: RestoreOptions['into'],
  drops: Map<string, Buffer[]>,
  open: RestoreOptions['open'],
): Promise<RestoreResult> {
  return restore({
    open,
    name: source,
    until: at,
    tz: options.tz,
    now: options.now,
    from: options.from,
    into,
    dropKeys: drops.get(source) ?? [],
    ...(options.acceptImprecise === undefined ? {} : { acceptImprecise: options.acceptImprecise }),
  });
}

/**
 * `rf restore --out DIR` of a cluster: every shard that owned slots at T restored at that same T
 * (each cut at a transaction boundary by the ordinary restore) into `DIR/<shard id>`, and
 * `DIR/cluster.json` naming them.
 */
export async function restoreClusterOut(options: ClusterOutOptions): Promise<ClusterOutResult> {
  const { cluster, dir } = options;
  await checkOutDir(dir);
  const { until, owners, shards: ids, drops } = await clusterMoment(options);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  // The same instant for every shard, to the millisecond.
  const at = `@${until.ms / 1000}`;
  // Every shard at once, over one opening of the store (LevelDB admits one opener, and the
  // daemon's socket answers requests in any order): the restore takes about as long as the
  // largest shard's, not the sum.
  const kv = await options.open();
  const borrowed: KvReader = {
    dir: kv.dir,
    get: (key) => kv.get(key),
    entries: (range) => kv.entries(range),
    close: async () => undefined,
  };
  const selected = cluster.shards.filter((s) => ids.includes(s.id));
  let settled: PromiseSettledResult<ClusterOutResult['shards'][number]>[];
  try {
    settled = await Promise.allSettled(
      selected.map(async (shard) => {
        const shardDir = path.join(dir, shard.id);
        const result = await restoreShardAt(
          options,
          shard.source,
          at,
          { kind: 'dir', dir: shardDir },
          drops,
          async () => borrowed,
        );
        return { id: shard.id, dir: shardDir, slots: owners.owners[shard.id] ?? [], result };
      }),
    );
  } finally {
    await kv.close();
  }
  const failed = settled.find((r) => r.status === 'rejected');
  // Without cluster.json the directory is an unfinished restore, whatever the shards wrote.
  if (failed !== undefined) throw failed.reason;
  const shards = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const manifest = path.join(dir, 'cluster.json');
  const body = {
    until: isoUtc(until.ms),
    cluster: cluster.name,
    shards: shards.map((s) => ({
      id: s.id,
      dir: s.id,
      slots: s.slots,
      lastWrite: s.result.lastWrite === null ? null : isoUtc(s.result.lastWrite.time),
    })),
  };
  // Written last, whole: a directory without it is an unfinished restore.
  await fs.writeFile(`${manifest}.tmp`, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
  await fs.rename(`${manifest}.tmp`, manifest);
  return { until, shards, manifest };
}
