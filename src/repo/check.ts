import { isRfError } from '../errors.js';
import type { RepoCache } from './cache.js';
import {
  type ClusterObject,
  clusterNames,
  clusterObjectNames,
  parseClusterObject,
} from './cluster-object.js';
import { names } from './layout.js';

/** What `rf verify --repo` finds wrong with the bucket itself, object by object. */
export interface BucketProblem {
  kind: 'missing' | 'extra' | 'damaged';
  object: string;
  why: string;
}

/**
 * Checks every object the manifests name against the sha256 of its stored bytes recorded when
 * it was written, fetching each whole one into the cache (so the archive checks that follow read
 * it, and find a damaged one's records missing), and lists what is missing, and what lies in the archive's folders that no manifest
 * names: an object from another archive copied in, or one an interrupted upload left.
 */
export async function checkBucket(cache: RepoCache): Promise<BucketProblem[]> {
  const problems: BucketProblem[] = [];
  for (const [src, m] of cache.manifests) {
    const present = new Set<string>();
    for (const under of ['seg/', 'aof/', 'file/']) {
      for await (const o of cache.client.list(`${src}/${under}`)) present.add(o.name);
    }
    const named = new Set<string>();
    const fetch = async (name: string, load: () => Promise<void>) => {
      named.add(name);
      if (!present.has(name)) {
        problems.push({
          kind: 'missing',
          object: name,
          why: 'the manifest names it; the bucket does not hold it',
        });
        return;
      }
      try {
        await load();
      } catch (err) {
        if (!isRfError(err) || !['RF_CHECKSUM', 'RF_CORRUPT'].includes(err.code)) throw err;
        cache.forget(name);
        problems.push({ kind: 'damaged', object: name, why: err.message });
      }
    };
    for (const p of m.packs) await fetch(p.name, () => cache.fetchPacks([p]));
    for (const f of m.files) await fetch(f.name, () => cache.fetchFile(f));
    for (const name of present) {
      if (!named.has(name)) {
        problems.push({
          kind: 'extra',
          object: name,
          why: 'no manifest names it: an object from another archive, or one an interrupted upload left',
        });
      }
    }
  }
  for (const c of cache.clusters.values()) problems.push(...(await checkCluster(cache, c)));
  return problems.sort((a, b) => a.object.localeCompare(b.object));
}

/**
 * A cluster's own objects: each one reads whole (with a key: authenticates under its name), and
 * every shard manifest the newest one was written after is in the bucket, at that seq or later.
 */
async function checkCluster(cache: RepoCache, c: ClusterObject): Promise<BucketProblem[]> {
  const problems: BucketProblem[] = [];
  for (const { name } of await clusterObjectNames(cache.client, c.name)) {
    try {
      // The key was proved on the newest one when the cache opened: a failure here is damage.
      const content = await cache.client.get(name, false);
      if (content !== undefined) parseClusterObject(content, name);
    } catch (err) {
      if (!isRfError(err) || !['RF_CHECKSUM', 'RF_CORRUPT'].includes(err.code)) throw err;
      problems.push({ kind: 'damaged', object: name, why: err.message });
    }
  }
  const newest = clusterNames.object(c.name, c.seq);
  for (const shard of c.shards) {
    if (shard.manifestSeq === 0) continue;
    const held = cache.manifests.get(shard.source)?.seq ?? 0;
    if (held < shard.manifestSeq) {
      problems.push({
        kind: 'missing',
        object: names.manifest(shard.source, shard.manifestSeq),
        why: `the cluster record ${newest} was written after it; the newest manifest of ${shard.source} in the bucket is ${held === 0 ? 'none' : `seq ${held}`}`,
      });
    }
  }
  return problems;
}
