import path from 'node:path';
import { redisConnection } from '../config.js';
import { openReader } from '../daemon/open-reader.js';
import { silentLogger } from '../logger.js';
import { redactUrl } from '../redis-url.js';
import { RepoCache } from '../repo/cache.js';
import { fetchForRestore } from '../repo/fetch.js';
import { type RepoFlags, repoFromFlags } from '../repo/open.js';
import type { ConflictMode, TtlMode } from '../restore/into/decide.js';
import { type OutLayout, parseLayout } from '../restore/layout.js';
import { windowJson } from '../restore/plan.js';
import {
  type RestoreInto,
  type RestoreOptions as RestoreRequest,
  type RestoreResult,
  restore,
} from '../restore/restore.js';
import { describeInstant, isoUtc, machineZone } from '../time.js';
import { formatBytes, out, reportError, usageError } from './output.js';
import { Progress } from './progress.js';
import { withFetchProgress } from './repo-progress.js';
import {
  clusterToRestore,
  namesCluster,
  runClusterInto,
  runClusterOut,
  runClusterPlan,
} from './restore-cluster.js';
import { checkIntoFlags, intoRunning, reportInto, stopIntoProgress } from './restore-into.js';

export interface RestoreOptions extends RepoFlags {
  store: string;
  until: string;
  out?: string;
  target?: string;
  into?: string;
  key: string[];
  db: number[];
  conflict: ConflictMode;
  ttl: TtlMode;
  redisServer?: string;
  functions?: boolean;
  name: string;
  from: 'stream' | 'aof' | 'auto';
  tz?: string;
  dryRun?: boolean;
  acceptImprecise?: boolean;
  passwordFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  serveHost?: string;
  /** In ms, as options.ts parsed it. */
  targetTimeout: number;
  /** redis6 | redis7: the --out layout, instead of the one the archive implies. */
  layout?: string;
  json?: boolean;
}

export async function run(options: RestoreOptions): Promise<number> {
  // --target may carry a password: keep it out of `ps`.
  process.title = 'rf restore';
  const began = Date.now();
  try {
    const given = (['out', 'target', 'into'] as const).filter((k) => options[k] !== undefined);
    if (given.length > 1) {
      throw usageError(
        `give one of --out, --target and --into, not ${given.map((k) => `--${k}`).join(' and ')}`,
      );
    }
    checkIntoFlags(options);
    if (given.length === 0 && !options.dryRun) {
      throw usageError(
        'say where to restore: --out <dir> or --target <redis-url> (or --dry-run to see the plan)',
        'rf restore --store DIR --until "2026-11-24T15:12:01Z" --out /tmp/restored',
      );
    }
    if (options.layout !== undefined && options.out === undefined) {
      throw usageError(
        '--layout says how --out writes its directory; give it with --out',
        'rf restore --store DIR --until latest --out /tmp/restored --layout redis6',
      );
    }
    // A cluster's name restores every shard at one T, from the store or the bucket.
    const intoUrl = options.into;
    const outDir = options.dryRun ? undefined : options.out;
    if (options.target !== undefined && (await namesCluster(options))) {
      throw usageError(
        `${options.name} is a cluster: --target loads one instance from one stream`,
        `restore it with --out <dir> (a directory per shard) or --into ${redactUrl(options.target)} (every shard merged, or routed by slot into a running cluster)`,
      );
    }
    const cluster =
      outDir !== undefined || intoUrl !== undefined || options.dryRun === true
        ? await clusterToRestore(options)
        : undefined;
    if (cluster !== undefined) {
      try {
        if (intoUrl !== undefined)
          return await runClusterInto(
            { ...options, into: intoUrl },
            cluster.cluster,
            began,
            cluster.open,
          );
        return outDir !== undefined
          ? await runClusterOut({ ...options, out: outDir }, cluster.cluster, began, cluster.open)
          : await runClusterPlan(options, cluster.cluster, began, cluster.open);
      } finally {
        await cluster.close();
      }
    }
    const result = await restoreFor(options, {
      // Every command that takes a time says what it understood, before it acts.
      onResolved: (until) => out.note(describeInstant(until)),
      onWrite: (read) =>
        new Progress('restore', () => {
          const p = read();
          return { ...p, text: `${p.commands} commands, ${formatBytes(p.bytes)}` };
        }).start(),
    });
    report(options, result, began);
    return 0;
  } catch (err) {
    return reportError(err, options.json === true);
  } finally {
    stopIntoProgress();
  }
}

/** The one call of restore() for a source: from the store (through rf listen) or the bucket. */
export async function restoreFor(
  options: RestoreOptions,
  hooks: Pick<RestoreRequest, 'onResolved' | 'onWrite'>,
): Promise<RestoreResult> {
  const repo = await repoFromFlags(options);
  const tz = options.tz ?? machineZone();
  const now = Date.now();
  return restore({
    open:
      repo === undefined
        ? () => openReader(options.store)
        : async () => {
            // From the bucket alone: the one base and the segments after it, fetched first.
            const cache = await RepoCache.open(repo, options.name);
            try {
              await withFetchProgress(cache, () =>
                fetchForRestore(cache, options.name, options.until, {
                  tz,
                  now,
                  from: options.from,
                  // Only a staged directory (or a dry run) may read packs as they arrive.
                  settle: !options.dryRun && options.out === undefined,
                }),
              );
            } catch (err) {
              await cache.close();
              throw err;
            }
            return cache.reader();
          },
    name: options.name,
    until: options.until,
    tz,
    now,
    from: options.from,
    into: options.dryRun && options.into === undefined ? null : into(options),
    acceptImprecise: options.acceptImprecise === true,
    ...hooks,
  });
}

function into(options: RestoreOptions): RestoreInto {
  if (options.out !== undefined) {
    return {
      kind: 'dir',
      dir: options.out,
      ...(options.layout === undefined ? {} : { layout: parseLayout(options.layout) }),
    };
  }
  if (options.into !== undefined) return intoRunning(options, options.into);
  const url = options.target!;
  const { endpoint, tlsOptions } = redisConnection(url, options);
  return {
    kind: 'target',
    url: redactUrl(url),
    target: {
      endpoint,
      ...(tlsOptions ? { tlsOptions } : {}),
      ...(options.serveHost !== undefined ? { serveHost: options.serveHost } : {}),
      idleTimeoutMs: options.targetTimeout,
      log: silentLogger(),
    },
  };
}

/** The `--json` document of `rf restore` (and of `--dry-run`, the plan). */
export function resultJson(r: RestoreResult, began: number) {
  const { until, replay, dropped } = r;
  const into =
    r.into === null
      ? null
      : r.into.kind === 'dir'
        ? { ...r.into, command: bootCommand(r.into.dir, r.into.layout) }
        : r.into;
  const result = {
    ok: true,
    dryRun: r.dryRun,
    source: r.source,
    from: r.from,
    precision: r.precision,
    until: { input: until.input, utc: isoUtc(until.ms), zone: until.zone },
    timeline: r.timeline,
    base: {
      file: r.base.file,
      offset: r.base.offset,
      takenAt: isoUtc(r.base.takenAt),
      bytes: r.base.bytes,
      rolled: r.base.rolled,
    },
    skippedBases: r.skippedBases,
    replay,
    lastWrite:
      r.lastWrite === null
        ? null
        : {
            offset: r.lastWrite.offset,
            time: isoUtc(r.lastWrite.time),
            command: r.lastWrite.command,
          },
    droppedTransaction:
      dropped === null
        ? null
        : {
            multiAt: dropped.multiAt,
            time: dropped.time === null ? null : isoUtc(dropped.time),
            commands: dropped.commands,
            reason: dropped.reason,
          },
    into,
    imprecise: r.imprecise === null ? null : windowJson(r.imprecise),
    chosenBecause: r.chosenBecause,
    seconds: (Date.now() - began) / 1000,
  };
  return r.into?.kind === 'into'
    ? {
        ...result,
        written: r.into.written,
        skipped: r.into.skipped,
        expired: r.into.expired,
        conflicts: r.into.conflicts,
      }
    : result;
}

function report(options: RestoreOptions, r: RestoreResult, began: number): void {
  const result = resultJson(r, began);
  const { replay, dropped } = r;
  const into = result.into;
  if (options.json) {
    out.json(result);
    return;
  }
  const where =
    r.from === 'stream' ? `timeline ${r.timeline}` : `the AOF chunks (${r.precision} precision)`;
  out.line(`${options.dryRun ? 'plan' : 'restored'}: source ${options.name}, ${where}`);
  if (r.chosenBecause !== null) {
    const why =
      r.chosenBecause === 'stream-gap'
        ? 'the target time falls in a gap of the stream'
        : 'the stream received the writes around the target time late';
    out.line(`  record       the AOF chunks, which place it to the second: ${why}`);
  }
  if (r.imprecise !== null) {
    const w = r.imprecise;
    out.line(
      `  imprecise    the target time falls in an imprecise window (${isoUtc(w.from)} .. ${isoUtc(w.until)}, offsets ${w.firstOffset}..${w.lastOffset}): cut by the latest time each write can have run at (--accept-imprecise); writes stored after it may have run before it`,
    );
  }
  out.line(
    `  base         ${r.base.file === null ? '(none: the AOF starts empty)' : path.join(options.store, r.base.file)} (${r.base.offset === null ? '' : `offset ${r.base.offset}, `}taken ${isoUtc(r.base.takenAt)}, ${formatBytes(r.base.bytes)})`,
  );
  if (r.base.rolled !== null) {
    out.line(
      `               a rolled base: built by rf from the base at offset ${r.base.rolled.fromOffset} (digest ${r.base.rolled.digest})`,
    );
  }
  for (const skipped of r.skippedBases) {
    out.line(
      `  skipped      the rolled base at offset ${skipped.offset} (${skipped.file}): ${skipped.reason}`,
    );
  }
  const range =
    replay.fromOffset === null ? '' : `offsets ${replay.fromOffset}..${replay.cutOffset}: `;
  out.line(
    `  replay       ${range}${replay.writes} writes in ${replay.segments} ${r.from === 'stream' ? 'segments' : 'chunks'} (${formatBytes(replay.bytes)})`,
  );
  out.line(
    `  last write   ${r.lastWrite === null ? 'none after the base' : `${isoUtc(r.lastWrite.time)}  ${r.from === 'stream' ? 'offset' : 'byte'} ${r.lastWrite.offset}  ${r.lastWrite.command.toUpperCase()}`}`,
  );
  if (dropped !== null) {
    const why =
      dropped.reason === 'open-at-archive-end'
        ? 'the archive ends inside it'
        : 'the target time falls inside it';
    out.line(
      `  dropped      a transaction (MULTI at ${r.from === 'stream' ? 'offset' : 'byte'} ${dropped.multiAt}${dropped.time === null ? '' : `, ${isoUtc(dropped.time)}`}, ${dropped.commands} commands): ${why}`,
    );
  }
  if (into?.kind === 'into') {
    reportInto(into, r.dryRun, result.seconds);
  } else if (into === null) {
    out.line('nothing written (--dry-run)');
  } else if (into.kind === 'dir') {
    const form = into.layout === 'redis6' ? 'a Redis 6 appendonly.aof' : 'a Redis 7 appendonlydir';
    out.line(
      `wrote ${into.dir} (${form}: ${into.layoutReason}) in ${result.seconds.toFixed(1)} s; start it with:`,
    );
    out.line(`  ${into.command}`);
  } else {
    out.line(
      `loaded ${into.url} in ${result.seconds.toFixed(1)} s; it is a standalone master again`,
    );
  }
}

/**
 * Both layouts boot with --appendonly yes. A Redis 6 appendonly.aof starting with an RDB
 * preamble loads whatever aof-use-rdb-preamble says; it is named so that the rewrites the
 * restored server makes keep the same form.
 */
export function bootCommand(dir: string, layout: OutLayout): string {
  const command = `redis-server --dir ${shellQuote(dir)} --appendonly yes`;
  return layout === 'redis6' ? `${command} --aof-use-rdb-preamble yes` : command;
}

/** A word the shell reads back as it is. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
