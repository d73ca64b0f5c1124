import { statfs } from 'node:fs/promises';
import http from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { KvReader } from '../store/store.js';
import { type ArchiveWindow, archiveWindow } from './archive-window.js';

/**
 * What the daemon knows of one captured stream at scrape time; every field may be missing while
 * it connects, and a null total is a count this daemon does not keep (no series then).
 */
export interface SourceMetrics {
  connected: boolean;
  timeline: number | null;
  durableOffset: number | null;
  receivedOffset: number | null;
  masterOffset: number | null;
  /** Capture time of the last durable entry. */
  lastDurableAt: number | null;
  lastBaseAt: number | null;
  /** --base-every, so an alert compares the base age with it instead of hard-coding it. */
  baseEveryMs: number | null;
  totals: {
    segments: number | null;
    streamBytes: number | null;
    bases: number | null;
    reconnects: number;
  };
  /**
   * The AOF capture (null: not asked for, its counters stay at 0); absent where the daemon has
   * no such capture at all (a cluster shard), and so are its series.
   */
  aof?: { sizeBytes: number | null; chunks: number; bytes: number; rewrites: number } | null;
  /** The uploads to --repo (null: not asked for), absent as aof is. */
  repo?: { backlogBytes: number; uploadedBytes: number; errors: number } | null;
  /** The restorable window, read from the store at scrape time (null: unreadable now). */
  window?: ArchiveWindow | null;
}

/**
 * The daemon at scrape time: one standalone source (its series carry no label, as they always
 * have), or a cluster's shards (each series labelled `shard` with the shard's source name).
 */
export interface MetricsSnapshot {
  /** `source`: the source name in the store, whose restorable window is read. */
  sources: Array<{ source: string; shard?: string; metrics: SourceMetrics }>;
  errors: Record<string, number>;
}

export interface MetricsOptions {
  listen: { host: string; port: number };
  /** The store directory: the free and total bytes of its filesystem are exported. */
  store: string;
  /** The open store, for the restorable window of each source. */
  kv: KvReader;
  snapshot: () => MetricsSnapshot;
  log: Logger;
}

type Read = (s: SourceMetrics) => number | null;

/**
 * Prometheus text on `--metrics host:port` (prom-client). Names follow the conventions:
 * `rf_…_bytes`, `…_seconds`, `…_total`. Values are read from the daemon at scrape time;
 * counters advance by what the daemon's totals moved since the last scrape.
 */
export async function startMetricsServer(
  options: MetricsOptions,
): Promise<{ port: number; close(): Promise<void> }> {
  const { listen, store, kv, snapshot, log } = options;
  const registry = new Registry();
  let current = snapshot();
  const each = (fn: (labels: Record<string, string>, s: SourceMetrics) => void) => {
    for (const { shard, metrics } of current.sources)
      fn(shard === undefined ? {} : { shard }, metrics);
  };
  const gauge = (name: string, help: string, read: Read) =>
    new Gauge({
      name,
      help,
      labelNames: ['shard'],
      registers: [registry],
      collect() {
        // A shard that went away, or a value that is not known now, leaves no stale series.
        this.reset();
        each((labels, s) => {
          const v = read(s);
          if (v !== null) this.set(labels, v);
        });
      },
    });
  const seen = new Map<string, number>();
  const counter = (name: string, help: string, read: Read) =>
    new Counter({
      name,
      help,
      labelNames: ['shard'],
      registers: [registry],
      collect() {
        each((labels, s) => {
          const v = read(s);
          if (v === null) return;
          const key = `${name}\0${labels.shard ?? ''}`;
          const delta = v - (seen.get(key) ?? 0);
          // An increment of 0 makes the series appear at 0: increase() then sees the first step.
          if (delta > 0 || !seen.has(key)) this.inc(labels, Math.max(0, delta));
          seen.set(key, v);
        });
      },
    });

  gauge('rf_connected', '1 while the replication stream is flowing', (s) => (s.connected ? 1 : 0));
  gauge('rf_timeline', 'the timeline being captured', (s) => s.timeline);
  gauge(
    'rf_durable_offset',
    'last replication offset committed and acknowledged',
    (s) => s.durableOffset,
  );
  gauge('rf_received_offset', 'last replication offset received', (s) => s.receivedOffset);
  gauge(
    'rf_master_offset',
    "the master's master_repl_offset, sampled every second",
    (s) => s.masterOffset,
  );
  gauge('rf_replication_lag_bytes', 'master offset minus durable offset', (s) =>
    s.masterOffset === null || s.durableOffset === null
      ? null
      : Math.max(0, s.masterOffset - s.durableOffset),
  );
  gauge(
    'rf_replication_lag_seconds',
    'how old the last durable write is while the master is ahead (0 when caught up)',
    (s) => {
      if (s.masterOffset === null || s.durableOffset === null || s.lastDurableAt === null)
        return null;
      return s.masterOffset > s.durableOffset
        ? Math.max(0, (Date.now() - s.lastDurableAt) / 1000)
        : 0;
    },
  );
  gauge(
    'rf_last_durable_write_timestamp_seconds',
    'capture time of the last durable entry (unix seconds): the end of the restorable window',
    (s) => (s.lastDurableAt === null ? null : s.lastDurableAt / 1000),
  );
  gauge(
    'rf_restorable_from_timestamp_seconds',
    'start of the oldest range a restore can reach (unix seconds)',
    (s) => (s.window?.from == null ? null : s.window.from / 1000),
  );
  gauge(
    'rf_restorable_until_timestamp_seconds',
    'end of the newest range a restore can reach (unix seconds)',
    (s) => (s.window?.until == null ? null : s.window.until / 1000),
  );
  gauge('rf_gaps', 'gaps between timelines in the archive', (s) => s.window?.gaps ?? null);
  gauge('rf_base_age_seconds', 'age of the newest base', (s) =>
    s.lastBaseAt === null ? null : (Date.now() - s.lastBaseAt) / 1000,
  );
  gauge('rf_base_interval_seconds', 'the --base-every period (absent when off)', (s) =>
    s.baseEveryMs === null ? null : s.baseEveryMs / 1000,
  );
  gauge(
    'rf_aof_size_bytes',
    "the master's AOF size, sampled every second",
    (s) => s.aof?.sizeBytes ?? null,
  );
  counter('rf_segments_written_total', 'stream segments committed', (s) => s.totals.segments);
  counter(
    'rf_stream_written_bytes_total',
    'replication stream bytes committed',
    (s) => s.totals.streamBytes,
  );
  counter('rf_bases_total', 'bases taken (full syncs and fresh bases)', (s) => s.totals.bases);
  counter('rf_reconnects_total', 'replication reconnects', (s) => s.totals.reconnects);
  counter('rf_chunks_written_total', 'AOF chunks stored', (s) =>
    s.aof === undefined ? null : (s.aof?.chunks ?? 0),
  );
  counter('rf_chunk_written_bytes_total', 'AOF chunk bytes stored', (s) =>
    s.aof === undefined ? null : (s.aof?.bytes ?? 0),
  );
  counter('rf_aof_rewrite_cycles_total', 'BGREWRITEAOF cycles run by rf', (s) =>
    s.aof === undefined ? null : (s.aof?.rewrites ?? 0),
  );
  gauge(
    'rf_repo_backlog_bytes',
    'sealed bytes in the local store not yet in the --repo bucket',
    (s) => s.repo?.backlogBytes ?? null,
  );
  counter('rf_repo_uploaded_bytes_total', 'bytes written to the --repo bucket', (s) =>
    s.repo === undefined ? null : (s.repo?.uploadedBytes ?? 0),
  );
  counter('rf_repo_errors_total', 'upload rounds to the --repo bucket that failed', (s) =>
    s.repo === undefined ? null : (s.repo?.errors ?? 0),
  );
  const errors = new Counter({
    name: 'rf_errors_total',
    help: 'errors by RF_ code',
    labelNames: ['code'],
    registers: [registry],
  });
  const errorsSeen = new Map<string, number>();
  // The store's filesystem, read at scrape time: the archive grows until the disk is full.
  let disk: { avail: number; size: number } | null = null;
  const diskGauge = (name: string, help: string, pick: 'avail' | 'size') =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        if (disk === null) this.reset();
        else this.set(disk[pick]);
      },
    });
  diskGauge('rf_store_filesystem_avail_bytes', 'bytes free to rf on the store filesystem', 'avail');
  diskGauge('rf_store_filesystem_size_bytes', 'size of the filesystem of the store', 'size');

  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('rf serves /metrics\n');
      return;
    }
    const now = snapshot();
    for (const [code, n] of Object.entries(now.errors)) {
      const delta = n - (errorsSeen.get(code) ?? 0);
      if (delta > 0) errors.inc({ code }, delta);
      errorsSeen.set(code, n);
    }
    const diskNow = statfs(store).then(
      (s) => ({ avail: s.bavail * s.bsize, size: s.blocks * s.bsize }),
      () => null,
    );
    // A store that cannot be read now leaves those series out rather than failing the scrape.
    const windows = now.sources.map(({ source }) => archiveWindow(kv, source).catch(() => null));
    Promise.all([diskNow, Promise.all(windows)])
      .then(([d, w]) => {
        disk = d;
        current = {
          ...now,
          sources: now.sources.map((s, i) => ({ ...s, metrics: { ...s.metrics, window: w[i] } })),
        };
        return registry.metrics();
      })
      .then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new RfError(
          'RF_USAGE',
          `cannot serve metrics on ${listen.host}:${listen.port}: ${err.message}`,
          {
            details: { metrics: `${listen.host}:${listen.port}` },
            hint: 'pick a free port for --metrics',
            cause: err,
          },
        ),
      ),
    );
    server.listen(listen.port, listen.host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  log.info({ metrics: `http://${listen.host}:${port}/metrics` }, 'metrics listening');
  return { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
