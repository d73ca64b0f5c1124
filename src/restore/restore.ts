/**
 * The one entry point of a restore: choose the record (stream or AOF chunks), resolve the target
 * time against it, prepare the plan, and write it to a directory or a running Redis, or (no
 * destination) only walk it as a dry run. The CLI parses for it and reports what it returns.
 */
import path from 'node:path';
import type { ImpreciseWindow } from '../bounds/windows.js';
import { isRfError } from '../errors.js';
import { encodeCommand } from '../resp/encode.js';
import { Archive } from '../store/archive.js';
import type { KvReader } from '../store/store.js';
import { type ResolvedTime, resolveTime } from '../time.js';
import { type IntoOptions, type IntoResult, restoreInto } from './into/into.js';
import { chooseLayout, type OutLayout } from './layout.js';
import type { DroppedTransaction } from './plan.js';
import {
  chooseFrom,
  latestInstant,
  type Prepared,
  prepareAof,
  prepareStream,
  type RestoreFrom,
} from './prepare.js';
import { checkOutDir, writeRestoreDir } from './write-dir.js';
import { loadTarget, type TargetOptions } from './write-target.js';

/** Where a restore writes; `null` in {@link RestoreOptions.into} is a dry run. */
export type RestoreInto =
  /** `layout` overrides the one the archive implies (--layout). */
  | { kind: 'dir'; dir: string; layout?: OutLayout }
  /** `url` is what the report names the target by: redacted of any password. */
  | { kind: 'target'; target: TargetOptions; url: string }
  /** Selected keys into a running Redis or cluster, through a scratch server (into/into.ts). */
  | { kind: 'into'; options: IntoSettings; url: string };

/** What `--into` takes besides the state at T, which the restore prepares. */
export type IntoSettings = Omit<IntoOptions, 'base' | 'commands' | 'until'>;

export interface RestoreOptions {
  /** Opens the archive; called once the destination is known to be usable, closed before return. */
  open: () => Promise<KvReader>;
  name: string;
  /** The target time as the operator wrote it (time.ts forms, `latest` included). */
  until: string;
  tz: string;
  now: number;
  from: RestoreFrom | 'auto';
  into: RestoreInto | null;
  /** Inside an imprecise window no record places, cut by the stored times instead of refusing. */
  acceptImprecise?: boolean;
  /**
   * Keys deleted after the cut: a cluster restore drops a shard's copy of a key another shard
   * already holds at T (cluster-migrating.ts).
   */
  dropKeys?: readonly Buffer[];
  /** Told the instant `until` resolved to before anything is planned (DESIGN.md: echo it first). */
  onResolved?: (until: ResolvedTime) => void;
  /** Told when the write starts, with a reading of how far it is; `stop` is called when it ends. */
  onWrite?: (read: () => RestoreProgress) => { stop: () => void };
}

export interface RestoreProgress {
  done: number;
  total: number;
  commands: number;
  bytes: number;
}

export interface RestoreResult {
  dryRun: boolean;
  source: string;
  from: RestoreFrom;
  precision: Prepared['precision'];
  until: ResolvedTime;
  timeline: number | null;
  base: Prepared['base'];
  /** Rolled bases passed over because their file is damaged. */
  skippedBases: Prepared['skippedBases'];
  replay: {
    fromOffset: number | null;
    cutOffset: number | null;
    commands: number;
    writes: number;
    bytes: number;
    segments: number;
  };
  lastWrite: { offset: number; time: number; command: string } | null;
  dropped: DroppedTransaction | null;
  into:
    | { kind: 'dir'; dir: string; layout: OutLayout; layoutReason: string }
    | { kind: 'target'; url: string }
    | ({ kind: 'into'; url: string } & IntoResult)
    | null;
  /** The imprecise window the cut falls in (with acceptImprecise), else null. */
  imprecise: ImpreciseWindow | null;
  /** Why --from auto took the AOF record over the stream, or null. */
  chosenBecause: 'stream-gap' | 'imprecise-window' | null;
}

export async function restore(options: RestoreOptions): Promise<RestoreResult> {
  const { into, name } = options;
  // Fail on a used --out before reading anything.
  if (into?.kind === 'dir') await checkOutDir(into.dir);
  const kv = await options.open();
  try {
    const archive = new Archive(kv);
    const from = await chooseFrom(options.from, archive, kv, name);
    const latest = await latestInstant(from, archive, kv, name);
    const until = resolveTime(options.until, {
      now: options.now,
      tz: options.tz,
      ...(latest === undefined ? {} : { latest }),
    });
    options.onResolved?.(until);
    let written: { layout: OutLayout; reason: string } | null = null;
    const chosen = await prepareChosen(options, from, kv, archive, until.ms);
    const { because } = chosen;
    const prepared = withDrops(chosen.prepared, options.dropKeys ?? []);
    if (into === null) {
      for await (const _ of prepared.commands()) {
        // counting only
      }
      await prepared.check();
    } else {
      // The target must not receive a base that fails its checksum: check it before sending.
      if (into.kind !== 'dir') await prepared.check();
      const { stats } = prepared;
      const watch = options.onWrite?.(() => ({
        ...prepared.progress(),
        commands: stats.commands,
        bytes: stats.bytes,
      }));
      try {
        if (into.kind === 'into') {
          const copied = await restoreInto({
            ...into.options,
            base: prepared.targetBase(),
            commands: prepared.commands(),
            baseFile: prepared.baseFile,
            keyPass: () => uncounted(prepared),
            until: until.ms,
            onLoaded: () => {
              watch?.stop();
              into.options.onLoaded?.();
            },
          });
          return {
            ...result(options, until, prepared, null, because),
            into: { ...copied, kind: 'into', url: into.url },
          };
        }
        if (into.kind === 'target') {
          await loadTarget(into.target, prepared.targetBase(), prepared.commands());
        } else {
          written = await outLayout(archive, name, prepared, into.layout);
          await writeRestoreDir(
            path.resolve(into.dir),
            prepared.dirBase(),
            prepared.commands(),
            written.layout,
          );
        }
      } finally {
        watch?.stop();
      }
    }
    return result(options, until, prepared, written, because);
  } finally {
    await kv.close();
  }
}

/** The plan with a DEL of `keys` after its last command (nothing changes without keys). */
function withDrops(prepared: Prepared, keys: readonly Buffer[]): Prepared {
  if (keys.length === 0) return prepared;
  const commands = prepared.commands;
  return {
    ...prepared,
    commands: async function* () {
      yield* commands();
      // Cluster mode has db 0 only; the SELECT makes the DEL land there whatever came before.
      yield encodeCommand(['SELECT', '0']);
      yield encodeCommand(['DEL', ...keys]);
    },
  };
}

/** The layout the restored server loads: the record's base, else the server recorded at capture. */
async function outLayout(
  archive: Archive,
  name: string,
  prepared: Prepared,
  override: OutLayout | undefined,
): Promise<{ layout: OutLayout; reason: string }> {
  const server = (await archive.source(name))?.server ?? null;
  return chooseLayout({ ...prepared.layout, server }, override);
}

/**
 * The plan from the record chosen. With --from auto, a T the stream cannot place (a gap, or an
 * imprecise window: a stall or reconnect leaves the master's AOF untouched) is taken from the
 * AOF record when it covers T to the second; otherwise the stream's refusal stands, or, with
 * acceptImprecise, the stream cuts by its stored times.
 */
async function prepareChosen(
  options: RestoreOptions,
  from: RestoreFrom,
  kv: KvReader,
  archive: Archive,
  target: number,
): Promise<{ prepared: Prepared; because: RestoreResult['chosenBecause'] }> {
  const { name } = options;
  const accept = options.acceptImprecise === true;
  if (from === 'aof') return { prepared: await prepareAof(kv, name, target), because: null };
  if (options.from !== 'auto')
    return { prepared: await prepareStream(kv, archive, name, target, accept), because: null };
  try {
    return { prepared: await prepareStream(kv, archive, name, target), because: null };
  } catch (err) {
    if (!isRfError(err) || (err.code !== 'RF_TIME_IN_GAP' && err.code !== 'RF_TIME_IMPRECISE'))
      throw err;
    const aof = await prepareAof(kv, name, target).catch(() => null);
    if (aof !== null && aof.precision === 'second') {
      return {
        prepared: aof,
        because: err.code === 'RF_TIME_IN_GAP' ? 'stream-gap' : 'imprecise-window',
      };
    }
    if (err.code === 'RF_TIME_IMPRECISE' && accept)
      return { prepared: await prepareStream(kv, archive, name, target, true), because: null };
    throw err;
  }
}

function result(
  options: RestoreOptions,
  until: ResolvedTime,
  p: Prepared,
  written: { layout: OutLayout; reason: string } | null,
  chosenBecause: RestoreResult['chosenBecause'],
): RestoreResult {
  const { stats } = p;
  const { into } = options;
  return {
    dryRun: into === null || (into.kind === 'into' && into.options.dryRun),
    source: options.name,
    from: p.from,
    precision: p.precision,
    until,
    timeline: p.timeline,
    base: p.base,
    skippedBases: p.skippedBases,
    replay: {
      ...p.replay,
      commands: stats.commands,
      writes: stats.writes,
      bytes: stats.bytes,
      segments: stats.segments,
    },
    lastWrite: stats.last,
    dropped: p.dropped(),
    into:
      into === null
        ? null
        : into.kind !== 'dir'
          ? { kind: 'target', url: into.url }
          : {
              kind: 'dir',
              dir: path.resolve(into.dir),
              layout: written?.layout ?? 'redis7',
              layoutReason: written?.reason ?? '',
            },
    imprecise: p.imprecise,
    chosenBecause,
  };
}

/** The replay read once more, for the keys it names: its counts stay those of the restore. */
async function* uncounted(prepared: Prepared): AsyncIterable<Buffer> {
  const before = structuredClone(prepared.stats);
  try {
    yield* prepared.commands();
  } finally {
    Object.assign(prepared.stats, before);
  }
}
