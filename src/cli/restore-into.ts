import { redisConnection } from '../config.js';
import { silentLogger } from '../logger.js';
import { redactUrl } from '../redis-url.js';
import { emptyIntoProgress, type IntoProgress } from '../restore/into/into.js';
import type { RestoreInto, RestoreResult } from '../restore/restore.js';
import { out, usageError } from './output.js';
import { Progress } from './progress.js';
import type { RestoreOptions } from './restore.js';

type IntoReport = Extract<NonNullable<RestoreResult['into']>, { kind: 'into' }>;

/** The flags only --into reads are refused without it, rather than quietly ignored. */
export function checkIntoFlags(options: RestoreOptions): void {
  if (options.into !== undefined) return;
  const used = [
    options.key.length > 0 ? '--key' : null,
    options.db.length > 0 ? '--db' : null,
    options.conflict !== 'fail' ? '--conflict' : null,
    options.ttl !== 'keep' ? '--ttl' : null,
    options.redisServer !== undefined ? '--redis-server' : null,
    options.functions === true ? '--functions' : null,
  ].filter((f) => f !== null);
  if (used.length > 0) {
    throw usageError(
      `${used.join(', ')} select${used.length === 1 ? 's' : ''} what --into writes; --out and --target restore the whole dataset`,
      'add --into <redis-url>, or leave those flags out',
    );
  }
}

let shown: Progress | null = null;

/** Keys scanned and written, with the rate and, over every key, the time left. */
function keyProgress(p: IntoProgress, everyKey: boolean): Progress {
  const began = Date.now();
  return new Progress('copy', () => {
    const done = p.written + p.skipped + p.expired;
    const rate = done / Math.max(0.001, (Date.now() - began) / 1000);
    const left = everyKey && rate > 0 ? ` ETA ${Math.ceil((p.total - p.scanned) / rate)} s` : '';
    return {
      done: everyKey ? p.scanned : done,
      total: everyKey ? p.total : Math.max(done, 1),
      text: `${p.scanned} scanned, ${p.written} written, ${Math.round(rate)} keys/s${left}`,
    };
  });
}

export function intoRunning(options: RestoreOptions, url: string): RestoreInto {
  const { endpoint, tlsOptions } = redisConnection(url, options);
  const progress = emptyIntoProgress();
  return {
    kind: 'into',
    url: redactUrl(url),
    options: {
      target: {
        endpoint,
        ...(tlsOptions ? { tlsOptions } : {}),
        timeoutMs: Math.min(10_000, options.targetTimeout),
      },
      keys: options.key.map((k) => Buffer.from(k)),
      dbs: options.db,
      conflict: options.conflict,
      ttl: options.ttl,
      dryRun: options.dryRun === true,
      functions: options.functions === true,
      ...(options.redisServer === undefined ? {} : { redisServer: options.redisServer }),
      idleTimeoutMs: options.targetTimeout,
      log: silentLogger(),
      progress,
      onLoaded: () => {
        shown = keyProgress(progress, options.key.length === 0).start();
      },
    },
  };
}

export function stopIntoProgress(): void {
  shown?.stop();
  shown = null;
}

function names(list: string[], count: number): string {
  const head = list.slice(0, 10).map((n) => JSON.stringify(n));
  return `${head.join(', ')}${count > head.length ? `, … (${count} in all)` : ''}`;
}

export function reportInto(r: IntoReport, dryRun: boolean, seconds: number): void {
  const where = `${r.url}${r.targetKind === 'cluster' ? ' (a cluster)' : ''}`;
  const dbs = r.dbs.length === 0 ? 'no database' : `db ${r.dbs.join(', ')}`;
  if (r.matched === 0) {
    out.line(
      `no key of the state at T matches the selection (${dbs} of the state at T): nothing to write`,
    );
    functionsNote(r, dryRun);
    return;
  }
  if (dryRun && r.plan !== null) {
    out.line(`plan for ${where}: ${r.matched} selected keys in ${dbs}`);
    out.line(
      `  create       ${r.plan.created.length === 0 ? 0 : names(r.plan.created, r.matched - r.replaced - r.skipped - r.expired)}`,
    );
    if (r.replaced > 0) out.line(`  replace      ${names(r.plan.replaced, r.replaced)}`);
    if (r.skipped > 0) out.line(`  ${'conflict'.padEnd(12)} ${names(r.plan.skipped, r.skipped)}`);
    if (r.expired > 0) out.line(`  expired      ${names(r.plan.expired, r.expired)}`);
    splitNote(r);
    functionsNote(r, true);
    out.line('nothing written (--dry-run)');
    return;
  }
  out.line(
    `restored into ${where}: ${r.written} written${r.replaced > 0 ? ` (${r.replaced} replaced)` : ''}, ${r.skipped} skipped, ${r.expired} expired, of ${r.matched} selected keys in ${dbs}, in ${seconds.toFixed(1)} s`,
  );
  if (r.skipped > 0)
    out.line(`  kept as they are on the target: ${names(r.conflicts, r.conflictCount)}`);
  splitNote(r);
  functionsNote(r, false);
}

function functionsNote(r: IntoReport, dryRun: boolean): void {
  const f = r.functions;
  if (f === null) return;
  const parts = [
    `${f.loaded.length} ${dryRun ? 'to load' : 'loaded'}${f.loaded.length > 0 ? ` (${f.loaded.join(', ')})` : ''}`,
    f.replaced.length > 0
      ? `${f.replaced.length} ${dryRun ? 'to replace' : 'replaced'} (${f.replaced.join(', ')})`
      : null,
    f.skipped.length > 0
      ? `${f.skipped.length} kept as the target has them (${f.skipped.join(', ')})`
      : null,
  ].filter((p) => p !== null);
  out.line(`  functions    ${parts.join(', ')}`);
}

/** The selection took part of a transaction: each was whole in the state at T, not on the target. */
function splitNote(r: IntoReport): void {
  const { count, examples } = r.splitTransactions;
  if (count === 0) return;
  out.line(
    `  note: the selection splits ${count} transaction${count === 1 ? '' : 's'} of the replay (MULTI/EXEC, scripts, functions): only their selected keys were copied`,
  );
  for (const e of examples) {
    out.line(`    selected ${e.selected.join(', ')}; not selected ${e.unselected.join(', ')}`);
  }
}
