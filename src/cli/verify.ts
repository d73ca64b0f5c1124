import { existsSync } from 'node:fs';
import path from 'node:path';
import { RemoteKv } from '../daemon/control-client.js';
import { openReader } from '../daemon/open-reader.js';
import { Exit, hasCode, isRfError, RfError } from '../errors.js';
import { RepoCache } from '../repo/cache.js';
import { type BucketProblem, checkBucket } from '../repo/check.js';
import { type RepoFlags, repoFromFlags } from '../repo/open.js';
import type { RebuiltBase } from '../restore/rebuild-base.js';
import { readCluster } from '../store/cluster.js';
import { reindexSegments } from '../store/reindex.js';
import { type KvReader, Store, storePaths } from '../store/store.js';
import { isoUtc } from '../time.js';
import { emptyCounters, type VerifyCounters, type VerifyProgress } from '../verify/context.js';
import type { KeyIndexRepair } from '../verify/key-index.js';
import { describeLocation, type Location, type Problem } from '../verify/problems.js';
import {
  plannedBytes,
  type SourceReport,
  type SourceToVerify,
  sourcesToVerify,
  verifySource,
} from '../verify/verify.js';
import { formatBytes, out, reportError } from './output.js';
import { Progress } from './progress.js';
import { withFetchProgress } from './repo-progress.js';
import { rebuildBases, rebuiltJson, rebuiltLine } from './verify-rebuild.js';

export interface VerifyCliOptions extends RepoFlags {
  store: string;
  name?: string;
  json?: boolean;
  rebuildBases?: boolean;
  redisServer?: string;
}

export async function run(options: VerifyCliOptions): Promise<number> {
  const began = Date.now();
  try {
    const repo = await repoFromFlags(options);
    let bucket: BucketProblem[] | null = null;
    let kv: KvReader;
    if (repo === undefined) {
      kv = await openStore(options.store);
    } else {
      // From the bucket alone: every object checked against its recorded checksum on the way
      // into a private store, which the archive checks below then read as a local one.
      const cache = await RepoCache.open(repo, options.name);
      try {
        bucket = await withFetchProgress(cache, () => checkBucket(cache));
      } catch (err) {
        await cache.close();
        throw err;
      }
      kv = cache.reader();
    }
    const where = repo === undefined ? options.store : repo.location.url;
    try {
      const sources = await selectSources(kv, options);
      const counters = emptyCounters();
      const progress: VerifyProgress = { done: 0, total: 0, phase: 'planning' };
      progress.total = await plannedBytes(
        kv,
        sources.map((s) => s.source),
      );
      const bar = new Progress('verify', () => ({
        done: progress.done,
        total: progress.total,
        text: progress.phase,
      })).start();
      const reports: SourceReport[] = [];
      try {
        for (const s of sources) {
          reports.push(await verifySource(kv, s.source, { counters, progress }, s.recordProblem));
        }
      } finally {
        bar.stop();
      }
      // Rolled bases rebuilt on this host (a scratch redis-server each), only when asked.
      const rebuilt: RebuiltBase[][] = [];
      if (options.rebuildBases === true) {
        for (const r of reports) rebuilt.push(await rebuildBases(kv, r, options.redisServer));
      }
      const keyIndex: KeyIndexFix[] = [];
      // The bucket is never written by a check: its key index is repaired where it is made.
      for (const r of reports) {
        keyIndex.push(
          bucket === null ? await repairKeyIndex(kv, r) : { added: 0, rebuilt: 0, removed: 0 },
        );
      }
      const seconds = (Date.now() - began) / 1000;
      const problems = reports.reduce((n, r) => n + r.problems.length, 0) + (bucket?.length ?? 0);
      if (options.json) {
        out.json({
          ok: true,
          clean: problems === 0,
          store: where,
          problems,
          ...(bucket === null ? {} : { bucket }),
          sources: reports.map((r, i) => ({
            ...sourceJson(r),
            keyIndex: keyIndex[i],
            ...(options.rebuildBases === true
              ? { rolledBases: (rebuilt[i] ?? []).map(rebuiltJson) }
              : {}),
          })),
          checked: counters,
          seconds,
        });
      } else {
        if (bucket !== null) printBucket(bucket);
        printText(where, reports, keyIndex, rebuilt, counters, seconds, bucket?.length ?? 0);
      }
      return problems === 0 ? Exit.ok : Exit.problems;
    } finally {
      await kv.close();
    }
  } catch (err) {
    return reportError(unreadable(err, options.store), options.json === true);
  }
}

/**
 * Opens the store like every reader does. A LevelDB that exists but will not open (or fails
 * while being read) is an archive that cannot be read at all: exit 4, not "store missing".
 */
async function openStore(dir: string): Promise<KvReader> {
  try {
    return await openReader(dir);
  } catch (err) {
    // The database directory is there but LevelDB will not open it: damaged, not missing.
    if (
      isRfError(err, 'RF_STORE_MISSING') &&
      existsSync(path.join(storePaths(dir).db, 'CURRENT'))
    ) {
      throw new RfError(
        'RF_CORRUPT',
        `the archive in ${dir} cannot be read at all: ${err.message}`,
        {
          details: { store: dir },
          hint: 'the LevelDB index is damaged; restore the store directory from a copy, or start a new store with `rf listen`',
          cause: err,
        },
      );
    }
    throw unreadable(err, dir);
  }
}

function unreadable(err: unknown, dir: string): unknown {
  const corrupt = hasCode(err, 'LEVEL_CORRUPTION') || err instanceof SyntaxError;
  if (!corrupt || isRfError(err)) return err;
  return new RfError(
    'RF_CORRUPT',
    `the archive in ${dir} cannot be read at all: ${(err as Error).message}`,
    {
      details: { store: dir },
      hint: 'the LevelDB index is damaged; restore the store directory from a copy, or start a new store with `rf listen`',
      cause: err,
    },
  );
}

/** What verify did to a source's key index. */
interface KeyIndexFix {
  added: number;
  rebuilt: number;
  removed: number;
}

/**
 * Has the store's owner add, rebuild or remove the key indexes verify found missing, damaged
 * or stray: this process when it holds the store, else the running `rf listen`.
 */
async function repairKeyIndex(kv: KvReader, report: SourceReport): Promise<KeyIndexFix> {
  const repairs = report.keyIndexRepairs;
  const count = (why: KeyIndexRepair['why']) => repairs.filter((r) => r.why === why).length;
  const fix = { added: count('missing'), rebuilt: count('damaged'), removed: count('stray') };
  if (repairs.length === 0) return fix;
  if (kv instanceof Store) await reindexSegments(kv, report.name, repairs);
  else if (kv instanceof RemoteKv) await kv.reindex(report.name, repairs);
  else throw new TypeError('verify: the store is held by neither this process nor a daemon');
  return fix;
}

async function selectSources(kv: KvReader, options: VerifyCliOptions): Promise<SourceToVerify[]> {
  const sources = await sourcesToVerify(kv);
  if (options.name === undefined) return sources;
  // A cluster's name verifies every one of its shards, each as the source it is.
  const cluster = await readCluster(kv, options.name);
  const names = new Set(
    cluster === undefined ? [options.name] : cluster.shards.map((s) => s.source),
  );
  const picked = sources.filter((s) => names.has(s.source.name));
  if (picked.length === 0) {
    throw new RfError(
      'RF_UNKNOWN_SOURCE',
      `the store ${options.store} holds no source named ${options.name}`,
      {
        details: {
          store: options.store,
          name: options.name,
          known: sources.map((s) => s.source.name),
        },
        hint: 'run `rf info` to list the sources',
      },
    );
  }
  return picked;
}

const isoRange = (r: { from: number; until: number } | null) =>
  r === null ? null : { from: isoUtc(r.from), until: isoUtc(r.until) };

function problemJson(p: Problem) {
  return {
    code: p.code,
    source: p.source,
    message: p.message,
    where: p.where,
    ...(p.also === undefined ? {} : { also: p.also }),
    time: isoRange(p.time),
  };
}

function sourceJson(r: SourceReport) {
  return {
    name: r.name,
    clean: r.problems.length === 0,
    timelines: r.timelines.map((t) => ({
      id: t.id,
      replid: t.replid,
      from: isoUtc(t.from),
      until: isoUtc(t.until),
      firstOffset: t.firstOffset,
      durableOffset: t.durableOffset,
      segments: t.segments,
    })),
    gaps: r.gaps.map((g) => ({
      from: isoUtc(g.from),
      until: isoUtc(g.until),
      reason: g.reason,
      before: g.before,
      after: g.after,
    })),
    problems: r.problems.map(problemJson),
    aof: {
      files: r.aof.files,
      gaps: r.aof.gaps.map((g) => ({ ...g, at: isoUtc(g.at) })),
    },
    crossCheck: r.crossCheck,
  };
}

function printText(
  store: string,
  reports: SourceReport[],
  keyIndex: KeyIndexFix[],
  rebuilt: RebuiltBase[][],
  counters: VerifyCounters,
  seconds: number,
  bucketProblems = 0,
): void {
  out.line(`verify ${store}`);
  if (reports.length === 0) out.line('  no source archived yet');
  for (const [i, r] of reports.entries()) {
    out.line();
    out.line(`source ${r.name}`);
    const fix = keyIndex[i];
    if (fix !== undefined && fix.added + fix.rebuilt + fix.removed > 0) {
      const parts = [
        fix.added > 0 ? `added to ${fix.added} segments that had none` : '',
        fix.rebuilt > 0 ? `rebuilt for ${fix.rebuilt} damaged` : '',
        fix.removed > 0 ? `${fix.removed} stray removed` : '',
      ].filter((p) => p !== '');
      out.line(`  key index   ${parts.join(', ')}`);
    }
    for (const t of r.timelines) {
      out.line(`  timeline ${t.id}  ${isoUtc(t.from)} .. ${isoUtc(t.until)}`);
      out.line(
        t.durableOffset >= t.firstOffset
          ? `              offsets ${t.firstOffset}..${t.durableOffset}, ${t.segments} segments`
          : `              base at offset ${t.durableOffset} only: no writes were archived after it`,
      );
    }
    for (const b of rebuilt[i] ?? []) out.line(rebuiltLine(b));
    for (const g of r.gaps) {
      out.line(`  gap         ${isoUtc(g.from)} .. ${isoUtc(g.until)}  ${g.reason} (on record)`);
    }
    if (r.aof.files.length > 0) {
      const chunks = r.aof.files.reduce((n, f) => n + f.chunks, 0);
      out.line(`  aof         ${r.aof.files.length} files, ${chunks} chunks`);
    }
    for (const g of r.aof.gaps) {
      out.line(
        `  aof gap     ${g.file} bytes ${g.start}..${g.end ?? '?'}  ${g.reason} (on record)`,
      );
    }
    for (const c of r.crossCheck) {
      out.line(
        `  cross-check timeline ${c.timeline} offsets ${c.fromOffset}..${c.untilOffset} with ${c.aofFiles.length} AOF file${c.aofFiles.length === 1 ? '' : 's'}: ${!c.aligned ? 'no common writes' : c.differs ? `${c.compared} writes agree, then they differ` : `${c.compared} writes agree`}`,
      );
    }
    if (r.problems.length === 0) {
      out.line('  no problems');
      continue;
    }
    out.line(`  ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`);
    for (const p of r.problems) {
      out.line(`  ${p.code}  ${describeLocation(p.source, p.where)}`);
      if (p.also !== undefined) out.line(`      and ${describeAlso(p.source, p.also)}`);
      if (p.time !== null) {
        out.line(
          `      ${p.time.from === p.time.until ? `at ${isoUtc(p.time.from)}` : `${isoUtc(p.time.from)} .. ${isoUtc(p.time.until)}`}`,
        );
      }
      out.line(`      ${p.message}`);
    }
  }
  out.line();
  out.line(
    `checked ${counters.segments} segments (${formatBytes(counters.streamBytes)}, ${counters.entries} commands), ${counters.bases} bases (${formatBytes(counters.baseBytes)})${counters.chunks > 0 || counters.aofFiles > 0 ? `, ${counters.chunks} AOF chunks (${formatBytes(counters.chunkBytes)})` : ''}${counters.compared > 0 ? `, ${counters.compared} writes cross-checked` : ''} in ${seconds.toFixed(1)} s`,
  );
  const problems = reports.reduce((n, r) => n + r.problems.length, 0) + bucketProblems;
  out.line(
    problems === 0
      ? 'the archive is whole'
      : `${problems} problem${problems === 1 ? '' : 's'} found: a restore that needs a damaged part is refused; the times above say which restore times are at risk`,
  );
}

function printBucket(problems: readonly BucketProblem[]): void {
  out.line(
    problems.length === 0
      ? 'bucket: every object matches its checksum'
      : `bucket: ${problems.length} problem${problems.length === 1 ? '' : 's'}`,
  );
  for (const p of problems) out.line(`  ${p.kind.padEnd(8)} ${p.object}  ${p.why}`);
}

function describeAlso(source: string, where: Location): string {
  return describeLocation(source, where);
}
