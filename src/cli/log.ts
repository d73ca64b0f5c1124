import { type ImpreciseWindow, WindowLookup } from '../bounds/windows.js';
import { openReader } from '../daemon/open-reader.js';
import { Exit, RfError } from '../errors.js';
import { mergeByTime } from '../log/merge.js';
import {
  emptyLogStats,
  type LogFilter,
  type LogStats,
  type LogWrite,
  queryLog,
} from '../log/query.js';
import { slotOf } from '../replication/cluster-topology.js';
import { describeServer } from '../replication/server-info.js';
import { type RepoFlags, repoFromFlags } from '../repo/open.js';
import { formatCommand, jsonArg } from '../resp/format.js';
import { literalKey } from '../resp/glob.js';
import { Archive } from '../store/archive.js';
import { type ClusterRecord, readCluster } from '../store/cluster.js';
import { describeInstant, formatInZone, isoUtc, type ResolvedTime, resolveTime } from '../time.js';
import { out, reportError } from './output.js';
import { withFetchProgress } from './repo-progress.js';

export interface LogOptions extends RepoFlags {
  store: string;
  name: string;
  since?: string;
  until?: string;
  key?: string;
  db?: number;
  command?: string;
  tz?: string;
  json?: boolean;
}

/** Text output shows this much of each argument; --json gives every byte. */
const TEXT_ARG_BYTES = 256;
/** Lines are written in blocks of about this many characters. */
const BLOCK = 64 * 1024;

export async function run(options: LogOptions): Promise<number> {
  const began = Date.now();
  try {
    const zone = options.tz;
    const lines: string[] = [];
    let pending = 0;
    const flush = () => {
      if (lines.length === 0) return;
      out.line(lines.join('\n'));
      lines.length = 0;
      pending = 0;
    };
    const { stats, since, until } = await readLog(options, {
      note: (text) => out.note(text),
      write: (w, window) => {
        const line = options.json
          ? JSON.stringify(logRecord(w, window))
          : textLine(w, zone, options.name, window);
        lines.push(line);
        pending += line.length;
        if (pending >= BLOCK) flush();
        return true;
      },
    });
    flush();

    for (const d of stats.damaged) {
      out.note(
        `rf: ${d.code}: timeline ${d.timeline} offsets ${d.start}..${d.end} could not be read; its writes are not shown (${d.message})`,
      );
    }
    out.note(summary(stats, since, until, (Date.now() - began) / 1000));
    if (stats.damaged.length > 0) {
      out.note('  next: run `rf verify` to list every damaged part of the archive');
      return Exit.integrity;
    }
    return Exit.ok;
  } catch (err) {
    return reportError(err, options.json === true);
  }
}

export interface LogHooks {
  /** What rf says about the window before the writes (the instants it resolved). */
  note(text: string): void;
  /** Each matching write in order, with the imprecise window it lies in; `false` stops the read. */
  write(w: LogWrite, late: ImpreciseWindow | undefined): boolean;
}

/** The one read of `rf log`: resolves the window, fetches from the bucket if asked, queries. */
export async function readLog(
  options: LogOptions,
  hooks: LogHooks,
): Promise<{ stats: LogStats; since: ResolvedTime | null; until: ResolvedTime | null }> {
  const filter = parseFilter(options);
  const repo = await repoFromFlags(options);
  // The bucket's code (and the restore planning it fetches by) loads only for --repo.
  const cache =
    repo === undefined
      ? undefined
      : await (await import('../repo/cache.js')).RepoCache.open(repo, options.name);
  const kv = cache === undefined ? await openReader(options.store) : cache.reader();
  try {
    const archive = new Archive(kv);
    const cluster = await readCluster(kv, options.name);
    const shards = cluster === undefined ? undefined : clusterSources(cluster, filter.key);
    const sources = shards === undefined ? [options.name] : shards.sources;
    const timelines = (await Promise.all(sources.map((s) => archive.timelines(s)))).flat();
    const records = await Promise.all(sources.map((s) => archive.requireSource(s)));
    const latest = timelines.reduce<number | undefined>(
      (m, t) => (m === undefined || t.lastTime > m ? t.lastTime : m),
      undefined,
    );
    // No zone is looked up unless a time is given: the first Intl call loads ICU's data.
    const ctx = {
      now: Date.now(),
      ...(options.tz === undefined ? {} : { tz: options.tz }),
      ...(latest === undefined ? {} : { latest }),
    };
    const since = options.since === undefined ? null : resolveTime(options.since, ctx);
    const until = options.until === undefined ? null : resolveTime(options.until, ctx);
    // Every command that takes a time says what it understood, before it acts.
    hooks.note(since === null ? 'since the first write archived' : describeInstant(since, 'since'));
    hooks.note(until === null ? 'until the last write archived' : describeInstant(until, 'until'));
    if (shards !== undefined) hooks.note(shards.note);
    // Which server wrote these: Redis 6 propagates expiries relative, 7.0 absolute.
    for (const record of records)
      if (record.server !== undefined)
        hooks.note(`source ${record.name}: ${describeServer(record.server)}`);
    if (since !== null && until !== null && since.ms > until.ms) {
      throw new RfError(
        'RF_USAGE',
        `--since ${isoUtc(since.ms)} is after --until ${isoUtc(until.ms)}`,
        {
          details: { since: isoUtc(since.ms), until: isoUtc(until.ms) },
          hint: 'swap them: --since is the start of the window',
        },
      );
    }

    // From the bucket alone: the stream packs that overlap the window.
    if (cache !== undefined) {
      const { fetchForLog } = await import('../repo/fetch.js');
      for (const source of sources)
        await withFetchProgress(cache, () =>
          fetchForLog(cache, source, since?.ms ?? null, until?.ms ?? null),
        );
    }
    const late = new Map<string, WindowLookup>();
    for (const source of sources)
      late.set(source, new WindowLookup(await archive.imprecise(source)));
    const stats = emptyLogStats();
    const window = { since: since?.ms ?? null, until: until?.ms ?? null };
    const writes = mergeByTime(sources.map((s) => queryLog(archive, s, window, filter, stats)));
    for await (const w of writes) {
      if (!hooks.write(w, late.get(w.source)?.at(w.timeline, w.offset))) break;
    }
    return { stats, since, until };
  } finally {
    await kv.close();
  }
}

/**
 * The shard sources of a cluster `rf log` reads, and what the note says of them. Every shard is
 * read, even for a key whose slot the record names owners of: while a slot migrates, the
 * importing shard takes the key (RESTORE-ASKING) and writes sent with ASKING before any topology
 * names it as the owner, and a migration abandoned with SETSLOT STABLE never does (cluster.c
 * getNodeByQuery). The key index keeps that cheap: a shard whose segments cannot hold the key is
 * passed over segment by segment, not read.
 */
function clusterSources(
  cluster: ClusterRecord,
  key: Buffer | undefined,
): { sources: string[]; note: string } {
  const sources = cluster.shards.map((s) => s.source);
  const head = `cluster ${cluster.name}: ${sources.length} shards read`;
  const literal = key === undefined ? null : literalKey(key);
  if (literal === null) return { sources, note: head };
  const slot = slotOf(literal);
  const owners = new Set<string>();
  for (const change of cluster.slots)
    for (const [id, ranges] of Object.entries(change.owners))
      if (ranges.some(([a, b]) => a <= slot && slot <= b)) owners.add(id);
  const named = cluster.shards.filter((s) => owners.has(s.id)).map((s) => s.id);
  const by = named.length === 0 ? 'no shard recorded as its owner' : `owned by ${named.join(', ')}`;
  return { sources, note: `${head} (slot ${slot}: ${by}; the others through their key index)` };
}

function parseFilter(options: LogOptions): LogFilter {
  const filter: LogFilter = {};
  if (options.key !== undefined) filter.key = Buffer.from(options.key, 'utf8');
  if (options.db !== undefined) filter.db = options.db;
  if (options.command !== undefined) filter.command = options.command.toLowerCase();
  return filter;
}

/** Writes come many to a millisecond: the last time formatted is kept. */
let lastTime = { ms: Number.NaN, zone: undefined as string | undefined, text: '' };

function timeText(ms: number, zone: string | undefined): string {
  if (lastTime.ms !== ms || lastTime.zone !== zone) {
    lastTime = { ms, zone, text: zone === undefined ? isoUtc(ms) : formatInZone(ms, zone) };
  }
  return lastTime.text;
}

function textLine(
  w: LogWrite,
  zone: string | undefined,
  named: string,
  late?: ImpreciseWindow,
): string {
  const time = timeText(w.time, zone);
  const tx = w.multiAt === null ? '' : `  [in MULTI at ${w.multiAt}]`;
  // A late write's time is the latest it can have run at; it ran after the window's start.
  const mark =
    late === undefined
      ? ''
      : `  [late: ran after ${zone === undefined ? isoUtc(late.from) : formatInZone(late.from, zone)}]`;
  const shard = w.source === named ? '' : `  ${w.source}`;
  return `${time}  db ${w.db}${shard}  tl ${w.timeline}  offset ${w.offset}  ${formatCommand(w.args, TEXT_ARG_BYTES)}${tx}${mark}`;
}

/** One JSON line per write: the fields are stable, new ones may be added. */
export function logRecord(w: LogWrite, late?: ImpreciseWindow) {
  return {
    time: isoUtc(w.time),
    db: w.db,
    source: w.source,
    timeline: w.timeline,
    offset: w.offset,
    command: w.name.toUpperCase(),
    args: w.args.slice(1).map(jsonArg),
    multiAt: w.multiAt,
    /** Received late: it ran after `from` and at or before `time` (null: captured live). */
    late: late === undefined ? null : { from: isoUtc(late.from), until: isoUtc(w.time) },
  };
}

function summary(
  stats: LogStats,
  since: ResolvedTime | null,
  until: ResolvedTime | null,
  seconds: number,
): string {
  const window = since === null && until === null ? 'in the whole archive' : 'in the window';
  const skipped = stats.skipped === 0 ? '' : `, ${stats.skipped} passed over by the key index`;
  return `${stats.matched} of ${stats.writes} writes ${window} matched (${stats.segments} segments read${skipped} in ${seconds.toFixed(2)} s)`;
}
