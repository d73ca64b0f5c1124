import { type Dirent, promises as fs } from 'node:fs';
import path from 'node:path';
import { RemoteKv } from '../daemon/control-client.js';
import { openReader } from '../daemon/open-reader.js';
import { RfError } from '../errors.js';
import { type Activity, activity } from '../log/activity.js';
import { describeServer } from '../replication/server-info.js';
import { RepoCache } from '../repo/cache.js';
import { repoStatusKey } from '../repo/layout.js';
import { type RepoFlags, repoFromFlags } from '../repo/open.js';
import type { RepoStatus } from '../repo/uploader.js';
import { aofCoverage, type Coverage } from '../restore/coverage.js';
import { windowJson } from '../restore/plan.js';
import { Archive } from '../store/archive.js';
import { AofArchive } from '../store/chunks.js';
import { keys } from '../store/keys.js';
import { lastDataWrite } from '../store/last-write.js';
import { json } from '../store/store.js';
import { type AofSummary, aofSummary, indexSource, type SourceIndex } from '../store/summary.js';
import type { RetentionRecord } from '../store/types.js';
import { canonicalZone, formatInZone, isoUtc, machineZone } from '../time.js';
import { out, reportError } from './output.js';

export interface InfoOptions extends RepoFlags {
  store: string;
  name?: string;
  tz?: string;
  json?: boolean;
}

/** The columns of the activity sparkline: 80 minus the indent of the `activity` row. */
const ACTIVITY_BINS = 64;
/**
 * Up to this many segments the activity is counted in writes from every segment meta; past it,
 * in stream bytes from one time-index seek per bin (see log/activity.ts).
 */
const ACTIVITY_META_LIMIT = 100_000;

/** What `rf listen` reports about the capture of the source it serves. */
export interface CaptureLag {
  phase: string;
  /** The master's own offset (master_repl_offset), sampled by the daemon. */
  masterOffset: number | null;
  receivedOffset: number | null;
  durableOffset: number | null;
  /** Master offset minus durable offset: the bytes a crash now would have to fetch again. */
  behindBytes: number | null;
  /** Received but not yet committed. */
  pendingBytes: number | null;
  lastReceiveAt: number | null;
  /** Bytes the master's AOF holds that the AOF capture has not stored yet (`--aof-dir`). */
  aofLagBytes: number | null;
  /** Failures of the stream and of the daemon's background jobs since it started, by RF_ code. */
  errors: Record<string, number>;
  lastError: { code: string; message: string; at: number; job: string } | null;
}

export interface SourceInfo {
  ix: SourceIndex;
  aof: AofSummary;
  aofBaseBytes: number;
  activity: Activity | null;
  /** Capture time of the last data write (PING and REPLCONF do not count), when found. */
  lastWrite: number | null;
  /** What `rf listen --retain` last pruned to, if it runs with retention. */
  retention: { retainMs: number; windowStart: string; prunedAt: string } | null;
  lag: CaptureLag | null;
  /** The uploads of `rf listen --repo` to the bucket, as the daemon last recorded them. */
  repo: RepoStatus | null;
  /** What the AOF record can restore where the stream cannot. */
  coverage: Coverage;
}

interface DaemonStatus {
  pid: number;
  name: string;
  session: {
    phase: string;
    receivedOffset: number | null;
    durableOffset: number | null;
    lastReceiveAt: number | null;
  } | null;
  master?: { offset: number; at: number } | null;
  aof?: { lagBytes: number } | null;
  errors?: Record<string, number>;
  lastError?: CaptureLag['lastError'];
}

/** The stable `--json` shape (DESIGN.md): add fields, never rename or remove them. */
export function sourceJson(info: SourceInfo, daemon: unknown) {
  const { ix } = info;
  const lastCapture =
    ix.timelines.length > 0 ? Math.max(...ix.timelines.map((t) => t.lastTime)) : null;
  const streamBytes = ix.timelines.reduce((n, t) => n + t.bytes, 0);
  const baseBytes = ix.bases.reduce((n, b) => n + b.bytes, 0);
  return {
    name: ix.source.name,
    url: ix.source.url,
    /** The master's INFO server when rf listen last connected; null in stores from before it. */
    server:
      ix.source.server === undefined
        ? null
        : {
            name: ix.source.server.name,
            version: ix.source.server.version,
            redisVersion: ix.source.server.redisVersion,
            mode: ix.source.server.mode,
            seenAt: isoUtc(ix.source.server.seenAt),
          },
    timelines: ix.timelines.map((t) => ({
      id: t.id,
      replid: t.replid,
      replids: t.replids,
      from: isoUtc(t.startedAt),
      until: isoUtc(t.lastTime),
      baseOffset: t.baseOffset,
      durableOffset: t.durableOffset,
      reason: t.reason,
      segments: t.segments,
      bytes: t.bytes,
    })),
    gaps: ix.gaps.map((g, i) => ({
      from: isoUtc(g.from),
      until: isoUtc(g.until),
      reason: g.reason,
      before: g.before,
      after: g.after,
      /** The AOF record restores this span to the second (--from auto takes it there). */
      aof: info.coverage.gaps[i] === true,
    })),
    /** Writes received late: their true times lie within each window's bounds. */
    imprecise: ix.imprecise.map((w, i) => windowJson(w, info.coverage.imprecise[i] ?? 'bounds')),
    restorable: ix.restorable.map((r) => ({ from: isoUtc(r.from), until: isoUtc(r.until) })),
    retention: info.retention,
    repo:
      info.repo === null
        ? null
        : {
            repo: info.repo.repo,
            backlogBytes: info.repo.backlogBytes,
            uploadedBytes: info.repo.uploadedBytes,
            errors: info.repo.errors,
            lastManifestAt:
              info.repo.lastManifestAt === null ? null : isoUtc(info.repo.lastManifestAt),
          },
    bases: ix.bases.map((b) => ({
      timeline: b.timeline,
      offset: b.offset,
      takenAt: isoUtc(b.takenAt),
      bytes: b.bytes,
      file: b.file,
      via: b.via,
      rdbVersion: b.rdbVersion,
    })),
    /** The last data write; `lastCapture` also counts the master's PINGs. */
    lastWrite:
      info.lastWrite === null
        ? lastCapture === null
          ? null
          : isoUtc(lastCapture)
        : isoUtc(info.lastWrite),
    lastCapture: lastCapture === null ? null : isoUtc(lastCapture),
    aof: info.aof,
    sizes: {
      stream: streamBytes,
      bases: baseBytes,
      aofChunks: info.aof.bytes,
      aofBases: info.aofBaseBytes,
      total: streamBytes + baseBytes + info.aof.bytes + info.aofBaseBytes,
    },
    lag:
      info.lag === null
        ? null
        : {
            ...info.lag,
            lastReceiveAt: info.lag.lastReceiveAt === null ? null : isoUtc(info.lag.lastReceiveAt),
            lastError:
              info.lag.lastError === null
                ? null
                : { ...info.lag.lastError, at: isoUtc(info.lag.lastError.at) },
          },
    activity:
      info.activity === null
        ? null
        : {
            unit: info.activity.unit,
            binMs: info.activity.binMs,
            from: isoUtc(info.activity.from),
            values: info.activity.values,
            covered: info.activity.covered,
          },
    daemon,
  };
}

export async function run(options: InfoOptions): Promise<number> {
  try {
    // A bad --tz is refused before anything is printed.
    if (options.tz !== undefined) canonicalZone(options.tz);
    const repo = await repoFromFlags(options);
    // From the bucket alone: the manifests are all `rf info` needs.
    const kv =
      repo === undefined
        ? await openReader(options.store)
        : (await RepoCache.open(repo, options.name)).reader();
    try {
      const archive = new Archive(kv);
      const daemon = kv instanceof RemoteKv ? ((await kv.status()) as DaemonStatus) : null;
      let sources = await archive.sources();
      if (options.name !== undefined) {
        sources = sources.filter((s) => s.name === options.name);
        if (sources.length === 0) {
          throw new RfError(
            'RF_UNKNOWN_SOURCE',
            `the store ${options.store} holds no source named ${options.name}`,
            {
              details: { store: options.store, name: options.name },
              hint: 'run `rf info` without --name to list the sources',
            },
          );
        }
      }
      const infos: SourceInfo[] = [];
      for (const s of sources) {
        const ix = await indexSource(archive, s);
        const [aof, aofBases, act, lastWrite, retention] = await Promise.all([
          aofSummary(kv, s.name),
          new AofArchive(kv).bases(s.name),
          activity(archive, s.name, ix.timelines, ix.restorable, {
            maxBins: ACTIVITY_BINS,
            metaLimit: ACTIVITY_META_LIMIT,
          }),
          lastDataWrite(archive, s.name, ix.timelines),
          kv.get(keys.retention(s.name)),
        ]);
        const repoStatus = await kv.get(repoStatusKey(s.name));
        const r = retention === undefined ? undefined : json.decode<RetentionRecord>(retention);
        infos.push({
          ix,
          aof,
          aofBaseBytes: aofBases.reduce((n, b) => n + b.bytes, 0),
          activity: act,
          lastWrite,
          retention:
            r === undefined
              ? null
              : {
                  retainMs: r.retainMs,
                  windowStart: isoUtc(r.windowStart),
                  prunedAt: isoUtc(r.prunedAt),
                },
          lag: daemon !== null && daemon.name === s.name ? lagOf(daemon) : null,
          repo: repoStatus === undefined ? null : json.decode<RepoStatus>(repoStatus),
          coverage: await aofCoverage(kv, s.name, ix.gaps, ix.imprecise, aof.chunks > 0),
        });
      }
      const onDisk = repo === undefined ? await diskUsage(options.store) : 0;
      if (options.json) {
        out.json({
          store: options.store,
          onDisk,
          sources: infos.map((i) => sourceJson(i, daemon)),
        });
      } else {
        printText(options, infos, daemon, onDisk);
      }
      return 0;
    } finally {
      await kv.close();
    }
  } catch (err) {
    return reportError(err, options.json === true);
  }
}

function lagOf(d: DaemonStatus): CaptureLag {
  const s = d.session;
  const master = d.master?.offset ?? null;
  const durable = s?.durableOffset ?? null;
  const received = s?.receivedOffset ?? null;
  return {
    phase: s?.phase ?? 'connecting',
    masterOffset: master,
    receivedOffset: received,
    durableOffset: durable,
    behindBytes: master !== null && durable !== null ? Math.max(0, master - durable) : null,
    pendingBytes: received !== null && durable !== null ? received - durable : null,
    lastReceiveAt: s?.lastReceiveAt ?? null,
    aofLagBytes: d.aof?.lagBytes ?? null,
    errors: d.errors ?? {},
    lastError: d.lastError ?? null,
  };
}

/** Bytes of every file under the store directory. */
async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    let names: Dirent[];
    try {
      names = await fs.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const n of names) {
      const p = path.join(d, n.name);
      if (n.isDirectory()) await walk(p);
      else if (n.isFile()) total += (await fs.stat(p).catch(() => ({ size: 0 }))).size;
    }
  };
  await walk(dir);
  return total;
}

// ---------------------------------------------------------------------------------------------
// Text: fits 80 columns.

const BLOCKS = '▁▂▃▄▅▆▇█';

/** One character per bin: blank outside the restorable range, `·` for none, then eight heights. */
export function sparkline(a: Activity): string {
  const max = Math.max(0, ...a.values);
  return a.values
    .map((v, i) => {
      if (!a.covered[i]) return ' ';
      if (v <= 0) return '·';
      return BLOCKS[Math.min(7, Math.ceil((v / max) * 8) - 1)];
    })
    .join('');
}

function binLabel(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'day'],
    [3_600_000, 'hour'],
    [60_000, 'minute'],
    [1000, 'second'],
  ];
  for (const [size, unit] of units) {
    if (ms % size === 0) {
      const n = ms / size;
      return n === 1 ? unit : `${n} ${unit}s`;
    }
  }
  return `${ms} ms`;
}

function ago(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86_400).toFixed(1)} days ago`;
}

function duration(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${(s / 60).toFixed(1)} min`;
  if (s < 86_400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86_400).toFixed(1)} days`;
}

function printImprecise(info: SourceInfo): void {
  const { imprecise } = info.ix;
  if (imprecise.length === 0) return;
  out.line('  imprecise (writes received late: each ran within these bounds)');
  for (const [i, w] of imprecise.entries()) {
    out.line(`    ${isoUtc(w.from)} .. ${isoUtc(w.until)}  ${duration(w.until - w.from)}`);
    out.line(
      `        ${w.writes} writes, offsets ${w.firstOffset}..${w.lastOffset}, timeline ${w.timeline}`,
    );
    out.line(
      info.coverage.imprecise[i] === 'second'
        ? '        the AOF record places them to the second: --from auto uses it'
        : '        a restore inside is refused (unless --accept-imprecise)',
    );
  }
}

function short(replid: string): string {
  return replid.length > 12 ? `${replid.slice(0, 12)}…` : replid;
}

function printText(
  options: InfoOptions,
  infos: SourceInfo[],
  daemon: DaemonStatus | null,
  onDisk: number,
): void {
  const zone = options.tz ?? machineZone();
  const now = Date.now();
  out.line(`store ${options.store}`);
  out.line(
    `  rf listen   ${daemon === null ? 'not running' : `running, pid ${daemon.pid}, source ${daemon.name}`}`,
  );
  out.line(`  on disk     ${formatBytes(onDisk)}`);
  if (infos.length === 0) out.line('  no source archived yet');
  for (const info of infos) {
    const { ix } = info;
    out.line();
    out.line(`source ${ix.source.name}  ${ix.source.url}`);
    if (ix.source.server !== undefined)
      out.line(
        `  server      ${describeServer(ix.source.server)} (seen ${isoUtc(ix.source.server.seenAt)})`,
      );
    if (ix.restorable.length === 0) out.line('  restorable  nothing yet (no base)');
    const utc = zone === 'UTC' || zone === 'Etc/UTC';
    for (const r of ix.restorable) {
      out.line(`  restorable  ${isoUtc(r.from)} .. ${isoUtc(r.until)}`);
      if (!utc)
        out.line(`              ${formatInZone(r.from, zone)} .. ${formatInZone(r.until, zone)}`);
    }
    if (ix.restorable.length > 0 && !utc) out.line(`              (the same in ${zone})`);
    if (info.lastWrite !== null) {
      out.line(`  last write  ${isoUtc(info.lastWrite)} (${ago(now - info.lastWrite)})`);
    }
    printCapture(info, now);
    printActivity(info);
    out.line('  timelines');
    for (const t of ix.timelines) {
      out.line(`    #${t.id}  ${isoUtc(t.startedAt)} .. ${isoUtc(t.lastTime)}  ${t.reason}`);
      out.line(
        `        replid ${short(t.replid)}  offsets ${t.baseOffset + 1}..${t.durableOffset}`,
      );
      out.line(`        ${t.segments} segments, ${formatBytes(t.bytes)}`);
    }
    if (ix.gaps.length > 0) {
      out.line('  gaps (nothing was captured; restores refuse these times)');
      for (const [i, g] of ix.gaps.entries()) {
        out.line(`    ${isoUtc(g.from)} .. ${isoUtc(g.until)}  ${duration(g.until - g.from)}`);
        out.line(`        ${g.reason}, between timelines ${g.before} and ${g.after}`);
        if (info.coverage.gaps[i] === true)
          out.line('        the AOF record covers it: --from auto restores it to the second');
      }
    }
    printImprecise(info);
    const baseBytes = ix.bases.reduce((n, b) => n + b.bytes, 0);
    const latestBase = ix.bases.reduce((m, b) => Math.max(m, b.takenAt), 0);
    out.line(
      `  bases       ${ix.bases.length} (${formatBytes(baseBytes)})${ix.bases.length > 0 ? `, latest ${isoUtc(latestBase)}` : ''}`,
    );
    if (info.retention !== null) {
      out.line(
        `  retention   ${duration(info.retention.retainMs)}: restores from ${info.retention.windowStart} on`,
      );
    }
    printAof(info);
  }
}

function printCapture(info: SourceInfo, now: number): void {
  const lag = info.lag;
  if (lag === null) {
    out.line('  capture     rf listen is not capturing this source');
    return;
  }
  const parts = [lag.phase];
  if (lag.behindBytes !== null) parts.push(`${formatBytes(lag.behindBytes)} behind the master`);
  if (lag.pendingBytes !== null && lag.pendingBytes > 0)
    parts.push(`${formatBytes(lag.pendingBytes)} not yet durable`);
  out.line(`  capture     ${parts.join(', ')}`);
  if (lag.lastReceiveAt !== null)
    out.line(`              last byte received ${ago(now - lag.lastReceiveAt)}`);
  if (lag.aofLagBytes !== null)
    out.line(`              AOF capture ${formatBytes(lag.aofLagBytes)} behind the AOF on disk`);
  const counts = Object.entries(lag.errors).map(([code, n]) => `${code} ×${n}`);
  if (counts.length > 0) {
    for (const [i, line] of wrapWords(`${counts.join(', ')} since rf listen started`).entries())
      out.line(`  ${i === 0 ? 'errors    ' : '          '}  ${line}`);
  }
  const last = lag.lastError;
  if (last !== null) {
    out.line(`              last: ${last.job}, ${last.code}, ${ago(now - last.at)}`);
    for (const line of wrapWords(last.message)) out.line(`                ${line}`);
  }
}

/** Words into lines that fit the 80 columns after the 16-column indent of the capture rows. */
function wrapWords(text: string, width = 64): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    const piece = word.length > width ? `${word.slice(0, width - 1)}…` : word;
    if (line !== '' && line.length + 1 + piece.length > width) {
      lines.push(line);
      line = piece;
    } else line = line === '' ? piece : `${line} ${piece}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

function printActivity(info: SourceInfo): void {
  const a = info.activity;
  if (a === null) return;
  const max = Math.max(0, ...a.values);
  out.line(
    `  activity    ${a.unit} per ${binLabel(a.binMs)}, peak ${a.unit === 'bytes' ? formatBytes(max) : max}`,
  );
  out.line(`              ${sparkline(a)}`);
  // As precise as a bin: seconds for second bins, minutes up to hours, the date for days.
  const digits = a.binMs < 60_000 ? 19 : a.binMs < 86_400_000 ? 16 : 10;
  const label = (ms: number) => `${isoUtc(ms).slice(0, digits)}${digits > 10 ? 'Z' : ''}`;
  const start = label(a.from);
  const end = label(a.from + a.values.length * a.binMs);
  const gap = a.values.length - start.length - end.length;
  out.line(`              ${gap > 0 ? `${start}${' '.repeat(gap)}${end}` : `${start} .. ${end}`}`);
}

function printAof(info: SourceInfo): void {
  const a = info.aof;
  if (a.chunks === 0 && a.bases === 0 && a.files === 0) {
    out.line('  aof         no AOF capture');
    return;
  }
  out.line(
    `  aof         ${a.chunks} chunks (${formatBytes(a.bytes)}) in ${a.files} files, ${a.bases} bases (${formatBytes(info.aofBaseBytes)})`,
  );
  if (a.lastChunkAt !== null) out.line(`              last chunk ${a.lastChunkAt}`);
  if (a.sizeBytes !== null)
    out.line(`              AOF on the host ${formatBytes(a.sizeBytes)} at ${a.sizeAt}`);
  for (const g of a.gaps) {
    out.line(`              gap in ${g.file} bytes ${g.start}..${g.end ?? '?'}: ${g.reason}`);
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}
