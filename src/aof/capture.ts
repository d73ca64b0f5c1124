import { EventEmitter } from 'node:events';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoCode, isRfError, RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { rdbLength, startsWithRdb } from '../rdb/length.js';
import {
  type AofBaseFormat,
  type AofChunkMeta,
  type AofFileRecord,
  type AofGap,
  type AofSizeSample,
  type BaseBody,
  type BaseOffer,
  chunkId,
  EMPTY_SHA256,
  sha256,
} from '../store/chunks.js';
import { cutFrames } from './cut.js';
import { pacedBody, readExactly } from './file-read.js';
import { type AofLayout, locateAof } from './layout.js';
import { type Manifest, parseManifest } from './manifest.js';
import { Pacer } from './pacer.js';
import type { AofSink, HeldState } from './sink.js';

export interface AofCaptureOptions {
  /** The Redis `dir` or its appendonlydir (Redis 7), or the directory of appendonly.aof (Redis 6). */
  aofDir: string;
  /** Where chunks and bases go; the capture closes it on stop. */
  sink: AofSink;
  /** `--chunk-size`: a chunk holds at most this many bytes, unless one command alone is larger. */
  chunkSize: number;
  /** `--chunk-pause`: ms between the end of one send and the start of the next. */
  chunkPauseMs: number;
  log: Logger;
  /** How often the files are looked at when there is nothing to do. */
  pollMs?: number;
  /** How long bytes fewer than a chunk wait for more before they are cut anyway. */
  lingerMs?: number;
  /** How often the AOF size is sampled (`rf info`, metrics). */
  sizeSampleMs?: number;
  /**
   * Bytes already stored that are kept to compare with what Redis writes again after it truncates
   * a short write (aof.c flushAppendOnlyFile); default max(chunkSize, 4 MiB).
   */
  recheckBytes?: number;
}

export interface AofCaptureStatus {
  dir: string;
  layout: AofLayout['kind'] | null;
  /** The file being followed: where the capture is in it and how large it is. */
  current: { file: string; fileNo: number; position: number; size: number } | null;
  /** Bytes written by Redis and not stored yet, over every file followed. */
  lagBytes: number;
  chunks: number;
  bytes: number;
  duplicates: number;
  bases: number;
  lastChunkAt: number | null;
  size: AofSizeSample | null;
  stopped: boolean;
}

export interface AofCaptureEvents {
  chunk: [AofChunkMeta];
  base: [BaseOffer & { sha256: string }];
  gap: [AofGap];
  'file-ended': [AofFileRecord];
  /** A manifest that differs from the last one read (Redis 7). */
  manifest: [Manifest];
}

/** A file whose bytes are cut into chunks, held open from the moment it is first seen. */
interface Tracked {
  record: AofFileRecord;
  path: string;
  /**
   * Held open because Redis deletes history files soon after a rewrite (aof.c aofDelHistoryFiles,
   * bg_unlink): an open descriptor keeps the bytes readable until this file is finished.
   */
  fh: FileHandle;
  /** Where the next chunk starts: the end of what the sink holds. */
  pos: number;
  /** Redis writes no more to it: a newer incr is in the manifest, or the Redis 6 file was renamed over. */
  done: boolean;
  /** The latest chunks stored, newest last, for comparing bytes Redis writes again. */
  recent: Buffer[];
  recentBytes: number;
  /** Since when bytes fewer than a chunk have been waiting. */
  pendingSince: number | null;
  /** Set after Redis truncated bytes already stored: they must come back identical. */
  recheck: { from: number; expected: Buffer } | null;
  /** The file's size when last looked at. */
  lastSize: number | null;
}

interface PendingBase {
  offer: BaseOffer;
  path: string;
  fh: FileHandle;
}

interface DrainWaiter {
  /** The file followed when the loop took the waiter up, and its size then; null until it has. */
  fileNo: number | null;
  size: number | null;
  resolve: () => void;
}

const DEFAULT_RECHECK = 4 * 1024 * 1024;
/** How many times in a row the capture re-reads the receiver's state before giving up. */
const MAX_RESYNCS = 3;

/**
 * Follows a Redis's append-only files and delivers them to a sink: bases copied whole, the
 * commands of every incr file (or of the Redis 6 single file) cut into checksummed chunks on
 * command boundaries, at most `chunkSize` bytes each, with `chunkPauseMs` between sends.
 *
 * Files are taken in Redis's order: a file Redis writes no more to is finished (every whole
 * command stored, then marked ended) before the next one is read, so the chunks of each file
 * join up and the files follow each other without a byte lost or repeated. A restart resumes
 * from what the sink holds.
 */
export class AofCapture extends EventEmitter<AofCaptureEvents> {
  private readonly pollMs: number;
  private readonly lingerMs: number;
  private readonly sizeSampleMs: number;
  private readonly recheckBytes: number;
  private readonly pacer: Pacer;
  private readonly abort = new AbortController();
  private readonly log: Logger;

  private layout: AofLayout | null = null;
  private files: Tracked[] = [];
  private pendingBases: PendingBase[] = [];
  /** Files and bases already dealt with in this run, by kind, name, seq and inode → fileNo. */
  private seen = new Map<string, number>();
  private nextFileNo = 1;
  private manifestStamp = '';
  private manifest: Manifest | null = null;
  private singleSeq = 0;
  private lastIncrSeq = 0;
  private held: HeldState = { files: [], bases: [] };
  private warned = new Set<string>();

  private stopping = false;
  private loop: Promise<void> | null = null;
  private sizeLoop: Promise<void> | null = null;
  private drainWaiters: DrainWaiter[] = [];
  private draining = 0;
  private readonly stats = {
    chunks: 0,
    bytes: 0,
    duplicates: 0,
    bases: 0,
    lastChunkAt: null as number | null,
  };
  private lastSize: AofSizeSample | null = null;
  private lastSizeSent: AofSizeSample | null = null;

  constructor(private readonly options: AofCaptureOptions) {
    super();
    if (!Number.isSafeInteger(options.chunkSize) || options.chunkSize <= 0) {
      throw new TypeError(
        `AofCapture: chunkSize must be a positive integer, got ${options.chunkSize}`,
      );
    }
    this.pollMs = options.pollMs ?? 100;
    this.lingerMs = options.lingerMs ?? 500;
    this.sizeSampleMs = options.sizeSampleMs ?? 1000;
    this.recheckBytes = options.recheckBytes ?? Math.max(options.chunkSize, DEFAULT_RECHECK);
    this.pacer = new Pacer(options.chunkPauseMs, this.abort.signal);
    this.log = options.log;
  }

  /**
   * Finds the AOF, reads what the sink already holds and starts following. Rejects (RF_AOF_DIR,
   * RF_AOF_MANIFEST, RF_AOF_DIVERGED, the sink's errors) when it cannot begin; later failures
   * reject `done`.
   */
  async start(): Promise<void> {
    if (this.loop !== null) throw new TypeError('AofCapture: already started');
    await this.init();
    this.loop = this.run();
    this.sizeLoop = this.sampleSizes();
    // `done` reports the failure; this keeps an unobserved rejection from crashing the process.
    this.loop.catch(() => undefined);
  }

  /** Settles when the capture stops: resolves after stop(), rejects with the error that stopped it. */
  get done(): Promise<void> {
    if (this.loop === null) return Promise.reject(new TypeError('AofCapture: not started'));
    return this.loop;
  }

  async stop(): Promise<void> {
    if (this.stopping) {
      await this.loop?.catch(() => undefined);
      return;
    }
    this.stopping = true;
    this.abort.abort();
    await this.options.sink.close().catch(() => undefined);
    await this.loop?.catch(() => undefined);
    await this.sizeLoop?.catch(() => undefined);
    await this.closeAll();
  }

  /**
   * Resolves once every file Redis writes no more to is finished and the current file is stored
   * up to the size it has now, cutting without the linger. The rewrite cycle calls this before
   * BGREWRITEAOF so the history before the rewrite is all stored first.
   */
  async drain(): Promise<void> {
    if (this.loop === null || this.stopping) return;
    this.draining++;
    try {
      await new Promise<void>((resolve, reject) => {
        // Sized by the loop on its next turn (sizeDrains), not here: the loop alone stats and
        // closes the files it follows, so a drain never reads a handle finishStep is closing.
        this.drainWaiters.push({ fileNo: null, size: null, resolve });
        this.loop?.catch(reject);
      });
    } finally {
      this.draining--;
    }
  }

  status(): AofCaptureStatus {
    const current = this.files.at(-1);
    let lag = 0;
    for (const f of this.files) lag += Math.max(0, (f.lastSize ?? f.pos) - f.pos);
    return {
      dir: this.options.aofDir,
      layout: this.layout?.kind ?? null,
      current:
        current === undefined
          ? null
          : {
              file: current.record.name,
              fileNo: current.record.fileNo,
              position: current.pos,
              size: current.lastSize ?? current.pos,
            },
      lagBytes: lag,
      ...this.stats,
      size: this.lastSize,
      stopped: this.stopping,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Start and resume

  private async init(): Promise<void> {
    this.layout = await locateAof(this.options.aofDir);
    // Local problems first: a manifest Redis would refuse is reported before the receiver is asked.
    if (this.layout.kind === 'multi-part') {
      const p = path.join(this.layout.dir, this.layout.manifest);
      parseManifest(await fs.readFile(p), p);
    }
    this.held = await this.options.sink.held();
    this.nextFileNo =
      1 +
      Math.max(0, ...this.held.files.map((f) => f.fileNo), ...this.held.bases.map((b) => b.fileNo));
    this.singleSeq = Math.max(
      0,
      ...this.held.files.filter((f) => f.kind === 'single').map((f) => f.seq),
    );
    this.lastIncrSeq = Math.max(
      0,
      ...this.held.files.filter((f) => f.kind === 'incr').map((f) => f.seq),
    );
    await this.refresh();
    await this.adoptLeftovers();
    this.log.info(
      {
        layout: this.layout.kind,
        dir: this.layout.dir,
        files: this.files.map((f) => ({
          file: f.record.name,
          fileNo: f.record.fileNo,
          from: f.pos,
        })),
        bases: this.pendingBases.map((b) => b.offer.name),
      },
      'AOF capture following',
    );
  }

  /**
   * Files the sink holds unfinished that the current layout no longer lists (history Redis
   * deleted while the capture was not running). One still on disk is finished; a missing one
   * leaves a gap, recorded, from where the sink's copy ends.
   */
  private async adoptLeftovers(): Promise<void> {
    const tracked = new Set(this.files.map((f) => f.record.fileNo));
    const leftovers = this.held.files
      .filter((r) => r.ended === null && !tracked.has(r.fileNo))
      .sort((a, b) => a.fileNo - b.fileNo);
    const adopted: Tracked[] = [];
    for (const record of leftovers) {
      const p = path.join(this.layout!.dir, record.name);
      const fh = await fs.open(p, 'r').catch(() => null);
      const ino = fh === null ? null : (await fh.stat()).ino;
      if (fh !== null && ino === record.ino) {
        const f = await this.resume(record, p, fh);
        f.done = true;
        adopted.push(f);
        continue;
      }
      await fh?.close();
      const gap: AofGap = {
        fileNo: record.fileNo,
        file: record.name,
        start: record.capturedEnd,
        end: null,
        at: Date.now(),
        reason: 'file-deleted',
      };
      this.log.warn(
        { file: record.name, fileNo: record.fileNo, capturedEnd: record.capturedEnd },
        'an AOF file the store holds unfinished is gone from the Redis host: recording a gap',
      );
      await this.options.sink.putGap(gap);
      this.emit('gap', gap);
      const ended = await this.options.sink.putFile({
        ...record,
        ended: { at: Date.now(), size: record.capturedEnd },
      });
      this.emit('file-ended', ended);
    }
    this.files = [...adopted, ...this.files];
  }

  /** Re-opens a file the sink holds: checks its last chunk still matches, and goes on from its end. */
  private async resume(record: AofFileRecord, p: string, fh: FileHandle): Promise<Tracked> {
    const f = this.track(record, p, fh);
    if (record.last !== null) {
      const bytes = await readExactly(fh, record.last.start, record.last.end - record.last.start);
      if (bytes === null || sha256(bytes) !== record.last.sha256) {
        await fh.close();
        throw new RfError(
          'RF_AOF_DIVERGED',
          `${record.name} on the Redis host no longer holds the bytes the store has for it (bytes ${record.last.start}..${record.last.end})`,
          {
            details: {
              file: record.name,
              fileNo: record.fileNo,
              start: record.last.start,
              end: record.last.end,
            },
            hint: 'the AOF was replaced or edited behind Redis; run `rf verify`, and use a new --name to start a fresh AOF history',
          },
        );
      }
      this.remember(f, bytes);
    }
    return f;
  }

  // -------------------------------------------------------------------------------------------
  // Following the layout

  /** Looks at the manifest (Redis 7) or the single file (Redis 6) for files Redis added or left. */
  private async refresh(): Promise<void> {
    const layout = this.layout!;
    if (layout.kind === 'multi-part') await this.refreshManifest(layout);
    else await this.refreshSingle(layout);
  }

  private async refreshManifest(layout: Extract<AofLayout, { kind: 'multi-part' }>): Promise<void> {
    const p = path.join(layout.dir, layout.manifest);
    let stamp: string;
    try {
      const st = await fs.stat(p);
      // Redis renames a new manifest into place (aof.c writeAofManifestFile): a new inode each time.
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (err) {
      this.warnOnce(
        'manifest-missing',
        { manifest: p, errno: errnoCode(err) },
        'the AOF manifest is gone; was appendonly turned off? Finishing the files already open',
      );
      for (const f of this.files) f.done = true;
      return;
    }
    if (stamp === this.manifestStamp) return;
    const bytes = await fs.readFile(p);
    const manifest = parseManifest(bytes, p);
    this.manifestStamp = stamp;
    this.manifest = manifest;
    this.warned.delete('manifest-missing');
    this.emit('manifest', manifest);

    for (const entry of manifest.incrs) {
      const fp = path.join(layout.dir, entry.name);
      if (this.files.some((f) => f.record.name === entry.name && f.record.seq === entry.seq))
        continue;
      const fh = await fs.open(fp, 'r').catch((err: unknown) => {
        // Listed but not there: the manifest moved on after it was read; the next look sees it.
        if (errnoCode(err) === 'ENOENT') return null;
        throw aofDirError(layout.dir, fp, err);
      });
      if (fh === null) {
        this.manifestStamp = '';
        continue;
      }
      const ino = (await fh.stat()).ino;
      const key = `incr\0${entry.name}\0${entry.seq}\0${ino}`;
      if (this.seen.has(key)) {
        await fh.close();
        continue;
      }
      const held = this.held.files.find(
        (r) => r.kind === 'incr' && r.name === entry.name && r.seq === entry.seq && r.ino === ino,
      );
      if (held?.ended) {
        this.seen.set(key, held.fileNo);
        await fh.close();
        continue;
      }
      let f: Tracked;
      if (held !== undefined) {
        f = await this.resume(held, fp, fh);
      } else {
        await this.noteMissedIncrs(entry.seq);
        const record = await this.options.sink.putFile(
          newRecord(this.nextFileNo++, entry.name, 'incr', entry.seq, ino, 0),
        );
        f = this.track(record, fp, fh);
        this.log.info(
          { file: entry.name, seq: entry.seq, fileNo: record.fileNo },
          'following a new incr file',
        );
      }
      this.seen.set(key, f.record.fileNo);
      this.files.push(f);
      this.lastIncrSeq = Math.max(this.lastIncrSeq, entry.seq);
    }
    this.files.sort((a, b) => a.record.fileNo - b.record.fileNo);
    // Redis writes only to the last incr: flushAppendOnlyFile(1) runs before openNewIncrAofForAppend
    // persists a manifest with a newer one (aof.c rewriteAppendOnlyFileBackground).
    const newest = manifest.incrs.at(-1);
    for (const f of this.files) {
      if (f.done || f.record.kind !== 'incr') continue;
      const isNewest =
        newest !== undefined && f.record.name === newest.name && f.record.seq === newest.seq;
      if (!isNewest) {
        f.done = true;
        this.log.info(
          { file: f.record.name, fileNo: f.record.fileNo },
          'Redis moved on from this incr file: finishing it',
        );
      }
    }

    const base = manifest.base;
    if (base !== null) {
      const fp = path.join(layout.dir, base.name);
      const fh = await fs.open(fp, 'r').catch(() => null);
      if (fh === null) {
        this.manifestStamp = '';
        return;
      }
      const st = await fh.stat();
      const key = `base\0${base.name}\0${base.seq}\0${st.ino}`;
      const held = this.held.bases.find(
        (b) => b.name === base.name && b.seq === base.seq && b.ino === st.ino,
      );
      if (
        this.seen.has(key) ||
        held !== undefined ||
        this.pendingBases.some((b) => b.path === fp && b.offer.seq === base.seq)
      ) {
        if (held !== undefined) this.seen.set(key, held.fileNo);
        await fh.close();
        return;
      }
      const first = manifest.incrs[0];
      const firstFileNo =
        first === undefined
          ? null
          : (this.files.find((f) => f.record.name === first.name && f.record.seq === first.seq)
              ?.record.fileNo ??
            [...this.seen.entries()].find(([k]) =>
              k.startsWith(`incr\0${first.name}\0${first.seq}\0`),
            )?.[1] ??
            null);
      const format: AofBaseFormat = base.name.endsWith('.rdb')
        ? 'rdb'
        : base.name.endsWith('.aof')
          ? 'aof'
          : startsWithRdb((await readExactly(fh, 0, Math.min(5, st.size))) ?? Buffer.alloc(0))
            ? 'rdb'
            : 'aof';
      const offer: BaseOffer = {
        fileNo: this.nextFileNo++,
        name: base.name,
        seq: base.seq,
        ino: st.ino,
        format,
        bytes: st.size,
        firstFileNo,
      };
      this.seen.set(key, offer.fileNo);
      this.pendingBases.push({ offer, path: fp, fh });
      this.log.info(
        { file: base.name, seq: base.seq, bytes: st.size, fileNo: offer.fileNo },
        'new AOF base: copying it',
      );
    }
  }

  private async refreshSingle(layout: Extract<AofLayout, { kind: 'single' }>): Promise<void> {
    const fp = path.join(layout.dir, layout.file);
    let ino: number;
    try {
      ino = (await fs.stat(fp)).ino;
    } catch (err) {
      this.warnOnce(
        'single-missing',
        { file: fp, errno: errnoCode(err) },
        'the append-only file is gone; was appendonly turned off? Finishing what is open',
      );
      for (const f of this.files) f.done = true;
      return;
    }
    this.warned.delete('single-missing');
    const current = this.files.at(-1);
    if (current !== undefined && current.record.ino === ino) return;
    if (this.seen.has(`single\0${layout.file}\0${ino}`)) return;
    // A Redis 6 rewrite renames a new file over the old one (aof.c backgroundRewriteDoneHandler):
    // the old inode gets nothing more.
    for (const f of this.files) {
      if (!f.done)
        this.log.info(
          { file: f.record.name, fileNo: f.record.fileNo },
          'the append-only file was replaced (rewrite): finishing the old one',
        );
      f.done = true;
    }
    const fh = await fs.open(fp, 'r').catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT') return null;
      throw aofDirError(layout.dir, fp, err);
    });
    if (fh === null) return;
    const st = await fh.stat();
    if (st.ino !== ino) {
      await fh.close();
      return;
    }
    const held = this.held.files
      .filter(
        (r) => r.kind === 'single' && r.name === layout.file && r.ino === ino && r.ended === null,
      )
      .at(-1);
    if (held !== undefined) {
      this.seen.set(`single\0${layout.file}\0${ino}`, held.fileNo);
      this.files.push(await this.resume(held, fp, fh));
      return;
    }
    // Whether the file starts with an RDB preamble is known from its first byte: Redis writes
    // the preamble before the file is renamed into place, and a file without one starts with a
    // command or an annotation.
    const head = (await readExactly(fh, 0, Math.min(st.size, 5))) ?? Buffer.alloc(0);
    if (head.length === 0 || (head[0] === 0x52 && head.length < 5)) {
      await fh.close();
      return;
    }
    let chunkStart = 0;
    if (startsWithRdb(head)) chunkStart = await rdbLength(fh, st.size, fp);
    this.singleSeq++;
    const record = await this.options.sink.putFile(
      newRecord(this.nextFileNo++, layout.file, 'single', this.singleSeq, ino, chunkStart),
    );
    this.seen.set(`single\0${layout.file}\0${ino}`, record.fileNo);
    const offer: BaseOffer = {
      fileNo: this.nextFileNo++,
      name: layout.file,
      seq: this.singleSeq,
      ino,
      format: chunkStart > 0 ? 'rdb-preamble' : 'empty',
      bytes: chunkStart,
      firstFileNo: record.fileNo,
    };
    // The preamble is read through a second descriptor, closed once it is copied.
    const baseFh = await fs.open(fp, 'r');
    this.pendingBases.push({ offer, path: fp, fh: baseFh });
    this.files.push(this.track(record, fp, fh));
    this.log.info(
      {
        file: layout.file,
        generation: this.singleSeq,
        fileNo: record.fileNo,
        preamble: chunkStart,
      },
      'following a new append-only file',
    );
  }

  /**
   * Redis numbers incr files one after another (aof.c getNewIncrAofName). A seq skipped since
   * the last one followed is a file created and deleted between two looks (two rewrites in a row
   * faster than the poll): its bytes are lost to this capture, and that is recorded.
   */
  private async noteMissedIncrs(seq: number): Promise<void> {
    if (this.lastIncrSeq === 0 || seq <= this.lastIncrSeq + 1) return;
    for (let missed = this.lastIncrSeq + 1; missed < seq; missed++) {
      const name = `${this.manifest?.incrs[0]?.name.replace(/\.\d+\.incr\.aof$/, '') ?? 'appendonly.aof'}.${missed}.incr.aof`;
      // A number of its own, as the file would have had: under the next file's number the gaps
      // of two missed files would share one key, and one would be lost.
      const gap: AofGap = {
        fileNo: this.nextFileNo++,
        file: name,
        start: 0,
        end: null,
        at: Date.now(),
        reason: 'file-deleted',
      };
      this.log.warn(
        { file: name, seq: missed },
        'an incr file came and went between two looks at the manifest: its writes are missing from the AOF capture',
      );
      await this.options.sink.putGap(gap);
      this.emit('gap', gap);
    }
  }

  private track(record: AofFileRecord, p: string, fh: FileHandle): Tracked {
    return {
      record,
      path: p,
      fh,
      pos: record.capturedEnd,
      done: false,
      recent: [],
      recentBytes: 0,
      pendingSince: null,
      recheck: null,
      lastSize: null,
    };
  }

  // -------------------------------------------------------------------------------------------
  // The loop

  private async run(): Promise<void> {
    let resyncs = 0;
    try {
      while (!this.stopping) {
        try {
          await this.refresh();
          await this.sizeDrains();
          const worked = await this.step();
          this.checkDrains();
          if (worked) {
            resyncs = 0;
          } else {
            await sleep(this.pollMs, undefined, { signal: this.abort.signal }).catch(
              () => undefined,
            );
          }
        } catch (err) {
          if (this.stopping) return;
          // The receiver holds something other than what this capture thought: read its state again.
          if (isRfError(err, 'RF_CHUNK_ORDER') && resyncs < MAX_RESYNCS) {
            resyncs++;
            this.log.warn(
              { err: err.toJSON() },
              'the receiver holds other AOF bytes than expected: resuming from what it holds',
            );
            await this.closeAll();
            await this.init();
            continue;
          }
          throw err;
        }
      }
    } finally {
      for (const w of this.drainWaiters.splice(0)) w.resolve();
    }
  }

  /** Does one piece of work; false when there was nothing to do. */
  private async step(): Promise<boolean> {
    // Files Redis has left are finished first, oldest first, so the history stays in order.
    const finished = this.files.find((f) => f.done);
    if (finished !== undefined) return this.finishStep(finished);
    const base = this.pendingBases[0];
    if (base !== undefined) {
      await this.copyBase(base);
      this.pendingBases.shift();
      return true;
    }
    const current = this.files.at(-1);
    if (current === undefined) return false;
    return this.chunkStep(current);
  }

  private async chunkStep(f: Tracked): Promise<boolean> {
    const size = (await f.fh.stat()).size;
    f.lastSize = size;
    if (f.recheck !== null || size < f.pos) return this.recheckStep(f, size);
    const available = size - f.pos;
    if (available === 0) {
      f.pendingSince = null;
      return false;
    }
    const now = Date.now();
    f.pendingSince ??= now;
    const linger =
      !f.done &&
      this.draining === 0 &&
      available < this.options.chunkSize &&
      now - f.pendingSince < this.lingerMs;
    if (linger) return false;
    const sent = await this.sendChunk(f, size);
    if (!sent) return false;
    f.pendingSince = f.pos < size ? f.pendingSince : null;
    return true;
  }

  /** A file Redis writes no more to: store its remaining whole commands, then mark it ended. */
  private async finishStep(f: Tracked): Promise<boolean> {
    const size = (await f.fh.stat()).size;
    f.lastSize = size;
    if (f.recheck !== null || size < f.pos) {
      await this.recheckStep(f, size);
      if (f.recheck !== null) {
        // Redis will not write this file again: what it truncated never came back.
        throw await this.diverged(
          f,
          size,
          'a file Redis left ends before bytes the store already holds',
        );
      }
      return true;
    }
    if (f.pos < size && (await this.sendChunk(f, size))) return true;
    if (f.pos < size) {
      // Not a whole command, and nothing more will come: Redis could not remove a short write.
      const gap: AofGap = {
        fileNo: f.record.fileNo,
        file: f.record.name,
        start: f.pos,
        end: size,
        at: Date.now(),
        reason: 'torn-tail',
      };
      this.log.warn(
        { file: f.record.name, start: f.pos, end: size },
        'the file Redis left ends in an incomplete command: recorded as a gap, not shipped',
      );
      await this.options.sink.putGap(gap);
      this.emit('gap', gap);
    }
    const ended = await this.options.sink.putFile({
      ...f.record,
      capturedEnd: f.pos,
      ended: { at: Date.now(), size: f.pos },
    });
    this.log.info(
      { file: f.record.name, fileNo: f.record.fileNo, size: f.pos, chunks: ended.chunks },
      'AOF file finished',
    );
    await f.fh.close();
    this.files = this.files.filter((x) => x !== f);
    this.emit('file-ended', ended);
    return true;
  }

  /** Cuts and sends the next chunk of `f`; false when no whole command is there yet. */
  private async sendChunk(f: Tracked, size: number): Promise<boolean> {
    const chunkSize = this.options.chunkSize;
    let want = Math.min(size - f.pos, chunkSize);
    let data: Buffer | null = null;
    let cut: ReturnType<typeof cutFrames> | null = null;
    for (;;) {
      const buf = await readExactly(f.fh, f.pos, want);
      if (buf === null) return false;
      cut = cutFrames(buf, f.pos, chunkSize, f.record.name);
      if (cut.length > 0) {
        data = buf.subarray(0, cut.length);
        break;
      }
      // One command larger than a chunk: read on until it is whole (it becomes a chunk alone).
      if (want >= size - f.pos) return false;
      want = Math.min(size - f.pos, want * 2);
    }
    const meta: AofChunkMeta = {
      fileNo: f.record.fileNo,
      file: f.record.name,
      seq: f.record.seq,
      start: f.pos,
      end: f.pos + data.length,
      sha256: sha256(data),
      capturedAt: Date.now(),
      commands: cut.commands,
      firstTs: cut.firstTs,
      lastTs: cut.lastTs,
    };
    await this.pacer.ready();
    let result: Awaited<ReturnType<AofSink['putChunk']>>;
    try {
      result = await this.options.sink.putChunk(meta, data);
    } finally {
      this.pacer.sent();
    }
    f.pos = meta.end;
    f.record = {
      ...f.record,
      capturedEnd: meta.end,
      chunks: f.record.chunks + 1,
      last: { start: meta.start, end: meta.end, sha256: meta.sha256 },
    };
    this.remember(f, data);
    if (result === 'duplicate') this.stats.duplicates++;
    this.stats.chunks++;
    this.stats.bytes += data.length;
    this.stats.lastChunkAt = meta.capturedAt;
    this.log.debug(
      {
        chunk: chunkId(meta),
        file: meta.file,
        bytes: data.length,
        commands: meta.commands,
        result,
      },
      'AOF chunk stored',
    );
    this.emit('chunk', meta);
    return true;
  }

  private remember(f: Tracked, data: Buffer): void {
    f.recent.push(data);
    f.recentBytes += data.length;
    while (f.recent.length > 1 && f.recentBytes - f.recent[0]!.length >= this.recheckBytes) {
      f.recentBytes -= f.recent.shift()!.length;
    }
  }

  /**
   * Redis truncated the file below what the store holds: after a short write it ftruncates back
   * to where that write began and writes the same buffer again later (aof.c
   * flushAppendOnlyFile). The bytes must come back identical; they are then not sent again.
   */
  private async recheckStep(f: Tracked, size: number): Promise<boolean> {
    if (f.recheck === null || size < f.recheck.from) {
      const retracted = f.pos - size;
      if (retracted > f.recentBytes) {
        throw await this.diverged(
          f,
          size,
          `Redis truncated ${retracted} bytes the store already holds, more than rf keeps to compare`,
        );
      }
      const expected = Buffer.concat(f.recent).subarray(f.recentBytes - retracted);
      if (f.recheck === null) {
        this.log.warn(
          { file: f.record.name, truncatedTo: size, stored: f.pos },
          'Redis truncated the AOF below what is stored (a short write?): waiting for the same bytes to come back',
        );
      }
      f.recheck = { from: size, expected };
    }
    const { from, expected } = f.recheck;
    const upto = Math.min(size, f.pos);
    if (upto > from) {
      const now = await readExactly(f.fh, from, upto - from);
      if (now === null || !now.equals(expected.subarray(0, upto - from))) {
        throw await this.diverged(f, size, 'Redis wrote other bytes where it had truncated');
      }
    }
    if (size < f.pos) return false;
    f.recheck = null;
    this.log.info(
      { file: f.record.name, bytes: expected.length },
      'Redis wrote back the truncated bytes unchanged; they are stored already and are not sent again',
    );
    return true;
  }

  private async diverged(f: Tracked, size: number, why: string): Promise<RfError> {
    const gap: AofGap = {
      fileNo: f.record.fileNo,
      file: f.record.name,
      start: f.recheck?.from ?? Math.min(size, f.pos),
      end: f.pos,
      at: Date.now(),
      reason: 'diverged',
    };
    await this.options.sink.putGap(gap).catch(() => undefined);
    this.emit('gap', gap);
    return new RfError(
      'RF_AOF_DIVERGED',
      `${f.record.name} no longer matches what the store holds: ${why}`,
      {
        details: { file: f.record.name, fileNo: f.record.fileNo, size, stored: f.pos },
        hint: 'check the Redis log for AOF write errors (disk full?); run `rf verify`, and restart the capture under a new --name to begin a fresh AOF history',
      },
    );
  }

  /** Copies a base whole, in chunk-sized pieces paced like chunks, with its checksum. */
  private async copyBase(base: PendingBase): Promise<void> {
    const { offer, fh } = base;
    let copied: Promise<string> = Promise.resolve(EMPTY_SHA256);
    const open =
      offer.bytes === 0
        ? null
        : (): BaseBody => {
            const body = pacedBody(fh, offer.bytes, this.options.chunkSize, this.pacer, base.path);
            copied = body.sha256;
            return body;
          };
    const result = await this.options.sink.putBase(offer, open);
    await fh.close();
    this.stats.bases++;
    const sha = await copied;
    this.log.info(
      { file: offer.name, fileNo: offer.fileNo, format: offer.format, bytes: offer.bytes, result },
      'AOF base stored',
    );
    this.emit('base', { ...offer, sha256: sha });
  }

  // -------------------------------------------------------------------------------------------
  // Size sampling, drains, shutdown

  /** Samples the AOF size every sizeSampleMs; the sink hears about changes (at most once a sample). */
  private async sampleSizes(): Promise<void> {
    while (!this.stopping) {
      try {
        const bytes = await this.measure();
        if (bytes !== null) {
          this.lastSize = { at: Date.now(), bytes };
          const last = this.lastSizeSent;
          if (last === null || last.bytes !== bytes || this.lastSize.at - last.at >= 60_000) {
            await this.options.sink.putSize(this.lastSize);
            this.lastSizeSent = this.lastSize;
          }
        }
      } catch (err) {
        if (this.stopping) return;
        this.log.debug(
          { err: { message: (err as Error).message } },
          'AOF size sample not delivered',
        );
      }
      await sleep(this.sizeSampleMs, undefined, { signal: this.abort.signal }).catch(
        () => undefined,
      );
    }
  }

  private async measure(): Promise<number | null> {
    const layout = this.layout;
    if (layout === null) return null;
    const sizeOf = async (name: string) =>
      (await fs.stat(path.join(layout.dir, name)).catch(() => null))?.size ?? 0;
    if (layout.kind === 'single') return sizeOf(layout.file);
    const m = this.manifest;
    if (m === null) return null;
    // What aof.c getBaseAndIncrAppendOnlyFilesSize counts: the base and the incr files.
    let total = m.base === null ? 0 : await sizeOf(m.base.name);
    for (const e of m.incrs) total += await sizeOf(e.name);
    return total;
  }

  /** Gives new drain waiters the current file and its size now; run by the loop between steps. */
  private async sizeDrains(): Promise<void> {
    for (const w of this.drainWaiters) {
      if (w.size !== null) continue;
      const current = this.files.at(-1);
      w.fileNo = current?.record.fileNo ?? null;
      w.size = current === undefined ? 0 : (await current.fh.stat()).size;
    }
  }

  private checkDrains(): void {
    if (this.drainWaiters.length === 0) return;
    if (this.files.some((f) => f.done) || this.pendingBases.length > 0) return;
    this.drainWaiters = this.drainWaiters.filter((w) => {
      if (w.size === null) return true;
      const f = this.files.find((x) => x.record.fileNo === w.fileNo);
      if (w.fileNo === null || f === undefined || f.pos >= w.size) {
        w.resolve();
        return false;
      }
      return true;
    });
  }

  private async closeAll(): Promise<void> {
    for (const f of this.files) await f.fh.close().catch(() => undefined);
    for (const b of this.pendingBases) await b.fh.close().catch(() => undefined);
    this.files = [];
    this.pendingBases = [];
    this.seen.clear();
    this.manifestStamp = '';
    this.manifest = null;
  }

  private warnOnce(key: string, details: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(details, message);
  }
}

function newRecord(
  fileNo: number,
  name: string,
  kind: AofFileRecord['kind'],
  seq: number,
  ino: number,
  chunkStart: number,
): AofFileRecord {
  return {
    fileNo,
    name,
    kind,
    seq,
    ino,
    chunkStart,
    firstSeenAt: Date.now(),
    capturedEnd: chunkStart,
    chunks: 0,
    last: null,
    ended: null,
  };
}

function aofDirError(dir: string, file: string, err: unknown): RfError {
  return new RfError('RF_AOF_DIR', `cannot open ${file}: ${(err as Error).message}`, {
    details: { dir, file, errno: errnoCode(err) },
    hint: `run rf as a user that may read ${dir} (Redis's user or its group)`,
    cause: err,
  });
}
