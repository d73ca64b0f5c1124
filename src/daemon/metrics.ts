import http from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { RfError } from '../errors.js';
import type { Logger } from '../logger.js';

/** What the daemon knows at scrape time; every field may be missing while it connects. */
export interface MetricsSnapshot {
  connected: boolean;
  timeline: number | null;
  durableOffset: number | null;
  receivedOffset: number | null;
  masterOffset: number | null;
  /** Capture time of the last durable entry. */
  lastDurableAt: number | null;
  lastBaseAt: number | null;
  totals: { segments: number; streamBytes: number; bases: number; reconnects: number };
  errors: Record<string, number>;
  aof: { sizeBytes: number | null; chunks: number; bytes: number; rewrites: number } | null;
  /** The uploads to --repo, when it is given. */
  repo?: { backlogBytes: number; uploadedBytes: number; errors: number } | null;
}

/**
 * Prometheus text on `--metrics host:port` (prom-client). Names follow the conventions:
 * `rf_…_bytes`, `…_seconds`, `…_total`. Values are read from the daemon at scrape time;
 * counters advance by what the daemon's totals moved since the last scrape.
 */
export async function startMetricsServer(
  listen: { host: string; port: number },
  snapshot: () => MetricsSnapshot,
  log: Logger,
): Promise<{ port: number; close(): Promise<void> }> {
  const registry = new Registry();
  const gauge = (name: string, help: string, read: (s: MetricsSnapshot) => number | null) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const v = read(current);
        if (v === null) this.reset();
        else this.set(v);
      },
    });
  const seen = new Map<string, number>();
  const counter = (name: string, help: string, read: (s: MetricsSnapshot) => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const v = read(current);
        const delta = v - (seen.get(name) ?? 0);
        if (delta > 0) this.inc(delta);
        seen.set(name, v);
      },
    });
  let current = snapshot();

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
  gauge('rf_base_age_seconds', 'age of the newest base', (s) =>
    s.lastBaseAt === null ? null : (Date.now() - s.lastBaseAt) / 1000,
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
  counter('rf_chunks_written_total', 'AOF chunks stored', (s) => s.aof?.chunks ?? 0);
  counter('rf_chunk_written_bytes_total', 'AOF chunk bytes stored', (s) => s.aof?.bytes ?? 0);
  counter(
    'rf_aof_rewrite_cycles_total',
    'BGREWRITEAOF cycles run by rf',
    (s) => s.aof?.rewrites ?? 0,
  );
  gauge(
    'rf_repo_backlog_bytes',
    'sealed bytes in the local store not yet in the --repo bucket',
    (s) => s.repo?.backlogBytes ?? null,
  );
  counter(
    'rf_repo_uploaded_bytes_total',
    'bytes written to the --repo bucket',
    (s) => s.repo?.uploadedBytes ?? 0,
  );
  counter(
    'rf_repo_errors_total',
    'upload rounds to the --repo bucket that failed',
    (s) => s.repo?.errors ?? 0,
  );
  const errors = new Counter({
    name: 'rf_errors_total',
    help: 'errors by RF_ code',
    labelNames: ['code'],
    registers: [registry],
  });
  const errorsSeen = new Map<string, number>();

  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('rf serves /metrics\n');
      return;
    }
    current = snapshot();
    for (const [code, n] of Object.entries(current.errors)) {
      const delta = n - (errorsSeen.get(code) ?? 0);
      if (delta > 0) errors.inc({ code }, delta);
      errorsSeen.set(code, n);
    }
    registry.metrics().then(
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
