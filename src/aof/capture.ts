import { EventEmitter } from 'node:events';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRfError, type RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { type AofGap, chunkId } from '../store/chunks.js';
import type { AofCaptureEvents, AofCaptureOptions, AofCaptureStatus } from './capture-types.js';
import { DrainWaiters } from './drains.js';
import { adoptLeftovers, type FollowHost, type FollowState } from './follow.js';
import { ManifestFollower } from './follow-manifest.js';
import { SingleFileFollower } from './follow-single.js';
import { type AofLayout, locateAof } from './layout.js';
import { parseManifest } from './manifest.js';
import { Pacer } from './pacer.js';
import { copyBase, type Delivery, sendChunk } from './send.js';
import { aofSize, SizeSampler } from './size-sampler.js';
import { divergence, type PendingBase, recheckStep, resume, type Tracked } from './tracked.js';

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
  private readonly recheckBytes: number;
  private readonly delivery: Delivery;
  private readonly abort = new AbortController();
  private readonly log: Logger;

  private layout: AofLayout | null = null;
  private readonly state: FollowState = {
    files: [],
    pendingBases: [],
    seen: new Map(),
    held: { files: [], bases: [] },
    nextFileNo: 1,
  };
  private readonly warned = new Set<string>();
  private readonly host: FollowHost;
  private readonly manifest: ManifestFollower;
  private readonly single: SingleFileFollower;

  private stopping = false;
  private loop: Promise<void> | null = null;
  private sizeLoop: Promise<void> | null = null;
  private readonly drains = new DrainWaiters();
  private readonly stats = {
    chunks: 0,
    bytes: 0,
    duplicates: 0,
    bases: 0,
    lastChunkAt: null as number | null,
  };
  private readonly sizes: SizeSampler;

  constructor(private readonly options: AofCaptureOptions) {
    super();
    if (!Number.isSafeInteger(options.chunkSize) || options.chunkSize <= 0) {
      throw new TypeError(
        `AofCapture: chunkSize must be a positive integer, got ${options.chunkSize}`,
      );
    }
    this.pollMs = options.pollMs ?? 100;
    this.lingerMs = options.lingerMs ?? 500;
    this.recheckBytes = options.recheckBytes ?? Math.max(options.chunkSize, DEFAULT_RECHECK);
    this.delivery = {
      sink: options.sink,
      pacer: new Pacer(options.chunkPauseMs, this.abort.signal),
      chunkSize: options.chunkSize,
      recheckBytes: this.recheckBytes,
    };
    this.log = options.log;
    this.host = {
      state: this.state,
      sink: options.sink,
      log: options.log,
      resume: (record, p, fh) => resume(record, p, fh, this.recheckBytes),
      recordGap: async (gap) => {
        await options.sink.putGap(gap);
        this.emit('gap', gap);
      },
      warnOnce: (key, details, message) => {
        if (this.warned.has(key)) return;
        this.warned.add(key);
        this.log.warn(details, message);
      },
      clearWarning: (key) => this.warned.delete(key),
    };
    this.manifest = new ManifestFollower(this.host, (m) => this.emit('manifest', m));
    this.single = new SingleFileFollower(this.host);
    this.sizes = new SizeSampler(options.sink, options.log, options.sizeSampleMs ?? 1000, () =>
      aofSize(this.layout, this.manifest.manifest),
    );
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
    this.sizeLoop = this.sizes.run(this.abort.signal);
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
    const loop = this.loop;
    if (loop === null || this.stopping) return;
    this.drains.active++;
    try {
      await Promise.race([this.drains.add(), loop]);
    } finally {
      this.drains.active--;
    }
  }

  status(): AofCaptureStatus {
    const current = this.state.files.at(-1);
    let lag = 0;
    for (const f of this.state.files) lag += Math.max(0, (f.lastSize ?? f.pos) - f.pos);
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
      size: this.sizes.last,
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
    const held = await this.options.sink.held();
    this.state.held = held;
    this.state.nextFileNo =
      1 + Math.max(0, ...held.files.map((f) => f.fileNo), ...held.bases.map((b) => b.fileNo));
    this.single.resumeFrom(held);
    this.manifest.resumeFrom(held);
    await this.refresh();
    await adoptLeftovers(this.host, this.layout.dir, (ended) => this.emit('file-ended', ended));
    this.log.info(
      {
        layout: this.layout.kind,
        dir: this.layout.dir,
        files: this.state.files.map((f) => ({
          file: f.record.name,
          fileNo: f.record.fileNo,
          from: f.pos,
        })),
        bases: this.state.pendingBases.map((b) => b.offer.name),
      },
      'AOF capture following',
    );
  }

  // -------------------------------------------------------------------------------------------
  // Following the layout

  /** Looks at the manifest (Redis 7) or the single file (Redis 6) for files Redis added or left. */
  private async refresh(): Promise<void> {
    const layout = this.layout!;
    if (layout.kind === 'multi-part') await this.manifest.refresh(layout);
    else await this.single.refresh(layout);
  }

  // -------------------------------------------------------------------------------------------
  // The loop

  private async run(): Promise<void> {
    let resyncs = 0;
    try {
      while (!this.stopping) {
        try {
          await this.refresh();
          await this.drains.size(this.state);
          const worked = await this.step();
          this.drains.check(this.state);
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
      this.drains.releaseAll();
    }
  }

  /** Does one piece of work; false when there was nothing to do. */
  private async step(): Promise<boolean> {
    // Files Redis has left are finished first, oldest first, so the history stays in order.
    const finished = this.state.files.find((f) => f.done);
    if (finished !== undefined) return this.finishStep(finished);
    const base = this.state.pendingBases[0];
    if (base !== undefined) {
      await this.copyBase(base);
      this.state.pendingBases.shift();
      return true;
    }
    const current = this.state.files.at(-1);
    if (current === undefined) return false;
    return this.chunkStep(current);
  }

  private async chunkStep(f: Tracked): Promise<boolean> {
    const size = (await f.fh.stat()).size;
    f.lastSize = size;
    if (f.recheck !== null || size < f.pos)
      return recheckStep(f, size, this.log, (...a) => this.diverged(...a));
    const available = size - f.pos;
    if (available === 0) {
      f.pendingSince = null;
      return false;
    }
    const now = Date.now();
    f.pendingSince ??= now;
    const linger =
      !f.done &&
      this.drains.active === 0 &&
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
      await recheckStep(f, size, this.log, (...a) => this.diverged(...a));
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
    this.state.files = this.state.files.filter((x) => x !== f);
    this.emit('file-ended', ended);
    return true;
  }

  /** Cuts and sends the next chunk of `f`; false when no whole command is there yet. */
  private async sendChunk(f: Tracked, size: number): Promise<boolean> {
    const sent = await sendChunk(f, size, this.delivery);
    if (sent === null) return false;
    const { meta, result } = sent;
    const bytes = meta.end - meta.start;
    if (result === 'duplicate') this.stats.duplicates++;
    this.stats.chunks++;
    this.stats.bytes += bytes;
    this.stats.lastChunkAt = meta.capturedAt;
    this.log.debug(
      { chunk: chunkId(meta), file: meta.file, bytes, commands: meta.commands, result },
      'AOF chunk stored',
    );
    this.emit('chunk', meta);
    return true;
  }

  private async diverged(f: Tracked, size: number, why: string): Promise<RfError> {
    const { gap, error } = divergence(f, size, why);
    await this.options.sink.putGap(gap).catch(() => undefined);
    this.emit('gap', gap);
    return error;
  }

  private async copyBase(base: PendingBase): Promise<void> {
    const { offer } = base;
    const { result, sha256 } = await copyBase(base, this.delivery);
    this.stats.bases++;
    this.log.info(
      { file: offer.name, fileNo: offer.fileNo, format: offer.format, bytes: offer.bytes, result },
      'AOF base stored',
    );
    this.emit('base', { ...offer, sha256 });
  }

  // -------------------------------------------------------------------------------------------
  // Size sampling, drains, shutdown

  private async closeAll(): Promise<void> {
    for (const f of this.state.files) await f.fh.close().catch(() => undefined);
    for (const b of this.state.pendingBases) await b.fh.close().catch(() => undefined);
    this.state.files = [];
    this.state.pendingBases = [];
    this.state.seen.clear();
    this.manifest.reset();
  }
}
