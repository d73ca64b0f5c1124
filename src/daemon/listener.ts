// Over 400 lines: rf listen's lifecycle (store lock, replication session, AOF capture, retention,
// repo uploads, control socket, shutdown order) in one place so the start and stop order is
// read top to bottom; the next capture (cluster shards) is the point to split it per source.
import { existsSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type tls from 'node:tls';
import {
  type AofHandle,
  type AofStatus,
  type IngestGrant,
  type IngestServer,
  startAofCapture,
  startIngestServer,
} from '../aof/index.js';
import { Backoff } from '../backoff.js';
import { isRfError, RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeEndpoint, type RedisEndpoint, redactUrl } from '../redis-url.js';
import { MasterRetryLater } from '../replication/handshake.js';
import { ReplicationSession, type SessionStatus } from '../replication/session.js';
import type { RepoClient } from '../repo/client.js';
import type { RepoStatus, RepoUploader } from '../repo/uploader.js';
import { RedisClient } from '../resp/client.js';
import { Archive } from '../store/archive.js';
import { Store, storePaths } from '../store/store.js';
import type { ServerInfo, SourceRecord } from '../store/types.js';
import { checkControlSocketPath, serveOwnedStore } from './control.js';
import { RemoteKv } from './control-client.js';
import { scheduleFreshBases } from './fresh-bases.js';
import { MasterClock } from './master-clock.js';
import type { MasterSample } from './master-watch.js';
import { type SourceMetrics, startMetricsServer } from './metrics.js';
import { keepLocalWithin, probeRepo, REPO_DRAIN_MS, startUploader } from './repo-upload.js';
import { scheduleSourceRetention } from './retention-loop.js';
import { type RollSchedule, scheduleRolledBases } from './roll-bases.js';
import { recordSeen } from './seen.js';
import { recordSourceFacts } from './source-facts.js';
import { ErrorCounts, messageOf } from './supervise.js';

export interface ListenConfig {
  sourceUrl: string;
  endpoint: RedisEndpoint;
  tlsOptions?: tls.ConnectionOptions;
  store: string;
  name: string;
  connectTimeoutMs: number;
  readTimeoutMs: number;
  maxSegmentBytes: number;
  flushIntervalMs: number;
  ackIntervalMs: number;
  listeningPort: number;
  /** Take a fresh base this often (null: never), so a restore replays at most about that much. */
  baseEveryMs: number | null;
  /** Roll a base forward off the master this often, in a scratch redis-server (--roll-base-every). */
  rollBases?: RollSchedule;
  /** Serve Prometheus metrics here. */
  metrics?: { host: string; port: number };
  /** Keep what restores within this long before now need; prune the rest (null: keep all). */
  retainMs: number | null;
  /** Follow the master's append-only files too (same host). */
  aof?: {
    dir: string;
    chunkSize: number;
    chunkPauseMs: number;
    rewriteAt: string;
    rewriteTimeoutMs: number;
    tz?: string;
  };
  /** Accept AOF chunks from `rf ship` on the Redis host. */
  /** Upload what is sealed to this bucket (--repo). */
  repo?: RepoClient;
  /** With repo: keep locally what restores within this long need; the rest once in the bucket. */
  localRetainMs?: number | null;
  /** Longest SIGTERM waits for the uploads to finish (default 60 s). */
  repoDrainMs?: number;
  ingest?: {
    listen: string;
    grants: IngestGrant[];
    maxChunkBytes?: number;
    tls?: { cert: Buffer; key: Buffer };
  };
}

export interface ListenerStatus {
  pid: number;
  name: string;
  source: string;
  startedAt: number;
  sessions: number;
  reconnects: number;
  /** The last failure of the stream or of a background job (`job` names which). */
  lastError: { code: string; message: string; at: number; job: string } | null;
  session: SessionStatus | null;
  master: MasterSample | null;
  lastBaseAt: number | null;
  totals: { segments: number; streamBytes: number; bases: number; reconnects: number };
  errors: Record<string, number>;
  aof?: AofStatus | null;
  ingest?: ReturnType<IngestServer['stats']> | null;
  repo?: RepoStatus | null;
}

/** Errors no reconnect can fix: the store itself is at fault. */
export const FATAL = new Set([
  'RF_STORE_UNWRITABLE',
  'RF_STORE_MISSING',
  'RF_CORRUPT',
  'RF_CHECKSUM',
  'RF_STORE_LOCKED',
  // A snapshot format rf cannot read: asking the master again brings the same one.
  'RF_RDB_UNSUPPORTED',
]);

/**
 * `rf listen`: owns the store, keeps one replication session alive, reconnecting with backoff
 * and resuming from the durable offset, and answers readers on the control socket.
 */
export class Listener {
  private session: ReplicationSession | null = null;
  private stopping = false;
  private readonly wake = new AbortController();
  private readonly info: ListenerStatus;
  private watch: MasterClock | null = null;
  private aof: AofHandle | null = null;
  private ingest: IngestServer | null = null;
  private uploader: RepoUploader | null = null;
  private rewrites = { count: 0, lastAt: 0 };
  private readonly failures = new ErrorCounts();
  /** The failure of a background task that stops the daemon, as any fatal error does. */
  private fatal: { err: unknown } | null = null;
  /** INFO server of the master, read at start. */
  private server: ServerInfo | null = null;

  constructor(
    private readonly config: ListenConfig,
    private readonly log: Logger,
  ) {
    this.info = {
      pid: process.pid,
      name: config.name,
      source: redactUrl(config.sourceUrl),
      startedAt: Date.now(),
      sessions: 0,
      reconnects: 0,
      lastError: null,
      session: null,
      master: null,
      lastBaseAt: null,
      totals: { segments: 0, streamBytes: 0, bases: 0, reconnects: 0 },
      errors: {},
    };
  }

  status(): ListenerStatus {
    return {
      ...this.info,
      errors: { ...this.failures.byCode },
      lastError: this.failures.last,
      session: this.session?.snapshot() ?? null,
      master: this.watch?.latest() ?? null,
      aof: this.aof?.status() ?? null,
      ingest: this.ingest?.stats() ?? null,
      repo: this.uploader?.snapshot() ?? null,
    };
  }

  /** Runs until stop(); rejects with the error that made it give up. */
  async run(): Promise<void> {
    const { config, log } = this;
    checkControlSocketPath(config.store, storePaths(config.store).socket);
    // A first run that cannot reach the master leaves no store behind: check before creating it.
    const existed = await storeExists(config.store);
    if (!existed) await this.preflight(null);
    const store = await openOwned(config.store, log);
    let control: { close(): Promise<void> } | null = null;
    let metrics: { close(): Promise<void> } | null = null;
    try {
      // Once more with the store: a first run records what it learns there (command specs).
      await this.preflight(store);
      const known = await new Archive(store).bases(config.name);
      this.info.lastBaseAt = known.length > 0 ? Math.max(...known.map((b) => b.takenAt)) : null;
      const watch = new MasterClock({
        store,
        source: config.name,
        ...(config.tlsOptions ? { tlsOptions: config.tlsOptions } : {}),
        log,
        failures: this.failures,
        job: 'master watch',
      });
      watch.follow(config.endpoint);
      this.watch = watch;
      await watch.load();
      if (config.metrics)
        metrics = await startMetricsServer({
          listen: config.metrics,
          store: config.store,
          kv: store,
          snapshot: () => ({
            sources: [{ source: config.name, metrics: this.metricsSnapshot() }],
            errors: { ...this.failures.byCode },
          }),
          log,
        });
      if (config.repo) await this.startUpload(store, config.repo);
      if (config.aof) await this.startAof(store, config.aof);
      if (config.ingest) {
        this.ingest = await startIngestServer({
          store,
          ...config.ingest,
          log: log.child({ ingest: config.ingest.listen }),
        });
      }
      control = await serveOwnedStore(config.store, store, () => this.status(), log);
      const background = [
        this.supervise('fresh bases', this.scheduleBases(store)),
        this.supervise('rolled bases', this.scheduleRolls(store)),
        this.supervise('retention', this.scheduleRetention(store)),
        this.supervise('local retention', this.scheduleLocalRetain(store)),
        this.supervise(
          'seen record',
          recordSeen({
            store,
            source: config.name,
            session: () => this.session?.snapshot(),
            latest: () => this.watch?.latest(),
            failures: this.failures,
            log,
            signal: this.wake.signal,
          }),
        ),
        this.supervise('offset samples', watch.run(this.wake.signal)),
      ];
      try {
        await this.loop(store);
      } finally {
        this.stop();
        await Promise.all(background);
        // After the open segment is sealed: it goes up with the rest, for a bounded time.
        await this.uploader?.finish(config.repoDrainMs ?? REPO_DRAIN_MS);
      }
      if (this.fatal !== null) throw this.fatal.err;
    } finally {
      await this.ingest?.close();
      await this.aof
        ?.stop()
        .catch((err: unknown) =>
          log.warn({ error: String(err) }, 'AOF capture did not stop cleanly'),
        );
      await metrics?.close();
      await this.watch?.stop();
      await control?.close();
      await store.close();
    }
  }

  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.session?.stop();
    this.wake.abort();
  }

  /**
   * A background task that throws (rather than counting its failure and trying again) stops the
   * daemon with its error, as a fatal stream error would: never an unhandled rejection.
   */
  private supervise(job: string, task: Promise<void>): Promise<void> {
    return task.catch((err: unknown) => {
      const code = this.failures.note(job, err);
      this.log.error({ job, error: { code, message: messageOf(err) } }, `${job} failed; stopping`);
      this.fatal ??= { err };
      this.stop();
    });
  }

  private async loop(store: Store): Promise<void> {
    const { config, log } = this;
    const backoff = new Backoff();
    let everStreamed = (await new Archive(store).state(config.name)) !== undefined;
    while (!this.stopping) {
      const session = new ReplicationSession({
        endpoint: config.endpoint,
        ...(config.tlsOptions ? { tlsOptions: config.tlsOptions } : {}),
        store,
        source: await this.sourceRecord(store),
        log: log.child({ session: this.info.sessions + 1 }),
        connectTimeoutMs: config.connectTimeoutMs,
        readTimeoutMs: config.readTimeoutMs,
        maxSegmentBytes: config.maxSegmentBytes,
        flushIntervalMs: config.flushIntervalMs,
        ackIntervalMs: config.ackIntervalMs,
        listeningPort: config.listeningPort,
        onCommit: (meta) => {
          this.info.totals.segments++;
          this.info.totals.streamBytes += meta.end - meta.start + 1;
        },
        onBase: (base) => this.baseTaken(base.takenAt),
        ...(this.watch ? { clock: this.watch.clock, withCommit: this.watch.withCommit } : {}),
      });
      this.session = session;
      this.info.sessions++;
      try {
        await session.run();
        return;
      } catch (err) {
        const status = session.snapshot();
        // A master that took rf as a replica proves the address and the credentials good, even
        // when it drops the connection mid-snapshot (client-output-buffer-limit replica).
        everStreamed ||= status.durableOffset !== null || status.accepted;
        const code = this.failures.note('stream', err);
        if (!isRfError(err) || FATAL.has(code)) throw err;
        // Until a first snapshot is in, a wrong address or password is an operator's mistake to report.
        if (!everStreamed && !(err instanceof MasterRetryLater)) throw err;
        if (this.stopping) return;
        // A session that got as far as streaming proves the master and credentials good: reconnect
        // at once, since the master's backlog (repl-backlog-size) bounds how long a resume works.
        if (status.phase === 'closed' && status.timeline !== null) backoff.reset();
        const delay = backoff.next();
        this.info.reconnects++;
        this.info.totals.reconnects++;
        log.warn(
          {
            error: { code, message: (err as Error).message },
            retryInMs: delay,
            durableOffset: status.durableOffset,
            ...(status.accepted && status.timeline === null
              ? {
                  snapshotBytes: status.snapshotBytes,
                  hint: 'the connection ended during the snapshot: a master drops a replica whose output buffer passes client-output-buffer-limit replica; raise it if this repeats',
                }
              : {}),
          },
          'replication connection lost; resuming',
        );
        await sleep(delay, undefined, { signal: this.wake.signal }).catch(() => undefined);
      }
    }
  }

  /**
   * Fresh bases on a schedule, over a second connection, while the stream goes on: a restore
   * then never replays more than about --base-every of writes.
   */
  private async scheduleBases(store: Store): Promise<void> {
    const { config, log } = this;
    if (config.baseEveryMs === null) return;
    await scheduleFreshBases({
      everyMs: config.baseEveryMs,
      store,
      source: config.name,
      current: () => {
        const session = this.session?.snapshot();
        return session === undefined ? null : { endpoint: config.endpoint, session };
      },
      ...(config.tlsOptions ? { tlsOptions: config.tlsOptions } : {}),
      connectTimeoutMs: config.connectTimeoutMs,
      readTimeoutMs: config.readTimeoutMs,
      log,
      signal: this.wake.signal,
      taken: (takenAt) => this.baseTaken(takenAt),
      failed: (err) => {
        const code = this.failures.note('fresh base', err);
        log.warn({ error: { code, message: messageOf(err) } }, 'fresh base failed; will try again');
      },
    });
  }

  private async scheduleRolls(store: Store): Promise<void> {
    const schedule = this.config.rollBases;
    if (schedule === undefined) return;
    await scheduleRolledBases({
      store,
      source: this.config.name,
      schedule,
      timeline: () => {
        const s = this.session?.snapshot();
        return s?.phase === 'streaming' ? s.timeline : null;
      },
      stopping: () => this.stopping,
      signal: this.wake.signal,
      failed: (err) => {
        const code = this.failures.note('rolled base', err);
        this.log.warn(
          { error: { code, message: messageOf(err) } },
          'rolled base failed; will try again',
        );
      },
      log: this.log,
    });
  }

  /** Starts the uploader, once the bucket is known to be there (probeRepo). */
  private async startUpload(store: Store, client: RepoClient): Promise<void> {
    await probeRepo(client, this.log);
    this.uploader = startUploader(store, this.config.name, client, this.log);
  }

  /** Prunes what the --retain window no longer needs (retention-loop.ts). */
  private scheduleRetention(store: Store): Promise<void> {
    const { config, log } = this;
    return scheduleSourceRetention(
      store,
      config.name,
      () => this.uploader?.heldUntil() ?? Number.POSITIVE_INFINITY,
      {
        retainMs: config.retainMs,
        stopping: () => this.stopping,
        signal: this.wake.signal,
        failures: this.failures,
        log,
      },
    );
  }

  /** --local-retain, once the bucket holds what leaves the store (keepLocalWithin). */
  private async scheduleLocalRetain(store: Store): Promise<void> {
    const { config, log } = this;
    const keep = config.localRetainMs ?? null;
    if (keep === null || config.repo === undefined) return;
    await keepLocalWithin({
      store,
      source: config.name,
      keepMs: keep,
      holds: () => this.uploader?.holds(),
      failures: this.failures,
      job: 'local retention',
      log,
      signal: this.wake.signal,
    });
  }

  /**
   * The second, independent record: the master's own append-only files, chunked into the store.
   * Refusals at start (appendonly off, no AOF there, a bad manifest) stop rf listen; a failure
   * later is reported and counted, and the stream capture goes on.
   */
  private async startAof(store: Store, aof: NonNullable<ListenConfig['aof']>): Promise<void> {
    const { config, log } = this;
    this.aof = await startAofCapture({
      store,
      source: config.name,
      aofDir: aof.dir,
      chunkSize: aof.chunkSize,
      chunkPauseMs: aof.chunkPauseMs,
      rewriteAt: aof.rewriteAt,
      rewriteTimeoutMs: aof.rewriteTimeoutMs,
      ...(aof.tz === undefined ? {} : { tz: aof.tz }),
      redis: {
        endpoint: config.endpoint,
        ...(config.tlsOptions ? { tlsOptions: config.tlsOptions } : {}),
        url: config.sourceUrl,
      },
      log,
      onRewriteFailure: (err) => this.failures.note('AOF rewrite cycle', err),
    });
    this.aof.done.catch((err: unknown) => {
      if (this.stopping) return;
      const code = this.failures.note('AOF capture', err);
      log.error(
        { error: { code, message: messageOf(err) } },
        'AOF capture stopped; the stream capture goes on',
      );
    });
  }

  private aofMetrics(): SourceMetrics['aof'] {
    const st = this.aof?.status();
    if (st === undefined) return null;
    const last = st.rewrite?.last;
    if (last?.ok && last.at > this.rewrites.lastAt) {
      this.rewrites = { count: this.rewrites.count + 1, lastAt: last.at };
    }
    return {
      sizeBytes: st.size?.bytes ?? null,
      chunks: st.chunks,
      bytes: st.bytes,
      rewrites: this.rewrites.count,
    };
  }

  private baseTaken(takenAt: number): void {
    this.info.totals.bases++;
    this.info.lastBaseAt = takenAt;
  }

  private metricsSnapshot(): SourceMetrics {
    const s = this.session?.snapshot() ?? null;
    const master = this.watch?.latest() ?? null;
    return {
      connected: s?.phase === 'streaming',
      timeline: s?.timeline ?? null,
      durableOffset: s?.durableOffset ?? null,
      receivedOffset: s?.receivedOffset ?? null,
      masterOffset: master?.offset ?? null,
      lastDurableAt: s?.lastDurableAt ?? null,
      lastBaseAt: this.info.lastBaseAt,
      baseEveryMs: this.config.baseEveryMs,
      totals: { ...this.info.totals },
      aof: this.aofMetrics(),
      repo: this.uploader?.snapshot() ?? null,
    };
  }

  /**
   * Refuses what cannot be archived before touching the store: a replica, a wrong password.
   * With no store yet (null), it only checks; nothing is recorded.
   */
  private async preflight(store: Store | null): Promise<void> {
    const { config, log } = this;
    const where = describeEndpoint(config.endpoint);
    let client: RedisClient;
    try {
      client = await RedisClient.connect(config.endpoint, {
        timeoutMs: config.connectTimeoutMs,
        ...(config.tlsOptions ? { tlsOptions: config.tlsOptions } : {}),
      });
    } catch (err) {
      // With an archive to resume, a master that is down now is waited for, not an error.
      if (
        store !== null &&
        (await new Archive(store).state(config.name)) !== undefined &&
        isRfError(err, 'RF_CONNECT')
      ) {
        log.warn({ peer: where }, 'master unreachable at start; will keep trying');
        return;
      }
      throw err;
    }
    try {
      // A cluster node's stream holds only its own shard's slots: archiving it alone would
      // look complete and miss every other shard's writes. Checked before the role: a cluster
      // replica wants --cluster too, not its master's address.
      const clusterInfo = await client.call('INFO', 'cluster').catch(() => null);
      if (typeof clusterInfo === 'string' && /cluster_enabled:1/.test(clusterInfo)) {
        throw new RfError(
          'RF_SOURCE_IS_CLUSTER',
          `${where} is a Redis Cluster node: its stream holds only its own shard`,
          {
            details: { source: where },
            hint: 'add --cluster to archive every shard of the cluster',
          },
        );
      }
      const role = (await client.call('ROLE').catch(() => null)) as unknown[] | null;
      if (Array.isArray(role) && String(role[0]) === 'slave') {
        throw new RfError(
          'RF_SOURCE_IS_REPLICA',
          `${where} is a replica of ${role[1]}:${role[2]}, not a master`,
          {
            details: { source: where, master: `${role[1]}:${role[2]}` },
            hint: `point --source at the master (${role[1]}:${role[2]}); a replica's stream is not the master's history`,
          },
        );
      }
      // After the refusals: a source rf will not archive leaves nothing in the store.
      // (A first start checks the master before the store exists: the key specs wait for it.)
      this.server = (await recordSourceFacts(client, store, config.name, log)) ?? this.server;
    } finally {
      await client.close();
    }
  }

  private async sourceRecord(store: Store): Promise<SourceRecord> {
    const existing = await new Archive(store).source(this.config.name);
    const record = existing ?? {
      name: this.config.name,
      url: redactUrl(this.config.sourceUrl),
      createdAt: Date.now(),
    };
    return this.server === null ? record : { ...record, server: this.server };
  }
}

/**
 * How long rf listen waits for a reader that holds the store (`rf verify` without a daemon reads
 * LevelDB itself, for minutes on a large archive) before it gives up with RF_STORE_LOCKED.
 */
export const LOCK_WAIT_MS = 10 * 60_000;

/**
 * The owner's open: a reader holding the lock is waited for, bounded and logged, instead of
 * failing at once (under systemd that would be a restart loop while the master's backlog runs
 * out). Readers finish; rf listen then starts.
 */
export async function openOwned(dir: string, log: Logger, waitMs = LOCK_WAIT_MS): Promise<Store> {
  const began = Date.now();
  let warned = false;
  for (;;) {
    try {
      const store = await Store.open(dir, { create: true });
      if (warned) log.info({ store: dir, waitedMs: Date.now() - began }, 'store free; starting');
      return store;
    } catch (err) {
      if (!isRfError(err, 'RF_STORE_LOCKED') || Date.now() - began >= waitMs) throw err;
      // Another rf listen (it answers on the control socket) is not a reader that will finish.
      const owner = existsSync(storePaths(dir).socket)
        ? await RemoteKv.connect(dir, storePaths(dir).socket)
        : null;
      if (owner !== null) {
        await owner.close();
        throw err;
      }
      if (!warned) {
        log.warn(
          { store: dir, waitMs },
          'the store is held by another process (a reader such as rf verify?); waiting for it',
        );
        warned = true;
      }
      await sleep(250);
    }
  }
}

async function storeExists(dir: string): Promise<boolean> {
  try {
    await access(storePaths(dir).db);
    return true;
  } catch {
    return false;
  }
}
