import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Backoff } from '../backoff.js';
import { isRfError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { BucketHolds } from '../store/offload.js';
import { json, type Store } from '../store/store.js';
import type { RepoClient } from './client.js';
import {
  encodePack,
  type FileEntry,
  type Manifest,
  names,
  type PackEntry,
  repoStatusKey,
} from './layout.js';
import { holdsOf, latestManifest, manifestNames } from './manifests.js';
import { emptyManifest, type PlannedPack, planUpload, prunable, readRecords } from './snapshot.js';

export interface UploaderOptions {
  store: Store;
  source: string;
  client: RepoClient;
  log: Logger;
  /** Objects in flight at once (default 4). */
  concurrency?: number;
  /** About how many stream or AOF bytes go into one pack (default 8 MB). */
  packBytes?: number;
  /** Pause between upload rounds when nothing is waiting (default 1 s). */
  intervalMs?: number;
}

/** What `rf info` and the metrics show of the upload. */
export interface RepoStatus {
  repo: string;
  backlogBytes: number;
  uploadedBytes: number;
  errors: number;
  manifestSeq: number;
  lastManifestAt: number | null;
  lastError: { code: string; message: string; at: number } | null;
}

/**
 * Copies what the store has sealed (segments, AOF chunks, bases) to the bucket, in the
 * background and in order: a round uploads the next packs and files (a few at a time), and
 * only once all of them are in the bucket writes the manifest that names them. A failed round
 * is tried again with backoff; capture never waits on it, the backlog grows instead.
 */
interface ManifestWrite {
  next: Manifest;
  content: Buffer;
  kvText: string;
  /** Objects the manifest no longer names, removed once it is in. */
  dropped: Set<string>;
}

export class RepoUploader {
  private manifest: Manifest | undefined;
  private lastKv = '';
  private stopping = false;
  private readonly wake = new AbortController();
  private running: Promise<void> | null = null;
  private readonly status: RepoStatus;
  private heldUntilMs = 0;
  /** Objects put by a round that failed: named by a later manifest, or removed after it. */
  private readonly unnamed = new Set<string>();
  /**
   * A manifest whose write failed: the bucket may hold it anyway (a lost reply). The next round
   * writes these bytes again first (a no-op if they landed), never new content under its name.
   */
  private unconfirmed: ManifestWrite | null = null;

  constructor(private readonly options: UploaderOptions) {
    this.status = {
      repo: options.client.location.url,
      backlogBytes: 0,
      uploadedBytes: 0,
      errors: 0,
      manifestSeq: 0,
      lastManifestAt: null,
      lastError: null,
    };
  }

  snapshot(): RepoStatus {
    return { ...this.status };
  }

  /**
   * Restores at or after this instant need nothing that is only local: retention may prune
   * before it, never after (nothing is deleted locally before the bucket holds it).
   */
  heldUntil(): number {
    return this.heldUntilMs;
  }

  /** What the bucket's newest manifest names (undefined before it is read): --local-retain reads it. */
  holds(): BucketHolds | undefined {
    const m = this.manifest;
    if (m === undefined) return undefined;
    return holdsOf(m, this.status.repo);
  }

  start(): void {
    this.running ??= Promise.all([this.loop(), this.watch()]).then(() => undefined);
  }

  /**
   * Measures the backlog every second, apart from the rounds: a bucket that hangs holds up a
   * round, not what `rf info` and the metrics say is waiting.
   */
  private async watch(): Promise<void> {
    const { store, source } = this.options;
    while (!this.stopping) {
      try {
        const records = await readRecords(store, source);
        const plan = await planUpload(
          store,
          source,
          records,
          this.manifest ?? emptyManifest(source),
          {
            packBytes: Number.POSITIVE_INFINITY,
            maxPacks: 1,
          },
        );
        this.status.backlogBytes = plan.backlogBytes;
        this.heldUntilMs = plan.heldUntil;
        await this.recordStatus();
      } catch (err) {
        this.options.log.debug({ error: String(err) }, 'repo: could not measure the backlog');
      }
      await sleep(1000, undefined, { signal: this.wake.signal }).catch(() => undefined);
    }
  }

  private async loop(): Promise<void> {
    const backoff = new Backoff(500, 30_000);
    while (!this.stopping) {
      let more = false;
      try {
        more = await this.round(false);
        backoff.reset();
      } catch (err) {
        this.failed(err);
        await sleep(backoff.next(), undefined, { signal: this.wake.signal }).catch(() => undefined);
        continue;
      }
      if (!more) {
        await sleep(this.options.intervalMs ?? 1000, undefined, { signal: this.wake.signal }).catch(
          () => undefined,
        );
      }
    }
  }

  private failed(err: unknown): void {
    const code = isRfError(err) ? err.code : 'RF_INTERNAL';
    const message = err instanceof Error ? err.message : String(err);
    this.status.errors++;
    this.status.lastError = { code, message, at: Date.now() };
    this.recordStatus().catch(() => undefined);
    this.options.log.warn(
      { error: { code, message }, backlogBytes: this.status.backlogBytes },
      'repo: upload failed; will try again',
    );
  }

  /**
   * Stops the background rounds and uploads what is left, for at most `timeoutMs`: what is not
   * in the bucket by then stays in the store and goes up at the next start.
   */
  async finish(timeoutMs: number): Promise<{ complete: boolean; backlogBytes: number }> {
    this.stopping = true;
    this.wake.abort();
    await this.running;
    const deadline = Date.now() + timeoutMs;
    const began = Date.now();
    let complete = false;
    while (Date.now() < deadline) {
      try {
        const more = await raceDeadline(this.round(true), deadline);
        if (more === undefined) break;
        if (!more && this.status.backlogBytes === 0) {
          complete = true;
          break;
        }
      } catch (err) {
        this.failed(err);
        await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
      }
    }
    const result = { complete, backlogBytes: this.status.backlogBytes };
    this.options.log[complete ? 'info' : 'warn'](
      { ...result, ms: Date.now() - began, manifestSeq: this.status.manifestSeq },
      complete
        ? 'repo: every sealed part is in the bucket'
        : 'repo: stopped with parts not yet in the bucket; they go up at the next start',
    );
    return result;
  }

  /** One round; true when more is waiting than one round takes. */
  private async round(final: boolean): Promise<boolean> {
    const { store, source, client } = this.options;
    const concurrency = this.options.concurrency ?? 4;
    if (this.manifest === undefined) {
      this.manifest = (await latestManifest(client, source)) ?? emptyManifest(source);
      this.status.manifestSeq = this.manifest.seq;
      this.lastKv = JSON.stringify(this.manifest.kv);
      await this.removeLeftovers(this.manifest);
    }
    if (this.unconfirmed !== null) await this.writeManifest(this.unconfirmed);
    const manifest = this.manifest;
    const records = await readRecords(store, source);
    const plan = await planUpload(store, source, records, manifest, {
      packBytes: this.options.packBytes ?? 8 * 1024 * 1024,
      maxPacks: concurrency * 4,
    });
    this.status.backlogBytes = plan.backlogBytes;
    this.heldUntilMs = plan.heldUntil;
    const packs: PackEntry[] = [];
    const files: FileEntry[] = [];
    const jobs: (() => Promise<void>)[] = [
      ...plan.files.map((f) => async () => {
        const name = names.file(source, f.path);
        const put = await client.putFile(name, path.join(store.dir, f.path), f.sha256);
        this.unnamed.add(name);
        files.push({ ...f, name, stored: put.storedBytes, storedSha256: put.storedSha256 });
        this.status.uploadedBytes += put.kind === 'written' ? put.storedBytes : 0;
      }),
      ...plan.packs.map((p) => async () => {
        const entry = await this.putPack(p);
        this.unnamed.add(entry.name);
        packs.push(entry);
        this.status.uploadedBytes += entry.stored;
      }),
    ];
    await pool(jobs, concurrency);
    const kv = records.map(([k, v]): [string, string] => [k, v.toString('base64')]);
    const kvText = JSON.stringify(kv);
    const next: Manifest = {
      ...manifest,
      seq: manifest.seq + 1,
      writtenAt: Date.now(),
      kv,
      packs: [...manifest.packs, ...packs].sort(packOrder),
      files: [...manifest.files, ...files],
    };
    const drop = prunable(source, records, next);
    const dropped = new Set([...drop.packs, ...drop.files].map((o) => o.name));
    next.packs = next.packs.filter((p) => !dropped.has(p.name));
    next.files = next.files.filter((f) => !dropped.has(f.name));
    const changed = packs.length + files.length + dropped.size > 0;
    const stale =
      kvText !== this.lastKv && (final || Date.now() - (this.status.lastManifestAt ?? 0) >= 5_000);
    if (changed || stale) {
      await this.writeManifest({
        next,
        content: Buffer.from(JSON.stringify(next)),
        kvText,
        dropped,
      });
    }
    const after = await planUpload(store, source, records, this.manifest, {
      packBytes: Number.POSITIVE_INFINITY,
      maxPacks: 1,
    });
    this.status.backlogBytes = after.backlogBytes;
    this.heldUntilMs = after.heldUntil;
    await this.recordStatus();
    return plan.packs.length >= concurrency * 4;
  }

  /** Writes the manifest naming what the round put (unconfirmed until it answers), then prunes. */
  private async writeManifest(write: ManifestWrite): Promise<void> {
    const { source, client, log } = this.options;
    const { next, dropped } = write;
    this.unconfirmed = write;
    await client.put(names.manifest(source, next.seq), write.content);
    this.unconfirmed = null;
    this.manifest = next;
    this.lastKv = write.kvText;
    this.status.manifestSeq = next.seq;
    this.status.lastManifestAt = next.writtenAt;
    // Only after the manifest that no longer names them: a crash before this leaves objects
    // nothing names, which the next start removes.
    const named = new Set([...next.packs, ...next.files].map((o) => o.name));
    for (const n of this.unnamed) if (!named.has(n)) dropped.add(n);
    this.unnamed.clear();
    if (dropped.size > 0) {
      await client.delete([...dropped]);
      log.info({ objects: dropped.size }, 'repo: retention pruned the bucket');
    }
    await this.removeOldManifests(next.seq);
  }

  /** The status as `rf info` reads it from the store (a record the bucket never gets). */
  private async recordStatus(): Promise<void> {
    const { store, source } = this.options;
    await store.batch([
      { type: 'put', key: repoStatusKey(source), value: json.encode(this.status) },
    ]);
  }

  private async putPack(p: PlannedPack): Promise<PackEntry> {
    const { store, source, client } = this.options;
    const records: [string, Buffer][] = [];
    for (const key of p.keys) {
      const value = await store.get(key);
      // A record retention removed since the plan was made: the pack is made again next round.
      if (value === undefined) throw new Error(`${key} went away while it was being uploaded`);
      records.push([key, value]);
    }
    const name = names.pack(source, p.kind, p.group, p.start, p.end);
    const put = await client.put(name, encodePack(records));
    return {
      name,
      kind: p.kind,
      group: p.group,
      start: p.start,
      end: p.end,
      firstTime: p.firstTime,
      lastTime: p.lastTime,
      bytes: p.bytes,
      stored: put.storedBytes,
      storedSha256: put.storedSha256,
    };
  }

  /** Objects an interrupted upload left that no manifest names: removed before uploading again. */
  private async removeLeftovers(manifest: Manifest): Promise<void> {
    const { client, source, log } = this.options;
    const named = new Set([...manifest.packs, ...manifest.files].map((o) => o.name));
    const leftover: string[] = [];
    for (const under of ['seg/', 'aof/', 'file/']) {
      for await (const o of client.list(`${source}/${under}`))
        if (!named.has(o.name)) leftover.push(o.name);
    }
    if (leftover.length === 0) return;
    await client.delete(leftover);
    log.info({ objects: leftover.length }, 'repo: removed objects an interrupted upload left');
  }

  /** Keeps the newest two manifests: a reader that just read the one before still finds its objects. */
  private async removeOldManifests(seq: number): Promise<void> {
    const { client, source } = this.options;
    const old = (await manifestNames(client, source))
      .filter((m) => m.seq < seq - 1)
      .map((m) => m.name);
    if (old.length > 0) await client.delete(old);
  }
}

function packOrder(a: PackEntry, b: PackEntry): number {
  return a.kind.localeCompare(b.kind) || a.group - b.group || a.start - b.start;
}

/** Runs the jobs, `limit` at a time; the first failure is thrown once the others have settled. */
async function pool(jobs: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < jobs.length && failure === undefined) {
      const job = jobs[next++]!;
      try {
        await job();
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
  if (failure !== undefined) throw failure;
}

/** The promise's value, or undefined once the deadline passes first. */
async function raceDeadline<T>(p: Promise<T>, deadline: number): Promise<T | undefined> {
  const ac = new AbortController();
  try {
    return await Promise.race([
      p,
      sleep(Math.max(0, deadline - Date.now()), undefined, { signal: ac.signal }),
    ]);
  } finally {
    ac.abort();
  }
}
