import { MIGRATE_WINDOW_MS } from '../restore/cluster-migrating.js';
import { rangesOf } from '../restore/cluster-out.js';
import { planRestore } from '../restore/locate.js';
import { chooseTimeline } from '../restore/plan.js';
import { chooseFrom, latestInstant, type RestoreFrom } from '../restore/prepare.js';
import { Archive } from '../store/archive.js';
import { type ClusterRecord, clusterRestorable } from '../store/cluster.js';
import type { KvReader } from '../store/store.js';
import { indexSource } from '../store/summary.js';
import { resolveTime } from '../time.js';
import { RepoCache } from './cache.js';
import type { RepoClient } from './client.js';
import { clusterObjectNames, recordFromBucket } from './cluster-object.js';

/**
 * What a restore needs from the bucket: the one base and the stream packs from it to the
 * target time (or, from the AOF record, its packs and bases). The restore's own planner has the
 * last word: when it picks an older base than the first guess, the packs back to that base are
 * fetched too. A plan that cannot be made (a time in a gap, say) fetches nothing more: the
 * restore then says why, as it would from a local store.
 *
 * The stream packs go on downloading after this returns, and the replay reads each as it
 * arrives. `settle` waits for them all first: a destination that cannot be undone (a running
 * Redis) must not be half loaded when a pack turns out to be missing or damaged; a directory is
 * staged and renamed into place at the end, so it streams.
 */
export async function fetchForRestore(
  cache: RepoCache,
  name: string,
  until: string,
  options: { tz: string; now: number; from: RestoreFrom | 'auto'; settle: boolean },
): Promise<void> {
  await wantForRestore(cache, name, until, options);
  if (options.settle) await cache.settle();
}

async function wantForRestore(
  cache: RepoCache,
  name: string,
  until: string,
  options: { tz: string; now: number; from: RestoreFrom | 'auto' },
): Promise<void> {
  const manifest = cache.manifests.get(name);
  if (manifest === undefined) return;
  const kv = cache.reader();
  const archive = new Archive(kv);
  const from = await chooseFrom(options.from, archive, kv, name);
  if (from === 'aof') {
    await cache.fetchPacks(manifest.packs.filter((p) => p.kind === 'aof'));
    for (const f of manifest.files) if (f.path.startsWith('aof-bases/')) await cache.fetchFile(f);
    return;
  }
  const record = await archive.source(name);
  if (record === undefined) return;
  const latest = await latestInstant(from, archive, kv, name);
  let target: number;
  let timeline: number;
  let guess: number;
  try {
    target = resolveTime(until, {
      now: options.now,
      tz: options.tz,
      ...(latest === undefined ? {} : { latest }),
    }).ms;
    const index = await indexSource(archive, record);
    const tl = chooseTimeline(index, target);
    timeline = tl.id;
    const offsets = index.bases
      .filter((b) => b.timeline === tl.id && b.takenAt <= target)
      .map((b) => b.offset);
    guess = offsets.length === 0 ? tl.baseOffset : Math.max(...offsets);
  } catch {
    return;
  }
  const packsFrom = (offset: number) => {
    const wanted = [];
    for (const p of manifest.packs) {
      if (p.kind !== 'seg' || p.group !== timeline || p.end <= offset) continue;
      wanted.push(p);
      // The pack holding the first write at or after T is the last one the cut reads.
      if (p.lastTime >= target) break;
    }
    // The planner reads the last of them first (the segment the cut falls in); the replay then
    // reads them in order.
    const last = wanted.pop();
    cache.want(last === undefined ? wanted : [last, ...wanted]);
  };
  packsFrom(guess);
  let plan: Awaited<ReturnType<typeof planRestore>>;
  try {
    plan = await planRestore(archive, name, target);
  } catch {
    return;
  }
  if (plan.base.offset < guess) packsFrom(plan.base.offset);
  const file = manifest.files.find((f) => f.path === plan.base.file);
  if (file !== undefined) await cache.fetchFile(file);
}

/** Everything the manifests name: what `rf verify` reads. */
export async function fetchAll(cache: RepoCache): Promise<void> {
  for (const m of cache.manifests.values()) {
    await cache.fetchPacks(m.packs);
    for (const f of m.files) await cache.fetchFile(f);
  }
}

/** What `rf log` reads: the stream packs whose times overlap [since, until] (null: open). */
export async function fetchForLog(
  cache: RepoCache,
  name: string,
  since: number | null,
  until: number | null,
): Promise<void> {
  const manifest = cache.manifests.get(name);
  if (manifest === undefined) return;
  await cache.fetchPacks(
    manifest.packs.filter(
      (p) =>
        p.kind === 'seg' &&
        (since === null || p.lastTime >= since) &&
        (until === null || p.firstTime <= until),
    ),
  );
}

/** A cluster's archive read from the bucket: its record, a reader for each restore step, close(). */
export interface ClusterFromRepo {
  cache: RepoCache;
  cluster: ClusterRecord;
  /** The cache's archive; closing it does not close the cache (a cluster restore opens it often). */
  open: () => Promise<KvReader>;
  close: () => Promise<void>;
}

/**
 * The cluster `name` names in the bucket, opened with every shard's manifest, or undefined when
 * the bucket holds no cluster of that name (one listing, so a source's restore pays little).
 */
export async function openClusterFromRepo(
  client: RepoClient,
  name: string,
): Promise<ClusterFromRepo | undefined> {
  if ((await clusterObjectNames(client, name)).length === 0) return undefined;
  const cache = await RepoCache.open(client, name);
  const object = cache.clusters.get(name);
  if (object === undefined) {
    await cache.close();
    return undefined;
  }
  const kv = cache.reader();
  return {
    cache,
    cluster: recordFromBucket(object),
    open: async () => ({
      dir: kv.dir,
      get: (key) => kv.get(key),
      entries: (range) => kv.entries(range),
      close: async () => undefined,
    }),
    close: () => cache.close(),
  };
}

/**
 * What a cluster restore at `until` needs from the bucket: for every shard what its own restore
 * at that instant needs, and the stream packs of the minute before it, where a MIGRATE still
 * under way at T is found (cluster-migrating.ts). `until` is resolved as the cluster restore
 * resolves it (latest: where every shard can restore); a time that cannot be resolved fetches
 * nothing, and the restore then says why.
 */
export async function fetchForCluster(
  from: ClusterFromRepo,
  until: string,
  options: { tz: string; now: number; from: RestoreFrom | 'auto'; settle: boolean },
): Promise<void> {
  const { cache, cluster } = from;
  const kv = await from.open();
  let t: number;
  try {
    const latest = clusterRestorable(cluster, await rangesOf(kv, cluster)).at(-1)?.until;
    t = resolveTime(until, {
      now: options.now,
      tz: options.tz,
      ...(latest === undefined ? {} : { latest }),
    }).ms;
  } catch {
    return;
  }
  for (const shard of cluster.shards) {
    await wantForRestore(cache, shard.source, `@${t / 1000}`, options);
    const m = cache.manifests.get(shard.source);
    if (m === undefined) continue;
    cache.want(
      m.packs.filter(
        (p) => p.kind === 'seg' && p.lastTime >= t - MIGRATE_WINDOW_MS && p.firstTime <= t,
      ),
    );
  }
  if (options.settle) await cache.settle();
}
