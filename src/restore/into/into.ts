import { performance } from 'node:perf_hooks';
import type { Logger } from '../../logger.js';
import { ScratchServer } from '../scratch.js';
import type { ConflictMode, TtlMode } from './decide.js';
import { baseKeys, directBase } from './direct.js';
import { copyLibraries, type Library, type LibraryCopy, scratchLibraries } from './functions.js';
import {
  type KeyBatcher,
  type KeySource,
  NameBatcher,
  type ReadCounters,
  type ScratchKey,
  scratchKeyspace,
  snapshotKeys,
} from './read.js';
import { IntoRun } from './run.js';
import { freezeExpiriesCommand } from './scripts.js';
import { type SplitTransaction, SplitWatch } from './split.js';
import { openTarget, type TargetConnection } from './target.js';

export interface IntoOptions {
  /** The state at T as `--target` would receive it: an RDB, then the commands after it. */
  base: { bytes: number; chunks: AsyncIterable<Buffer> };
  commands: AsyncIterable<Buffer>;
  /**
   * The base as a plain RDB file, already checked, and the replay read once more ahead of
   * `commands`, for the keys it names: then the keys it leaves alone are read from the base,
   * and only the others are rebuilt (direct.ts). Without them, the whole state is rebuilt.
   */
  baseFile?: string | null;
  keyPass?: () => AsyncIterable<Buffer>;
  until: number;
  target: TargetConnection;
  /** `--key` globs (none: every key) and `--db` numbers (none: every db). */
  keys: readonly Buffer[];
  dbs: readonly number[];
  conflict: ConflictMode;
  ttl: TtlMode;
  dryRun: boolean;
  /** Copy the function libraries too (functions.ts). */
  functions: boolean;
  redisServer?: string;
  idleTimeoutMs: number;
  log: Logger;
  /** Counters the run keeps up to date, for a progress display. */
  progress?: IntoProgress;
  /** Told when the scratch server holds the state at T, before the keys are copied. */
  onLoaded?: () => void;
}

/** Batches of RESTORE commands sent before the first of them must have been answered. */
const BATCHES_IN_FLIGHT = 4;

export function emptyIntoProgress(): IntoProgress {
  return { scanned: 0, total: 0, written: 0, skipped: 0, expired: 0 };
}

export interface IntoProgress extends ReadCounters {
  /** Keys in the dbs read, in the state at T. */
  total: number;
  written: number;
  skipped: number;
  expired: number;
}

export interface IntoResult {
  target: string;
  targetKind: 'standalone' | 'cluster';
  dbs: number[];
  /** Keys of the state at T that the selection matched. */
  matched: number;
  written: number;
  /** Written over a key the target held (--conflict replace). */
  replaced: number;
  /** Left as the target has them (--conflict skip). */
  skipped: number;
  expired: number;
  /** The first 100 selected keys that the target already held. */
  conflicts: string[];
  conflictCount: number;
  /** --dry-run: the first 100 names of each. */
  plan: { created: string[]; replaced: string[]; skipped: string[]; expired: string[] } | null;
  /** Transactions of the replay that wrote selected and unselected keys (the first 5 shown). */
  splitTransactions: { count: number; examples: SplitTransaction[] };
  /** --functions: the libraries loaded, replaced and left as the target has them. */
  functions: LibraryCopy | null;
  /**
   * What the scratch server rebuilt: only the keys the replay names (`touched`, their count;
   * every other key was read from the base), or the whole state at T, and why.
   */
  scratch: { rebuilt: 'touched'; keys: number } | { rebuilt: 'whole'; why: string };
}

/**
 * `rf restore --into`: rebuilds the state at T in a private scratch redis-server, then copies
 * the selected keys to a running target with DUMP and RESTORE, batch by batch. Nothing else on
 * the target changes, and no target key is ever deleted.
 */
export async function restoreInto(options: IntoOptions): Promise<IntoResult> {
  const progress = options.progress ?? emptyIntoProgress();
  const phase = phaseLog(options.log);
  const target = await openTarget(options.target);
  let scratch: ScratchServer | null = null;
  try {
    for (const db of options.dbs) await target.checkDb(db);
    scratch = await ScratchServer.start({
      ...(options.redisServer === undefined ? {} : { redisServer: options.redisServer }),
      log: options.log,
    });
    // Only a selection can split a transaction; the whole dataset is not decoded for nothing.
    const split =
      options.keys.length > 0 || options.dbs.length > 0
        ? new SplitWatch({ dbs: options.dbs, patterns: options.keys })
        : null;
    const commands = split === null ? options.commands : split.tap(options.commands);
    phase('scratch started');
    const direct = await directBase(options, scratch.dir);
    phase('replay keys read');
    const base = direct.kind === 'direct' ? direct.scratchBase : options.base;
    await scratch.load(base, withFreeze(commands), options.idleTimeoutMs);
    phase('scratch loaded');
    options.onLoaded?.();
    const client = await scratch.connect({ returnBuffers: true, timeoutMs: options.idleTimeoutMs });
    const sources: KeySource[] = [];
    let dbs: number[];
    let libs: Library[] = [];
    try {
      const keyspace = await scratchKeyspace(client);
      const base = baseKeys(direct);
      dbs = [...new Set([...keyspace.keys(), ...base.dbs])]
        .filter((db) => options.dbs.length === 0 || options.dbs.includes(db))
        .sort((a, b) => a - b);
      for (const db of dbs) await target.checkDb(db);
      progress.total = [...keyspace.values()].reduce((n, k) => n + k, base.count);
      sources.push(...base.sources);
      sources.push({ file: await scratch.streamSnapshot(options.idleTimeoutMs), frozen: true });
      phase('scratch snapshot taken');
      if (options.functions) libs = await scratchLibraries(client);
    } finally {
      client.destroy();
    }
    const run = new IntoRun(options, target, progress, await target.maxBulk());
    const selection = { dbs: options.dbs, patterns: options.keys };
    const read = async <T>(
      batcher: KeyBatcher<T>,
      batch: (db: number, keys: T) => Promise<void>,
    ) => {
      for (const source of sources) await snapshotKeys(source, selection, progress, batcher, batch);
    };
    const plan = (db: number, keys: ScratchKey[]) => run.plan(db, keys);
    // Libraries go before the keys, after the keys' conflict check: under --conflict fail a
    // key or a library in the way refuses the restore before anything is written.
    const copyFunctions = () =>
      options.functions ? copyLibraries(target, libs, options.conflict, options.dryRun) : null;
    let functions: LibraryCopy | null = null;
    if (options.dryRun) {
      functions = await copyFunctions();
      await read(new NameBatcher(), plan);
    } else {
      if (options.conflict === 'fail') {
        // One db at a time: a standalone target has one connection, and SELECT is its state.
        let held = 0;
        for (const db of dbs) held += await target.dbSize(db);
        if (held > 0) await read(new NameBatcher(), plan);
        run.refuseConflicts();
        progress.scanned = 0;
      }
      functions = await copyFunctions();
      // Several batches in flight: the target's round trips overlap each other and the walk
      // of the snapshot.
      const inFlight: Promise<void>[] = [];
      await read(run.writer(), async (db, batch) => {
        if (inFlight.length >= BATCHES_IN_FLIGHT) await inFlight.shift();
        const write = run.write(db, batch);
        write.catch(() => undefined);
        inFlight.push(write);
      });
      for (const write of inFlight) await write;
      phase('keys copied');
      run.refuseTooLarge();
    }
    return {
      ...run.result(dbs),
      splitTransactions: { count: split?.count ?? 0, examples: split?.examples ?? [] },
      functions,
      scratch:
        direct.kind === 'direct'
          ? { rebuilt: 'touched', keys: direct.touched.count }
          : { rebuilt: 'whole', why: direct.why },
    };
  } finally {
    await scratch?.stop();
    await target.close();
  }
}

/** Logs how long each phase of the run took, for profiling a slow restore. */
function phaseLog(log: Logger): (name: string) => void {
  let last = performance.now();
  return (name) => {
    const now = performance.now();
    log.debug({ ms: Math.round(now - last) }, name);
    last = now;
  };
}

async function* withFreeze(commands: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  yield* commands;
  yield freezeExpiriesCommand();
}
