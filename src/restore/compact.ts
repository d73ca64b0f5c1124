/**
 * `rf compact`: a base rolled forward off the master. rf rebuilds the dataset at a transaction
 * boundary in a private scratch redis-server (the newest older base, then the stream up to the
 * cut, exactly as `--target` loads an instance), saves it there, and stores the file as a base
 * of the same timeline at the cut's offset. The master pays nothing, and a restore after it
 * replays only the stream since that offset.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { RdbChecker } from '../rdb/check.js';
import { Archive } from '../store/archive.js';
import { keys } from '../store/keys.js';
import { readRecord, type Store } from '../store/store.js';
import { addBase, tmpFile } from '../store/timelines.js';
import type { BaseMeta } from '../store/types.js';
import { type ResolvedTime, resolveTime } from '../time.js';
import { latestInstant, type Prepared, prepareStream } from './prepare.js';
import { ScratchServer } from './scratch.js';

/** Longest wait with no progress from the scratch server while it loads or saves. */
export const SCRATCH_IDLE_MS = 120_000;

export interface CompactOptions extends RollOptions {
  /** Opens the store for writing (a running `rf listen` holds it: RF_STORE_LOCKED). */
  open: () => Promise<Store>;
}

/** What rolling a base forward takes besides the store. */
export interface RollOptions {
  name: string;
  /** The moment as the operator wrote it; `latest` is the newest write archived. */
  until: string;
  tz: string;
  now: number;
  redisServer?: string;
  /** Longest wait with no progress from the scratch server. */
  idleTimeoutMs: number;
  log: Logger;
  onResolved?: (until: ResolvedTime) => void;
}

export interface CompactResult {
  source: string;
  until: ResolvedTime;
  timeline: number;
  /** The base it was rolled from, and what was replayed on top of it. */
  from: { file: string; offset: number };
  replay: { commands: number; writes: number; bytes: number };
  /** Rolled bases passed over because their file is damaged. */
  skippedBases: Prepared['skippedBases'];
  /** False when a base at the cut's offset already stood for this state: nothing was built. */
  built: boolean;
  base: BaseMeta;
}

export async function compact(options: CompactOptions): Promise<CompactResult> {
  const store = await options.open();
  try {
    return await rollBase(store, options);
  } finally {
    await store.close();
  }
}

/**
 * Rolls a base forward in a store already open for writing: by `rf compact`, or by `rf listen
 * --roll-base-every` on the store it owns, while it captures (only sealed segments are read).
 */
export async function rollBase(store: Store, options: RollOptions): Promise<CompactResult> {
  const { name, log } = options;
  const archive = new Archive(store);
  const latest = await latestInstant('stream', archive, store, name);
  const until = resolveTime(options.until, {
    now: options.now,
    tz: options.tz,
    ...(latest === undefined ? {} : { latest }),
  });
  options.onResolved?.(until);
  const prepared = await prepareStream(store, archive, name, until.ms);
  const timeline = prepared.timeline;
  const fromOffset = prepared.base.offset;
  const cutOffset = prepared.replay.cutOffset;
  if (timeline === null || fromOffset === null || cutOffset === null || !prepared.base.file)
    throw new TypeError('compact: a stream plan has a timeline, a base and a cut');
  const rdbVersion = prepared.layout.rdbVersion ?? 0;
  if (rdbVersion <= 9) {
    // A Redis 6 stream carries relative expiries, which replay converts only on top of the
    // master's own base; a base saved by a Redis 7 scratch would lose that distinction.
    throw new RfError(
      'RF_RDB_UNSUPPORTED',
      `timeline ${timeline} comes from a Redis older than 7.0 (RDB ${rdbVersion}): rf rolls bases forward only for Redis 7 timelines`,
      {
        details: { source: name, timeline, rdbVersion },
        hint: 'take fresh bases from the master instead: rf listen --base-every',
      },
    );
  }
  const result = {
    source: name,
    until,
    timeline,
    from: { file: prepared.base.file, offset: fromOffset },
    skippedBases: prepared.skippedBases,
  };
  const existing = await readRecord<BaseMeta>(store, keys.base(name, timeline, cutOffset));
  if (existing !== undefined) {
    // The base the plan starts from, or one already rolled to this offset: it stands for T.
    return {
      ...result,
      replay: { commands: 0, writes: 0, bytes: 0 },
      built: false,
      base: existing,
    };
  }
  const base = await build(options, store, prepared, { timeline, fromOffset, cutOffset, until });
  log.info(
    { timeline, offset: base.offset, fromOffset, bytes: base.bytes, digest: base.rolled?.digest },
    'rolled base stored',
  );
  const { stats } = prepared;
  return {
    ...result,
    replay: { commands: stats.commands, writes: stats.writes, bytes: stats.bytes },
    built: true,
    base,
  };
}

async function build(
  options: RollOptions,
  store: Store,
  prepared: Prepared,
  at: { timeline: number; fromOffset: number; cutOffset: number; until: ResolvedTime },
): Promise<BaseMeta> {
  const source = await new Archive(store).timelines(options.name);
  const replid = source.find((t) => t.id === at.timeline)?.replid;
  if (replid === undefined) throw new TypeError(`compact: timeline ${at.timeline} is not stored`);
  // The base is checked before the scratch receives it, as a --target restore does.
  await prepared.check();
  const scratch = await ScratchServer.start({
    ...(options.redisServer === undefined ? {} : { redisServer: options.redisServer }),
    log: options.log,
  });
  const tmp = tmpFile(store, 'rolled-base');
  try {
    const saved: { file?: string; digest?: string } = {};
    // Saved while the scratch is still rf's replica: it expires nothing of its own then, so
    // keys whose expiry has passed since T are kept as they were at T.
    await scratch.load(
      prepared.targetBase(),
      prepared.commands(),
      options.idleTimeoutMs,
      async (c) => {
        const digest = String(
          await c.command(['DEBUG', 'DIGEST'], { timeoutMs: options.idleTimeoutMs }),
        );
        saved.file = await scratch.snapshot(c, options.idleTimeoutMs);
        saved.digest = digest;
      },
    );
    if (saved.file === undefined || saved.digest === undefined)
      throw new TypeError('compact: the scratch server was never saved');
    const { file, digest } = saved;
    await fs.copyFile(file, tmp);
    const snap = await describeRdb(tmp);
    return await addBase(
      store,
      options.name,
      at.timeline,
      {
        tmpFile: tmp,
        replid,
        offset: at.cutOffset,
        // The instant the base stands for: a restore to T at or after it has its cut at or
        // after the base's offset (the cut at T never moves back past a closed transaction).
        takenAt: at.until.ms,
        ...snap,
        transfer: 'disk',
      },
      { builtBy: 'rf', fromOffset: at.fromOffset, digest, redisVersion: scratch.version },
    );
  } finally {
    await fs.rm(tmp, { force: true });
    await scratch.stop();
  }
}

/** sha256, length and RDB version of the saved file, which must pass the RDB check; fsynced. */
async function describeRdb(
  file: string,
): Promise<{ bytes: number; sha256: string; rdbVersion: number }> {
  const hash = createHash('sha256');
  const checker = new RdbChecker(file);
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    checker.update(chunk as Buffer);
  }
  const checked = checker.finish();
  const fh = await fs.open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { bytes: checked.bytes, sha256: hash.digest('hex'), rdbVersion: checked.version };
}
