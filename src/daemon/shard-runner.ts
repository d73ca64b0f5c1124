import { setTimeout as sleep } from 'node:timers/promises';
import type tls from 'node:tls';
import { Backoff } from '../backoff.js';
import { isRfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeEndpoint, type RedisEndpoint, sameEndpoint } from '../redis-url.js';
import { MasterRetryLater } from '../replication/handshake.js';
import {
  ReplicationSession,
  type SessionOptions,
  type SessionStatus,
} from '../replication/session.js';
import type { RepoStatus, RepoUploader } from '../repo/uploader.js';
import { RedisClient } from '../resp/client.js';
import { Archive } from '../store/archive.js';
import type { Store } from '../store/store.js';
import type { SourceRecord } from '../store/types.js';
import { scheduleFreshBases } from './fresh-bases.js';
import { FATAL } from './listener.js';
import { MasterClock } from './master-clock.js';
import type { MasterSample } from './master-watch.js';
import { keepLocalWithin, REPO_DRAIN_MS, type RepoSetting, startUploader } from './repo-upload.js';
import { type RollSchedule, scheduleRolledBases } from './roll-bases.js';
import { recordSeen } from './seen.js';
import { type ErrorCounts, messageOf } from './supervise.js';

/** How each session connects, reads and commits: the same for every shard. */
export type SessionTuning = Pick<
  SessionOptions,
  | 'connectTimeoutMs'
  | 'readTimeoutMs'
  | 'maxSegmentBytes'
  | 'flushIntervalMs'
  | 'ackIntervalMs'
  | 'listeningPort'
>;

export interface ShardRunnerOptions extends SessionTuning {
  store: Store;
  source: SourceRecord;
  tlsOptions?: tls.ConnectionOptions;
  log: Logger;
  failures: ErrorCounts;
  /** Called when the session to the master failed: the topology may have changed. */
  onLost: () => void;
  /** Take a fresh base this often (null or absent: never), as rf listen --base-every. */
  baseEveryMs?: number | null;
  /** Roll a base forward off the master this often, as rf listen --roll-base-every. */
  rollBases?: RollSchedule;
  /** Upload what the shard seals to this bucket, as rf listen --repo does. */
  repo?: RepoSetting;
}

export interface ShardRunnerStatus {
  master: string | null;
  sessions: number;
  reconnects: number;
  session: SessionStatus | null;
  /** The newest sample of the master's own offset (INFO replication, every 100 ms). */
  masterSample: MasterSample | null;
  /** When the newest base was taken (a full sync's or a fresh one). */
  lastBaseAt: number | null;
  baseEveryMs: number | null;
  /** The uploads to --repo (null: not asked for). */
  repo: RepoStatus | null;
}

/**
 * One shard's replication, kept alive across failovers: the same ReplicationSession a standalone
 * rf listen runs, pointed at whichever node is the shard's master now. A session resumes from
 * the shard's durable state with PSYNC <replid> <durable+1>; a promoted replica keeps the old
 * replid as master_replid2 and answers +CONTINUE (replication.c masterTryPartialResynchronization),
 * so the shard's timeline goes on. When it cannot, +FULLRESYNC starts a new timeline.
 */
export class ShardRunner {
  private master: RedisEndpoint | null = null;
  private session: ReplicationSession | null = null;
  private stopping = false;
  private wake = new AbortController();
  /** Aborted once, by stop(): ends the storing of offset samples. */
  private readonly stopped = new AbortController();
  private sessions = 0;
  private reconnects = 0;
  private lastBaseAt: number | null = null;
  private uploader: RepoUploader | null = null;
  /** Bounds each entry's time by the master's clock, and gives the lag metrics its offset. */
  private readonly watch: MasterClock;

  constructor(private readonly options: ShardRunnerOptions) {
    this.watch = new MasterClock({
      store: options.store,
      source: options.source.name,
      ...(options.tlsOptions ? { tlsOptions: options.tlsOptions } : {}),
      log: options.log,
      failures: options.failures,
      job: `master watch ${options.source.name}`,
    });
  }

  status(): ShardRunnerStatus {
    return {
      master: this.master === null ? null : describeEndpoint(this.master),
      sessions: this.sessions,
      reconnects: this.reconnects,
      session: this.session?.snapshot() ?? null,
      masterSample: this.watch.latest(),
      lastBaseAt: this.lastBaseAt,
      baseEveryMs: this.options.baseEveryMs ?? null,
      repo: this.uploader?.snapshot() ?? null,
    };
  }

  /**
   * With --repo: restores at or after this instant need nothing that is only local, so retention
   * may prune before it, never after (RepoUploader.heldUntil). Without: no bound.
   */
  heldUntil(): number {
    if (this.options.repo === undefined) return Number.POSITIVE_INFINITY;
    return this.uploader?.heldUntil() ?? 0;
  }

  /** The shard's master as the topology says now; a different one ends the current session. */
  setMaster(master: RedisEndpoint | null): void {
    if (sameEndpoint(master, this.master)) return;
    this.options.log.info(
      {
        from: this.master === null ? null : describeEndpoint(this.master),
        to: master === null ? null : describeEndpoint(master),
      },
      'shard master changed',
    );
    this.master = master;
    this.watch.follow(master);
    this.session?.stop();
    this.wake.abort();
  }

  stop(): void {
    this.stopping = true;
    this.session?.stop();
    this.wake.abort();
    this.stopped.abort();
  }

  /** Runs until stop(); rejects only with an error no reconnect can fix. */
  async run(): Promise<void> {
    const known = await new Archive(this.options.store).bases(this.options.source.name);
    this.lastBaseAt = known.length > 0 ? Math.max(...known.map((b) => b.takenAt)) : null;
    await this.watch.load();
    const background = [
      this.watch.run(this.stopped.signal),
      this.scheduleBases(),
      this.scheduleRolls(),
      this.offload(),
      recordSeen({
        store: this.options.store,
        source: this.options.source.name,
        session: () => this.session?.snapshot(),
        latest: () => this.watch.latest(),
        failures: this.options.failures,
        log: this.options.log,
        signal: this.stopped.signal,
      }),
    ];
    try {
      await this.stream();
    } finally {
      this.stop();
      await Promise.all(background);
      await this.watch.stop();
      // After the open segment is sealed: it goes up with the rest, for a bounded time.
      await this.uploader?.finish(this.options.repo?.drainMs ?? REPO_DRAIN_MS);
    }
  }

  /** --repo: the shard's uploads, and --local-retain once the bucket holds what leaves. */
  private async offload(): Promise<void> {
    const { options } = this;
    if (options.repo === undefined) return;
    const { client, localRetainMs } = options.repo;
    const uploader = startUploader(options.store, options.source.name, client, options.log);
    this.uploader = uploader;
    if (localRetainMs === null) return;
    await keepLocalWithin({
      store: options.store,
      source: options.source.name,
      keepMs: localRetainMs,
      holds: () => uploader.holds(),
      failures: options.failures,
      job: `local retention ${options.source.name}`,
      log: options.log,
      signal: this.stopped.signal,
    });
  }

  /** --base-every: fresh bases from the master streaming now, as rf listen takes them. */
  private async scheduleBases(): Promise<void> {
    const { options } = this;
    const every = options.baseEveryMs ?? null;
    if (every === null) return;
    await scheduleFreshBases({
      everyMs: every,
      store: options.store,
      source: options.source.name,
      current: () => {
        const session = this.session?.snapshot();
        return this.master === null || session === undefined
          ? null
          : { endpoint: this.master, session };
      },
      ...(options.tlsOptions ? { tlsOptions: options.tlsOptions } : {}),
      connectTimeoutMs: options.connectTimeoutMs,
      readTimeoutMs: options.readTimeoutMs,
      log: options.log,
      signal: this.stopped.signal,
      taken: (takenAt) => {
        this.lastBaseAt = takenAt;
      },
      failed: (err) => {
        const code = options.failures.note(`fresh base ${options.source.name}`, err);
        options.log.warn(
          { error: { code, message: messageOf(err) } },
          'fresh base failed; will try again',
        );
      },
    });
  }

  /** --roll-base-every: bases of this shard rolled forward in a scratch redis-server. */
  private async scheduleRolls(): Promise<void> {
    const { options } = this;
    const schedule = options.rollBases;
    if (schedule === undefined) return;
    await scheduleRolledBases({
      store: options.store,
      source: options.source.name,
      schedule,
      timeline: () => {
        const s = this.session?.snapshot();
        return s?.phase === 'streaming' ? s.timeline : null;
      },
      stopping: () => this.stopping,
      signal: this.stopped.signal,
      failed: (err) => {
        const code = options.failures.note(`rolled base ${options.source.name}`, err);
        options.log.warn(
          { error: { code, message: messageOf(err) } },
          'rolled base failed; will try again',
        );
      },
      log: options.log,
    });
  }

  private async stream(): Promise<void> {
    const { options } = this;
    const { log } = options;
    const backoff = new Backoff();
    let everStreamed = (await new Archive(options.store).state(options.source.name)) !== undefined;
    while (!this.stopping) {
      const master = this.master;
      if (master === null) {
        // No master is up for the shard: wait for the topology to name one.
        await this.pause(60_000);
        continue;
      }
      if ((await this.roleOf(master)) === 'replica') {
        // The topology named it before it turned replica: its stream would be another shard's.
        log.info({ node: describeEndpoint(master) }, 'not a master any more: reading the topology');
        options.onLost();
        await this.pause(backoff.next());
        continue;
      }
      const {
        failures: _f,
        onLost: _o,
        log: _l,
        baseEveryMs: _b,
        rollBases: _r,
        repo: _repo,
        ...sessionOptions
      } = options;
      const session = new ReplicationSession({
        ...sessionOptions,
        endpoint: master,
        clock: this.watch.clock,
        withCommit: this.watch.withCommit,
        onBase: (base) => {
          this.lastBaseAt = base.takenAt;
        },
        log: log.child({ session: this.sessions + 1, master: describeEndpoint(master) }),
      });
      this.session = session;
      this.sessions++;
      try {
        // Resolves when stopped: by stop(), or because the shard has a new master.
        await session.run();
        backoff.reset();
      } catch (err) {
        const status = session.snapshot();
        everStreamed ||= status.durableOffset !== null;
        const code = options.failures.note(`stream ${options.source.name}`, err);
        if (!isRfError(err) || FATAL.has(code)) throw err;
        // Before a first snapshot, a refused password is the operator's to fix, not a failover.
        if (!everStreamed && !(err instanceof MasterRetryLater) && code === 'RF_AUTH') throw err;
        if (this.stopping) return;
        if (status.phase === 'closed' && status.timeline !== null) backoff.reset();
        const delay = backoff.next();
        this.reconnects++;
        log.warn(
          {
            error: { code, message: messageOf(err) },
            retryInMs: delay,
            durableOffset: status.durableOffset,
          },
          'shard replication lost; reading the topology and resuming',
        );
        options.onLost();
        await this.pause(delay);
      }
    }
  }

  /**
   * What the node says it is (ROLE). A master that gave away its last slot becomes a replica of
   * the node that took it (cluster-allow-replica-migration), and a replica serves its master's
   * stream to replicas of its own: rf must not take that for this shard's. Unknown when the node
   * does not answer: the session's own connect then fails and is retried.
   */
  private async roleOf(node: RedisEndpoint): Promise<'master' | 'replica' | 'unknown'> {
    try {
      const client = await RedisClient.connect(node, {
        timeoutMs: this.options.connectTimeoutMs,
        ...(this.options.tlsOptions ? { tlsOptions: this.options.tlsOptions } : {}),
      });
      try {
        const role = (await client.call('ROLE')) as unknown[];
        return String(role[0]) === 'master' ? 'master' : 'replica';
      } finally {
        await client.close().catch(() => undefined);
      }
    } catch {
      return 'unknown';
    }
  }

  /** Sleeps, cut short by stop() or a new master. */
  private async pause(ms: number): Promise<void> {
    if (this.stopping) return;
    // A change that woke an earlier pause has been acted on: this one waits for the next.
    if (this.wake.signal.aborted) this.wake = new AbortController();
    await sleep(ms, undefined, { signal: this.wake.signal }).catch(() => undefined);
  }
}
