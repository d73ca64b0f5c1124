import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RfError } from '../errors.js';
import { writeCluster } from '../store/cluster.js';
import { keys, startFromTimeKey } from '../store/keys.js';
import { json, type KvReader, Store } from '../store/store.js';
import type { SegmentMeta } from '../store/types.js';
import type { RepoClient } from './client.js';
import { type ClusterObject, latestClusterObject, recordFromBucket } from './cluster-object.js';
import { damaged, open } from './crypt.js';
import { decodePack, type FileEntry, type Manifest, type PackEntry } from './layout.js';
import { latestManifest } from './manifests.js';
import { checkSpans, PackedReader, type PackState, packSpans, type Slot } from './packed.js';

/**
 * An archive read from the bucket alone: a private store in a temporary directory, filled with
 * the manifest's records and, on demand, the packs and base files a command needs. Every
 * command then reads it with the readers it uses on a local store: one way to read an archive.
 * The directory is removed by close().
 */
export class RepoCache {
  private readonly fetched = new Set<string>();
  private readonly arriving: ArrivingPack[] = [];
  private readonly queue: ArrivingPack[] = [];
  private running = 0;
  private spill: FileHandle | undefined;
  private spilling: Promise<FileHandle> | undefined;
  private spillEnd = 0;
  /** Bytes fetched from the bucket so far, and those asked for, for a progress line. */
  fetchedBytes = 0;
  wantedBytes = 0;

  private constructor(
    readonly client: RepoClient,
    readonly store: Store,
    readonly manifests: Map<string, Manifest>,
    /** The newest record of each cluster in the bucket, by name. */
    readonly clusters: Map<string, ClusterObject>,
  ) {}

  /**
   * Opens the newest manifest of each source (`only`: just that one, or every shard of the
   * cluster so named) into a new private store, with each cluster's newest record.
   */
  static async open(client: RepoClient, only: string | undefined): Promise<RepoCache> {
    const found =
      only === undefined ? await archivesIn(client) : { sources: [only], clusters: [only] };
    const clusters = new Map<string, ClusterObject>();
    for (const name of found.clusters) {
      const c = await latestClusterObject(client, name);
      if (c !== undefined) clusters.set(name, c);
    }
    const cluster = only === undefined ? undefined : clusters.get(only);
    const sources = cluster?.record.shards.map((s) => s.source) ?? found.sources;
    const manifests = new Map<string, Manifest>();
    for (const src of sources) {
      const m = await latestManifest(client, src);
      if (m !== undefined) manifests.set(src, m);
    }
    if (manifests.size === 0 && clusters.size === 0) {
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
    const cache = new RepoCache(client, store, manifests, clusters);
    for (const m of manifests.values()) {
      await store.batch(
        m.kv.map(([key, value]) => ({ type: 'put', key, value: Buffer.from(value, 'base64') })),
      );
    }
    for (const c of clusters.values()) await writeCluster(store, recordFromBucket(c));
    return cache;
  }

  get dir(): string {
    return this.store.dir;
  }

  /** The directory the cache lives in, beside the private store. */
  private get tmp(): string {
    return path.dirname(this.store.dir);
  }

  /** The archive as a command reads it (packed.ts); its close() also removes the cache. */
  reader(): KvReader {
    return new PackedReader(
      this.store,
      () => this.arriving,
      async (at, length) => {
        const out = Buffer.allocUnsafe(length);
        await this.spill!.read(out, 0, length, at);
        return out;
      },
      () => this.close(),
    );
  }

  /**
   * Starts fetching these packs (once each) in the background, at most {@link PARALLEL} at a
   * time in the order given; a read that reaches one not yet started starts it at once. A read
   * of a pack that is missing or damaged fails with the error that says so.
   */
  want(packs: readonly PackEntry[]): void {
    for (const p of packs) {
      if (this.fetched.has(p.name)) continue;
      this.fetched.add(p.name);
      this.wantedBytes += p.stored;
      const pack = new ArrivingPack(p, () => this.arrive(p));
      this.arriving.push(pack);
      this.queue.push(pack);
    }
    this.pump();
  }

  /** Fetches these packs (once each) and waits until every one has arrived and been checked. */
  async fetchPacks(packs: readonly PackEntry[]): Promise<void> {
    this.want(packs);
    const names = new Set(packs.map((p) => p.name));
    await Promise.all(this.arriving.filter((a) => names.has(a.entry.name)).map((a) => a.arrived));
  }

  /**
   * Reads no more of a pack found missing or damaged: the archive read from the cache then
   * lacks its records, as a store that lost them would (what `rf verify` reports on).
   */
  forget(name: string): void {
    const i = this.arriving.findIndex((a) => a.entry.name === name);
    if (i >= 0) this.arriving.splice(i, 1);
  }

  /** Waits for every pack asked for so far: what a destination that cannot be undone needs. */
  async settle(): Promise<void> {
    await Promise.all(this.arriving.map((a) => a.arrived));
  }

  private pump(): void {
    while (this.running < PARALLEL) {
      const next = this.queue.shift();
      if (next === undefined) return;
      if (next.started) continue;
      this.running++;
      void next.settled.finally(() => {
        this.running--;
        this.pump();
      });
      next.start();
    }
  }

  /** Downloads a pack, checks it, and spills its records: the slots a read finds them by. */
  private async arrive(p: PackEntry): Promise<Slot[]> {
    const stored = await this.client.getStored(p.name);
    if (stored === undefined) throw missing(this.client, p.name);
    this.fetchedBytes += stored.length;
    if (createHash('sha256').update(stored).digest('hex') !== p.storedSha256) {
      throw damaged(p.name, 'its bytes do not match the checksum recorded when it was written');
    }
    const content = await open(this.client.key, p.name, stored, false);
    const records = await this.unpruned(p, decodePack(content, p.name));
    const spans = packSpans(p);
    const at = this.spillEnd;
    this.spillEnd += content.length;
    this.spilling ??= fs.open(path.join(this.tmp, 'packs.spill'), 'w+');
    const spill = await this.spilling;
    this.spill = spill;
    await spill.write(content, 0, content.length, at);
    const slots: Slot[] = records.map(([key, value]) => {
      checkSpans(p, spans, key);
      return [key, at + value.byteOffset - content.byteOffset, value.length];
    });
    return slots.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
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
    // No download may still be writing into the directory when it is removed.
    this.queue.length = 0;
    await Promise.all(this.arriving.filter((a) => a.started).map((a) => a.settled));
    await this.spill?.close().catch(() => undefined);
    await this.store.close().catch(() => undefined);
    this.client.close();
    await fs.rm(path.dirname(this.store.dir), { recursive: true, force: true });
  }
}

/** At most this many packs download at once. */
const PARALLEL = 4;

/** A pack asked for: fetched when its turn comes, or at once when a read reaches it first. */
class ArrivingPack implements PackState {
  readonly spans: PackState['spans'];
  started = false;
  private result: Promise<Slot[]> | undefined;
  private release: () => void = () => undefined;
  /** Settles (never rejects) once the pack has arrived or failed. */
  readonly settled: Promise<void>;

  constructor(
    readonly entry: PackEntry,
    private readonly fetch: () => Promise<Slot[]>,
  ) {
    this.spans = packSpans(entry);
    this.settled = new Promise((resolve) => {
      this.release = resolve;
    });
  }

  start(): Promise<Slot[]> {
    if (this.result === undefined) {
      this.started = true;
      this.result = this.fetch();
      this.result.then(this.release, this.release);
    }
    return this.result;
  }

  get arrived(): Promise<Slot[]> {
    return this.start();
  }
}

function missing(client: RepoClient, name: string): RfError {
  return new RfError('RF_CORRUPT', `the bucket object ${name} is missing: the manifest names it`, {
    details: { repo: client.location.url, object: name },
    hint: 'run `rf verify --repo …` to list every missing or damaged object',
  });
}

/** The sources and the clusters with an archive under the prefix: its top-level folders. */
async function archivesIn(client: RepoClient): Promise<{ sources: string[]; clusters: string[] }> {
  const sources = new Set<string>();
  const clusters = new Set<string>();
  for await (const o of client.list('')) {
    const m = /^([^/]+)\/(manifest|cluster)\//.exec(o.name);
    if (m !== null) (m[2] === 'manifest' ? sources : clusters).add(m[1]!);
  }
  return { sources: [...sources].sort(), clusters: [...clusters].sort() };
}
