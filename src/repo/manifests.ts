import type { BucketHolds } from '../store/offload.js';
import type { RepoClient } from './client.js';
import { type Manifest, names, parseManifest, seqOfManifest } from './layout.js';

/** The manifests of a source in the bucket, oldest first. */
export function manifestNames(
  client: RepoClient,
  src: string,
): Promise<{ name: string; seq: number }[]> {
  return numbered(client, names.manifestPrefix(src), seqOfManifest);
}

/** The objects under `prefix` that `seqOf` numbers (manifests, cluster records), oldest first. */
export async function numbered(
  client: RepoClient,
  prefix: string,
  seqOf: (name: string) => number | undefined,
): Promise<{ name: string; seq: number }[]> {
  const found: { name: string; seq: number }[] = [];
  for await (const o of client.list(prefix)) {
    const seq = seqOf(o.name);
    if (seq !== undefined) found.push({ name: o.name, seq });
  }
  return found.sort((a, b) => a.seq - b.seq);
}

/**
 * The newest manifest of a source, or undefined when the bucket holds none. It is read first,
 * so a missing or wrong key is told as RF_REPO_KEY here.
 */
export async function latestManifest(
  client: RepoClient,
  src: string,
): Promise<Manifest | undefined> {
  const all = await manifestNames(client, src);
  const newest = all[all.length - 1];
  if (newest === undefined) return undefined;
  const content = await client.get(newest.name, true);
  return content === undefined ? undefined : parseManifest(content, newest.name);
}

/** What a manifest says the bucket holds, as `--local-retain` reads it. */
export function holdsOf(m: Manifest, repo: string): BucketHolds {
  const segmentsEnd = new Map<number, number>();
  const aofEnd = new Map<number, number>();
  for (const p of m.packs) {
    const ends = p.kind === 'seg' ? segmentsEnd : aofEnd;
    ends.set(p.group, Math.max(p.end, ends.get(p.group) ?? -1));
  }
  return { repo, segmentsEnd, files: new Set(m.files.map((f) => f.path)), aofEnd };
}
