import { existsSync } from 'node:fs';
import { isRfError, RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeEndpoint, type RedisEndpoint } from '../redis-url.js';
import { RedisClient } from '../resp/client.js';
import { Archive } from '../store/archive.js';
import { readCluster } from '../store/cluster.js';
import { type Store, storePaths } from '../store/store.js';
import type { ServerInfo, SourceRecord } from '../store/types.js';
import { runnerMetrics } from './cluster-metrics.js';
import { checkControlSocketPath, serveOwnedStore } from './control.js';
import { openOwned } from './listener.js';
import type { MasterSample } from './master-watch.js';
import { startMetricsServer } from './metrics.js';
import { probeRepo, type RepoSetting } from './repo-upload.js';
import { scheduleSourceRetention } from './retention-loop.js';
import type { RollSchedule } from './roll-bases.js';
import { type FollowConfig, type FollowStatus, SentinelFollower } from './sentinel-follow.js';
import { type SessionTuning, ShardRunner, type ShardRunnerStatus } from './shard-runner.js';
import { recordSourceFacts } from './source-facts.js';
import { ErrorCounts, messageOf } from './supervise.js';

export interface SentinelListenConfig extends SessionTuning, FollowConfig {
  store: string;
  name: string;
  /** Serve Prometheus metrics here (the series of one source, without a label). */
  metrics?: { host: string; port: number };
  /** Take a fresh base this often (null: never). */
  baseEveryMs: number | null;
  /** Roll a base forward off the master this often, in a scratch redis-server. */
  rollBases?: RollSchedule;
  /** Keep what restores within this long before now need; prune the rest (null: keep all). */
  retainMs: number | null;
  /** Upload what is sealed to this bucket (--repo), as rf listen --source does. */
  repo?: RepoSetting;
}

export interface SentinelListenerStatus extends Omit<ShardRunnerStatus, 'master' | 'masterSample'> {
  pid: number;
  kind: 'sentinel';
  name: string;
  source: string;
  startedAt: number;
  /** The newest sample of the master's own offset, as rf listen --source reports it. */
  master: MasterSample | null;
  sentinel: FollowStatus & { masterName: string; sentinels: string[] };
  errors: Record<string, number>;
  lastError: ErrorCounts['last'];
}

/** Failures that another try may not repeat: down now, perhaps up in a moment. */
const UNREACHABLE = new Set(['RF_SENTINEL_UNREACHABLE', 'RF_CONNECT', 'RF_TIMEOUT']);

/**
 * `rf listen --sentinel`: one source whose master is whichever one Sentinel names. The
 * replication is the ShardRunner a cluster shard uses (the same ReplicationSession, resuming
 * with PSYNC <replid> <durable+1>, so psync2 continues the timeline across a failover); the
 * SentinelFollower decides where it points.
 */
export class SentinelListener {
  private stopping = false;
  private readonly wake = new AbortController();
  private readonly failures = new ErrorCounts();
  private runner: ShardRunner | null = null;
  private readonly follower: SentinelFollower;
  private readonly startedAt = Date.now();

  constructor(
    private readonly config: SentinelListenConfig,
    private readonly log: Logger,
  ) {
    this.follower = new SentinelFollower(
      config,
      log,
      this.failures,
      (master) => this.runner?.setMaster(master),
      this.wake.signal,
    );
  }

  status(): SentinelListenerStatus {
    const { config } = this;
    const runner = this.runner?.status();
    return {
      pid: process.pid,
      kind: 'sentinel',
      name: config.name,
      source: this.sourceUrl(),
      startedAt: this.startedAt,
      sessions: runner?.sessions ?? 0,
      reconnects: runner?.reconnects ?? 0,
      session: runner?.session ?? null,
      master: runner?.masterSample ?? null,
      lastBaseAt: runner?.lastBaseAt ?? null,
      baseEveryMs: config.baseEveryMs,
      repo: runner?.repo ?? null,
      sentinel: {
        masterName: config.masterName,
        sentinels: config.sentinels.map(describeEndpoint),
        ...this.follower.status(),
      },
      errors: { ...this.failures.byCode },
      lastError: this.failures.last,
    };
  }

  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.runner?.stop();
    this.wake.abort();
  }

  async run(): Promise<void> {
    const { config, log } = this;
    checkControlSocketPath(config.store, storePaths(config.store).socket);
    // Before the store exists: an unknown master name or a replica leaves nothing behind.
    let first: RedisEndpoint | null;
    let unreachable: unknown = null;
    try {
      first = await this.follower.firstMaster();
    } catch (err) {
      if (
        !UNREACHABLE.has(isRfError(err) ? err.code : '') ||
        !existsSync(storePaths(config.store).db)
      )
        throw err;
      first = null;
      unreachable = err;
    }
    const store = await openOwned(config.store, log);
    let control: { close(): Promise<void> } | null = null;
    let metrics: { close(): Promise<void> } | null = null;
    const tasks: Promise<void>[] = [];
    try {
      if ((await readCluster(store, config.name)) !== undefined) {
        throw new RfError(
          'RF_USAGE',
          `the store ${config.store} already holds a cluster named ${config.name}`,
          {
            details: { store: config.store, name: config.name },
            hint: 'give this master another --name, or another --store',
          },
        );
      }
      if (first === null) {
        // With an archive to resume, Sentinel or the master being down now is waited for.
        if ((await new Archive(store).state(config.name)) === undefined) throw unreachable;
        log.warn(
          { error: messageOf(unreachable) },
          'Sentinel or the master unreachable at start; will keep asking',
        );
      }
      if (config.repo !== undefined) await probeRepo(config.repo.client, log);
      const server = first === null ? null : await this.recordFacts(store, first);
      const {
        sentinels: _s,
        masterName: _m,
        masterAuth: _a,
        store: _d,
        name: _n,
        refreshMs: _r,
        metrics: _x,
        retainMs: _t,
        ...tuning
      } = config;
      const runner = new ShardRunner({
        ...tuning,
        store,
        source: await this.sourceRecord(store, server),
        log,
        failures: this.failures,
        // The link dropped: until Sentinel and ROLE say again where the master is, no session
        // starts (the old master may come back as a replica).
        onLost: () => this.follower.lost(),
      });
      this.runner = runner;
      if (config.metrics) {
        metrics = await startMetricsServer({
          listen: config.metrics,
          store: config.store,
          kv: store,
          snapshot: () => {
            const status = this.status();
            return {
              sources: [
                {
                  source: config.name,
                  metrics: runnerMetrics({ ...status, masterSample: status.master }),
                },
              ],
              errors: status.errors,
            };
          },
          log,
        });
      }
      control = await serveOwnedStore(config.store, store, () => this.status(), log);
      tasks.push(this.follower.run(first), this.scheduleRetention(store));
      await runner.run();
    } finally {
      this.stop();
      await Promise.all(tasks);
      await metrics?.close();
      await control?.close();
      await store.close();
    }
  }

  /** --retain: the one source pruned as rf listen --source prunes it. */
  private scheduleRetention(store: Store): Promise<void> {
    const { config, log } = this;
    return scheduleSourceRetention(
      store,
      config.name,
      () => this.runner?.heldUntil() ?? Number.POSITIVE_INFINITY,
      {
        retainMs: config.retainMs,
        stopping: () => this.stopping,
        signal: this.wake.signal,
        failures: this.failures,
        log,
      },
    );
  }

  private sourceUrl(): string {
    const first = this.config.sentinels[0];
    const where = first === undefined ? '' : describeEndpoint(first);
    return `sentinel://${where}/${this.config.masterName}`;
  }

  /** INFO server and the command table of the first master, as rf listen records them. */
  private async recordFacts(store: Store, master: RedisEndpoint): Promise<ServerInfo | null> {
    const client = await RedisClient.connect(master, {
      timeoutMs: this.config.connectTimeoutMs,
      ...(this.config.tlsOptions ? { tlsOptions: this.config.tlsOptions } : {}),
    });
    try {
      return await recordSourceFacts(client, store, this.config.name, this.log);
    } finally {
      client.destroy();
    }
  }

  private async sourceRecord(store: Store, server: ServerInfo | null): Promise<SourceRecord> {
    const existing = await new Archive(store).source(this.config.name);
    const record = existing ?? {
      name: this.config.name,
      url: this.sourceUrl(),
      createdAt: Date.now(),
    };
    return server === null ? record : { ...record, server };
  }
}
