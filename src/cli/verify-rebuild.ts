import { silentLogger } from '../logger.js';
import { SCRATCH_IDLE_MS } from '../restore/compact.js';
import { type RebuiltBase, rebuildRolledBases } from '../restore/rebuild-base.js';
import type { KvReader } from '../store/store.js';
import { isoUtc } from '../time.js';
import type { Problem } from '../verify/problems.js';
import type { SourceReport } from '../verify/verify.js';

/**
 * `rf verify --rebuild-bases`: every rolled base of a verified source rebuilt in a scratch
 * redis-server on this host, and a `base-digest` problem added to its report for each whose
 * recorded digest the rebuild does not give.
 */
export async function rebuildBases(
  kv: KvReader,
  report: SourceReport,
  redisServer: string | undefined,
): Promise<RebuiltBase[]> {
  const rebuilt = await rebuildRolledBases(kv, report.name, {
    ...(redisServer === undefined ? {} : { redisServer }),
    idleTimeoutMs: SCRATCH_IDLE_MS,
    log: silentLogger(),
  });
  for (const r of rebuilt) {
    if (r.rebuilt !== null && r.rebuilt !== r.recorded) report.problems.push(problem(report, r));
  }
  return rebuilt;
}

function problem(report: SourceReport, r: RebuiltBase): Problem {
  const { base, from } = r;
  const start = from === null ? base.rolled.fromOffset : from.offset;
  return {
    code: 'base-digest',
    source: report.name,
    where: {
      timeline: base.timeline,
      file: base.file,
      offsets: { from: start + 1, until: base.offset },
    },
    time: { from: from?.takenAt ?? base.takenAt, until: base.takenAt },
    message: `the rolled base at offset ${base.offset} records DEBUG DIGEST ${r.recorded}, but rebuilding it from the base at offset ${start} and the stream up to ${base.offset} gives ${r.rebuilt}: a restore that starts from it would not give the state at its offset (\`rf restore --dry-run\` names the base a restore starts from)`,
  };
}

/** A rebuilt base in `rf verify --json`: the fields are stable, new ones may be added. */
export function rebuiltJson(r: RebuiltBase) {
  return {
    timeline: r.base.timeline,
    offset: r.base.offset,
    file: r.base.file,
    takenAt: isoUtc(r.base.takenAt),
    fromOffset: r.from?.offset ?? null,
    writes: r.writes,
    recorded: r.recorded,
    rebuilt: r.rebuilt,
    match: r.rebuilt === null ? null : r.rebuilt === r.recorded,
    reason: r.reason,
  };
}

/** One text line for a rebuilt base. */
export function rebuiltLine(r: RebuiltBase): string {
  const what = `rolled base at offset ${r.base.offset}`;
  if (r.rebuilt === null) return `  rebuilt     ${what}: could not rebuild it (${r.reason})`;
  const from = `from the base at offset ${r.from?.offset} and ${r.writes} writes`;
  return r.rebuilt === r.recorded
    ? `  rebuilt     ${what} ${from}: digest ${r.rebuilt} as recorded`
    : `  rebuilt     ${what} ${from}: digest ${r.rebuilt}, recorded ${r.recorded}`;
}
