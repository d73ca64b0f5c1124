import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RfError } from '../errors.js';
import { keys, startFromTimeKey } from '../store/keys.js';
import { json, type KvReader, Store } from '../store/store.js';
import type { SegmentMeta } from '../store/types.js';
import type { RepoClient } from './client.js';
import { damaged, open } from './crypt.js';
import { decodePack, type FileEntry, type Manifest, type PackEntry } from './layout.js';
import { latestManifest } from './manifests.js';

/**
 * An archive read from the bucket alone: a private store in a temporary directory, filled with
 * the manifest's records and, on demand, the packs and base files a command needs. Every
 * command then reads it with the readers it uses on a local store: one way to read an archive.
 * The directory is removed by close().
 */
export class RepoCache {
  private readonly fetched = new Set<string>();
  /** Bytes fetched from the bucket so far, and those asked for, for a progress line. */
  fetchedBytes = 0;
  wantedBytes = 0;

  private constructor(
    readonly client: RepoClient,
    readonly store: Store,
    readonly manifests: Map<string, Manifest>,
  ) {}

  /** Opens the newest manifest of each source (`only`: just that one) into a new private store. */
  static async open(client: RepoClient, only: string | undefined): Promise<RepoCache> {
    const sources = only === undefined ? await sourcesIn(client) : [only];
    const manifests = new Map<string, Manifest>();
    for (const src of sources) {
      const m = await latestManifest(client, src);
      if (m !== undefined) manifests.set(src, m);
    }
    if (manifests.size === 0) {
      throw new RfError(
        'RF_STORE_MISSING',
        `no rf archive${only === undefined ? '' : ` of ${only}`} in ${client.location.url}`,
        {
          details: { repo: client.location.url, ...(only === undefined ? {} : { source: only }) },
          hint: 'check --repo (and --name); `rf listen --repo …` writes one',
        },
      );
    }
    const dir = await fs.mkdtemp(path.join(tmpdir(), 'rf-repo-cache-'));
    const store = await Store.open(path.join(dir, 'store'), { create: true });
    const cache = new RepoCache(client, store, manifests);
    for (const m of manifests.values()) {
      await store.batch(
        m.kv.map(([key, value]) => ({ type: 'put', key, value: Buffer.from(value, 'base64') })),
      );
    }
    return cache;
  }

  get dir(): string {
    return this.store.dir;
  }

  /** The private store as a reader whose close() also removes the cache. */
  reader(): KvReader {
    const { store } = this;
    return {
      dir: store.dir,
      get: (key) => store.get(key),
      entries: (range) => store.entries(range),
      close: () => this.close(),
    };
  }

  /** Fetches these packs (once each) into the private store, checking what was stored. */
  async fetchPacks(packs: readonly PackEntry[]): Promise<void> {
    for (const p of packs) if (!this.fetched.has(p.name)) this.wantedBytes += p.stored;
    for (const p of packs) {
      if (this.fetched.has(p.name)) continue;
      const stored = await this.client.getStored(p.name);
      if (stored === undefined) throw missing(this.client, p.name);
      this.fetchedBytes += stored.length;
      if (createHash('sha256').update(stored).digest('hex') !== p.storedSha256) {
        throw damaged(p.name, 'its bytes do not match the checksum recorded when it was written');
      }
      const records = await this.unpruned(
        p,
        decodePack(open(this.client.key, p.name, stored, false), p.name),
      );
      await this.store.batch(records.map(([key, value]) => ({ type: 'put', key, value })));
      this.fetched.add(p.name);
    }
  }

  /**
   * A pack's records less those of segments the store's retention had pruned when the manifest
   * was written: a pack the window still needs part of stays whole in the bucket, but the archive
   * read from it must be the one the store held.
   */
  private async unpruned(p: PackEntry, records: [string, Buffer][]): Promise<[string, Buffer][]> {
    if (p.kind !== 'seg') return records;
    const src = p.name.slice(0, p.name.indexOf('/'));
    const mark = await this.store.get(keys.pruned(src, p.group));
    if (mark === undefined) return records;
    const upTo = json.decode<number>(mark);
    const gone = new Set<number>();
    const segPrefix = keys.segmentPrefix(src, p.group);
    for (const [key, value] of records) {
      if (key.startsWith(segPrefix) && json.decode<SegmentMeta>(value).end <= upTo) {
        gone.add(startFromTimeKey(key));
      }
    }
    // Every record of a segment (meta, data, time index) ends with the segment's start offset.
    return records.filter(([key]) => !gone.has(startFromTimeKey(key)));
  }

  /** Fetches a base file to where the store's records expect it. */
  async fetchFile(f: FileEntry): Promise<void> {
    if (this.fetched.has(f.name)) return;
    this.wantedBytes += f.stored;
    const out = path.join(this.store.dir, f.path);
    await fs.mkdir(path.dirname(out), { recursive: true });
    const storedSha = await this.client.download(f.name, `${out}.part`, out);
    if (storedSha !== f.storedSha256) {
      await fs.rm(out, { force: true });
      throw damaged(f.name, 'its bytes do not match the checksum recorded when it was written');
    }
    this.fetchedBytes += f.stored;
    this.fetched.add(f.name);
  }

  async close(): Promise<void> {
    await this.store.close().catch(() => undefined);
    this.client.close();
    await fs.rm(path.dirname(this.store.dir), { recursive: true, force: true });
  }
}

function missing(client: RepoClient, name: string): RfError {
  return new RfError('RF_CORRUPT', `the bucket object ${name} is missing: the manifest names it`, {
    details: { repo: client.location.url, object: name },
    hint: 'run `rf verify --repo …` to list every missing or damaged object',
  });
}

/** The sources with an archive under the prefix: its top-level folders. */
async function sourcesIn(client: RepoClient): Promise<string[]> {
  const found = new Set<string>();
  for await (const o of client.list('')) {
    const m = /^([^/]+)\/manifest\//.exec(o.name);
    if (m !== null) found.add(m[1]!);
  }
  return [...found].sort();
}
