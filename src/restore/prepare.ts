import type { ImpreciseWindow } from '../bounds/windows.js';
import { isRfError } from '../errors.js';
import type { Archive } from '../store/archive.js';
import { AofArchive } from '../store/chunks.js';
import { assertAofLocal, assertLocal } from '../store/offload.js';
import type { KvReader } from '../store/store.js';
import type { RolledFrom } from '../store/types.js';
import { type AofCut, aofReplay, planAofRestore, readAofBase } from './aof-source.js';
import { basePath, checkBase, emptyRdb, readBase } from './base-file.js';
import type { LayoutEvidence } from './layout.js';
import { planRestore } from './locate.js';
import type { DroppedTransaction, RestorePlan } from './plan.js';
import { emptyStats, type ReplayStats, replayFrames } from './replay.js';

export type RestoreFrom = 'stream' | 'aof';

/** One restore, whichever record it reads: what to write and what to say about it. */
export interface Prepared {
  from: RestoreFrom;
  /** 'bounds': cut inside an imprecise window by the stored times (--accept-imprecise). */
  precision: 'millisecond' | 'second' | 'chunk' | 'bounds';
  /** The imprecise window the cut falls in (only with --accept-imprecise). */
  imprecise: ImpreciseWindow | null;
  timeline: number | null;
  base: {
    file: string | null;
    offset: number | null;
    takenAt: number;
    bytes: number;
    /** Set when the base is one rf rolled forward itself (rf compact). */
    rolled: RolledFrom | null;
  };
  /** Rolled bases the plan passed over because their file is damaged, newest first. */
  skippedBases: { file: string; offset: number; reason: string }[];
  /** The base as --out writes it (null: the incr file alone). */
  dirBase: () => { format: 'rdb' | 'aof'; chunks: AsyncIterable<Buffer> } | null;
  /** The base and commands as --target receives them: an RDB, then the stream. */
  targetBase: () => { bytes: number; chunks: AsyncIterable<Buffer> };
  /** The base as a plain RDB file, when it is one (what targetBase streams); else null. */
  baseFile: string | null;
  commands: () => AsyncIterable<Buffer>;
  check: () => Promise<void>;
  replay: { fromOffset: number | null; cutOffset: number | null };
  dropped: () => DroppedTransaction | null;
  progress: () => { done: number; total: number };
  stats: ReplayStats;
  /** What the record says about the server it came from, for the --out layout. */
  layout: Omit<LayoutEvidence, 'server'>;
}

async function* concat(...parts: AsyncIterable<Buffer>[]): AsyncIterable<Buffer> {
  for (const p of parts) yield* p;
}

async function* once(buf: Buffer): AsyncIterable<Buffer> {
  yield buf;
}

export async function prepareStream(
  kv: KvReader,
  archive: Archive,
  name: string,
  target: number,
  acceptImprecise = false,
): Promise<Prepared> {
  const { plan, skipped } = await planOverDamaged(kv, archive, name, target, acceptImprecise);
  return preparePlan(kv, archive, plan, skipped);
}

/** A stream restore of a plan already made: what prepareStream does once it has chosen one. */
export function preparePlan(
  kv: KvReader,
  archive: Archive,
  plan: RestorePlan,
  skipped: Prepared['skippedBases'] = [],
): Prepared {
  const stats = emptyStats();
  return {
    from: 'stream',
    precision: plan.imprecise === null ? 'millisecond' : 'bounds',
    imprecise: plan.imprecise,
    timeline: plan.timeline.id,
    base: {
      file: plan.base.file,
      offset: plan.base.offset,
      takenAt: plan.base.takenAt,
      bytes: plan.base.bytes,
      rolled: plan.base.rolled ?? null,
    },
    skippedBases: skipped,
    dirBase: () => ({ format: 'rdb', chunks: readBase(kv.dir, plan.base) }),
    targetBase: () => ({ bytes: plan.base.bytes, chunks: readBase(kv.dir, plan.base) }),
    baseFile: basePath(kv.dir, plan.base),
    // RDB 9 and older: a Redis 6 (or 5) timeline, whose stream carries relative expiries.
    commands: () =>
      replayFrames(archive, plan, stats, { relativeExpiries: plan.base.rdbVersion <= 9 }),
    check: () => checkBase(kv.dir, plan.base),
    replay: { fromOffset: plan.fromOffset, cutOffset: plan.cut.offset },
    dropped: () => plan.cut.dropped,
    progress: () => ({
      done: Math.max(0, stats.offset - plan.fromOffset),
      total: Math.max(1, plan.cut.offset - plan.fromOffset),
    }),
    stats,
    layout: { rdbVersion: plan.base.rdbVersion, aofFiles: null },
  };
}

/**
 * The plan, passing over rolled bases whose file fails its checksum. A base from the master is
 * the archive's own record and a damaged one is an error to report; a rolled base is rf's
 * derived copy of what the older base and the stream already hold, so the restore falls back
 * to the base before it (and `rf verify` reports the damage). The rolled base is read once
 * here to check it, before anything is written.
 */
async function planOverDamaged(
  kv: KvReader,
  archive: Archive,
  name: string,
  target: number,
  acceptImprecise: boolean,
): Promise<{ plan: RestorePlan; skipped: Prepared['skippedBases'] }> {
  const skip = new Set<string>();
  const skipped: Prepared['skippedBases'] = [];
  for (;;) {
    const plan = await planRestore(archive, name, target, acceptImprecise, skip);
    // Before anything is written, and before a missing file is taken for a damaged one: a base
    // or stream that --local-retain left in the bucket alone.
    await assertLocal(kv, name, {
      timeline: plan.timeline.id,
      baseFile: plan.base.file,
      fromOffset: plan.fromOffset,
    });
    if (plan.base.via !== 'rolled') return { plan, skipped };
    try {
      await checkBase(kv.dir, plan.base);
      return { plan, skipped };
    } catch (err) {
      if (!isRfError(err, 'RF_CHECKSUM') && !isRfError(err, 'RF_CORRUPT')) throw err;
      skip.add(plan.base.file);
      skipped.push({ file: plan.base.file, offset: plan.base.offset, reason: err.message });
    }
  }
}

export async function prepareAof(kv: KvReader, name: string, target: number): Promise<Prepared> {
  const plan = await planAofRestore(kv, name, target);
  // Before anything is written: chunks that --local-retain left in the bucket alone.
  await assertAofLocal(kv, name, plan.files);
  const stats = emptyStats();
  const cut: AofCut = { dropped: null };
  const format = plan.base.format === 'aof' ? 'aof' : plan.base.format === 'empty' ? null : 'rdb';
  const total = plan.files.reduce((n, f) => n + f.capturedEnd - f.chunkStart, 0);
  return {
    from: 'aof',
    precision: plan.precision,
    imprecise: null,
    timeline: null,
    base: {
      file: plan.base.file,
      offset: null,
      takenAt: plan.baseTime,
      bytes: plan.base.bytes,
      rolled: null,
    },
    skippedBases: [],
    dirBase: () => (format === null ? null : { format, chunks: readAofBase(kv, plan.base) }),
    targetBase: () => {
      if (format === 'rdb') return { bytes: plan.base.bytes, chunks: readAofBase(kv, plan.base) };
      // The target may be any version the AOF came from, Redis 6 included.
      const empty = emptyRdb(9);
      return { bytes: empty.length, chunks: once(empty) };
    },
    baseFile: null,
    // A base made of commands goes to a target ahead of the incr commands, on an empty snapshot.
    commands: () => {
      const incr = aofReplay(kv, plan, stats, cut);
      return format === 'aof' ? concat(readAofBase(kv, plan.base), incr) : incr;
    },
    check: async () => {
      for await (const _ of readAofBase(kv, plan.base)) {
        // reading is the check
      }
    },
    replay: { fromOffset: null, cutOffset: null },
    dropped: () => cut.dropped,
    progress: () => ({ done: stats.offset, total: Math.max(1, total) }),
    stats,
    // Redis 6 writes one appendonly.aof, an RDB preamble in front of its commands.
    layout: {
      rdbVersion: null,
      aofFiles:
        plan.base.format === 'rdb-preamble' || plan.files.some((f) => f.kind === 'single')
          ? 'single'
          : 'multi-part',
    },
  };
}

/** `auto`: the stream when the source has one, else the AOF chunks. */
export async function chooseFrom(
  from: RestoreFrom | 'auto',
  archive: Archive,
  kv: KvReader,
  name: string,
): Promise<RestoreFrom> {
  if (from !== 'auto') return from;
  if ((await archive.timelines(name)).length > 0) return 'stream';
  return (await new AofArchive(kv).files(name)).length > 0 ? 'aof' : 'stream';
}

/** What `latest` means for the record a restore reads (undefined: it holds nothing yet). */
export async function latestInstant(
  from: RestoreFrom,
  archive: Archive,
  kv: KvReader,
  name: string,
): Promise<number | undefined> {
  if (from === 'aof') {
    const stats = await new AofArchive(kv).stats(name);
    return stats.lastChunkAt ?? undefined;
  }
  const times = (await archive.timelines(name)).map((t) => t.lastTime);
  const seen = await archive.seen(name);
  if (seen !== undefined) times.push(seen.time);
  return times.length === 0 ? undefined : Math.max(...times);
}
