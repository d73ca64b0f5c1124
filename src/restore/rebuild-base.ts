/**
 * `rf verify --rebuild-bases`: a rolled base checked against what it claims to be. Its record
 * holds the scratch server's `DEBUG DIGEST` of the state it was saved from; rf rebuilds that
 * state again, from the base it was rolled forward from and the stream up to its offset, in a
 * new scratch redis-server, and compares the digests. A base rf built from a stream that has
 * changed since, or a record that was altered, no longer agrees.
 */
import { isRfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { Archive } from '../store/archive.js';
import type { KvReader } from '../store/store.js';
import type { BaseMeta, RolledFrom } from '../store/types.js';
import { chooseBase } from './plan.js';
import { preparePlan } from './prepare.js';
import { ScratchServer } from './scratch.js';

export interface RebuildOptions {
  redisServer?: string;
  /** Longest wait with no progress from the scratch server. */
  idleTimeoutMs: number;
  log: Logger;
}

/** One rolled base, rebuilt: `rebuilt` is null when the archive could not rebuild it. */
export interface RebuiltBase {
  base: BaseMeta & { rolled: RolledFrom };
  /** The base the rebuild started from. */
  from: BaseMeta | null;
  recorded: string;
  rebuilt: string | null;
  /** Why there is no rebuilt digest: the base or a segment it needs is damaged. */
  reason: string | null;
  writes: number;
}

/** Every rolled base of a source, oldest first, each rebuilt in its own scratch server. */
export async function rebuildRolledBases(
  kv: KvReader,
  name: string,
  options: RebuildOptions,
): Promise<RebuiltBase[]> {
  const archive = new Archive(kv);
  const bases = await archive.bases(name);
  const rolled = bases
    .filter((b): b is BaseMeta & { rolled: RolledFrom } => b.rolled !== undefined)
    .sort((a, b) => a.timeline - b.timeline || a.offset - b.offset);
  const results: RebuiltBase[] = [];
  for (const base of rolled) results.push(await rebuild(kv, archive, name, base, bases, options));
  return results;
}

async function rebuild(
  kv: KvReader,
  archive: Archive,
  name: string,
  base: BaseMeta & { rolled: RolledFrom },
  bases: readonly BaseMeta[],
  options: RebuildOptions,
): Promise<RebuiltBase> {
  const result = { base, recorded: base.rolled.digest, writes: 0 };
  const timeline = (await archive.timelines(name)).find((t) => t.id === base.timeline);
  if (timeline === undefined)
    return { ...result, from: null, rebuilt: null, reason: `timeline ${base.timeline} is gone` };
  // The base it was rolled from; the one before it when retention has removed that one.
  const older = bases.filter((b) => b.timeline === base.timeline && b.offset < base.offset);
  const recorded = older.filter((b) => b.offset <= base.rolled.fromOffset);
  let from: BaseMeta;
  try {
    from = chooseBase(recorded.length > 0 ? recorded : older, base.timeline, base.offset);
  } catch (err) {
    if (!isRfError(err, 'RF_CORRUPT')) throw err;
    return { ...result, from: null, rebuilt: null, reason: err.message };
  }
  // The cut is the rolled base's own offset, not a time: writes stamped in the same
  // millisecond may have been archived after it was built.
  const prepared = preparePlan(kv, archive, {
    source: name,
    target: base.takenAt,
    timeline,
    base: from,
    fromOffset: from.offset + 1,
    cut: { offset: base.offset, lastApplied: null, dropped: null },
    imprecise: null,
  });
  const scratch = await ScratchServer.start({
    ...(options.redisServer === undefined ? {} : { redisServer: options.redisServer }),
    log: options.log,
  });
  try {
    await prepared.check();
    let digest: string | null = null;
    await scratch.load(
      prepared.targetBase(),
      prepared.commands(),
      options.idleTimeoutMs,
      async (c) => {
        digest = String(await c.command(['DEBUG', 'DIGEST'], { timeoutMs: options.idleTimeoutMs }));
      },
    );
    if (digest === null) throw new TypeError('rebuild: the scratch server was never read');
    return { ...result, from, rebuilt: digest, reason: null, writes: prepared.stats.writes };
  } catch (err) {
    if (!isRfError(err, 'RF_CHECKSUM') && !isRfError(err, 'RF_CORRUPT')) throw err;
    return { ...result, from, rebuilt: null, reason: err.message };
  } finally {
    await scratch.stop();
  }
}
