import { type Dirent, promises as fs } from 'node:fs';
import path from 'node:path';
import { RemoteKv } from '../daemon/control-client.js';
import { openReader } from '../daemon/open-reader.js';
import { RfError } from '../errors.js';
import { type Activity, activity } from '../log/activity.js';
import { RepoCache } from '../repo/cache.js';
import type { RepoClient } from '../repo/client.js';
import { repoStatusKey } from '../repo/layout.js';
import { type RepoFlags, repoFromFlags } from '../repo/open.js';
import type { RepoStatus } from '../repo/uploader.js';
import { aofCoverage, type Coverage } from '../restore/coverage.js';
import { windowJson } from '../restore/plan.js';
import { Archive } from '../store/archive.js';
import { AofArchive } from '../store/chunks.js';
import { type ClusterRecord, listClusters } from '../store/cluster.js';
import { keys } from '../store/keys.js';
import { lastDataWrite } from '../store/last-write.js';
import { json, type KvReader } from '../store/store.js';
import { type AofSummary, aofSummary, indexSource, type SourceIndex } from '../store/summary.js';
import type { RetentionRecord, SourceRecord } from '../store/types.js';
import { canonicalZone, isoUtc } from '../time.js';
import { clusterJson, clusterText } from './info-cluster.js';
import { forksJson } from './info-forks.js';
import { printText } from './info-text.js';
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

export interface DaemonStatus {
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
    forks: forksJson(ix.timelines),
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
    activity: info.activity === null ? null : activityJson(info.activity),
    daemon,
  };
}

export function activityJson(a: Activity) {
  return {
    unit: a.unit,
    binMs: a.binMs,
    from: isoUtc(a.from),
    values: a.values,
    covered: a.covered,
  };
}

/** The store (through rf listen when it runs), or from the bucket alone its manifests. */
export async function openInfoReader(
  options: InfoOptions,
  repo: RepoClient | undefined,
): Promise<KvReader> {
  return repo === undefined
    ? openReader(options.store)
    : (await RepoCache.open(repo, options.name)).reader();
}

/** What `rf info` gathers: one entry per source shown, the daemon's status, the clusters. */
export interface InfoReport {
  infos: SourceInfo[];
  daemon: DaemonStatus | null;
  clusters: ClusterRecord[];
  /** Bytes the store takes on disk (0 when read from the bucket alone). */
  onDisk: number;
}

/** The `--json` document of `rf info`. */
export function infoJson(options: InfoOptions, report: InfoReport) {
  return {
    store: options.store,
    onDisk: report.onDisk,
    sources: report.infos.map((i) => sourceJson(i, report.daemon)),
    clusters: report.clusters.map((c) => clusterJson(c, report.infos)),
  };
}

export async function run(options: InfoOptions): Promise<number> {
  try {
    const report = await gatherInfo(options);
    if (options.json) {
      out.json(infoJson(options, report));
    } else {
      printText(options, report.infos, report.daemon, report.onDisk);
      for (const c of report.clusters)
        for (const line of clusterText(c, report.infos)) out.line(line);
    }
    return 0;
  } catch (err) {
    return reportError(err, options.json === true);
  }
}

/** Reads everything `rf info` shows, from the store (through rf listen when it runs) or the bucket. */
export async function gatherInfo(options: InfoOptions): Promise<InfoReport> {
  // A bad --tz is refused before anything is printed.
  if (options.tz !== undefined) canonicalZone(options.tz);
  const repo = await repoFromFlags(options);
  const kv = await openInfoReader(options, repo);
  try {
    const archive = new Archive(kv);
    const daemon = kv instanceof RemoteKv ? ((await kv.status()) as DaemonStatus) : null;
    let sources = await archive.sources();
    const clusters = (await listClusters(kv)).filter(
      (c) => options.name === undefined || c.name === options.name,
    );
    // `--name <cluster>` selects the cluster's shards.
    const asCluster = options.name !== undefined && clusters.length > 0;
    if (asCluster) {
      const shardSources = new Set(clusters.flatMap((c) => c.shards.map((s) => s.source)));
      sources = sources.filter((s) => shardSources.has(s.name));
    } else if (options.name !== undefined) {
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
    for (const s of sources) infos.push(await sourceInfo(kv, archive, s, daemon));
    const onDisk = repo === undefined ? await diskUsage(options.store) : 0;
    return { infos, daemon, clusters, onDisk };
  } finally {
    await kv.close();
  }
}

async function sourceInfo(
  kv: KvReader,
  archive: Archive,
  s: SourceRecord,
  daemon: DaemonStatus | null,
): Promise<SourceInfo> {
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
  return {
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
  };
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
