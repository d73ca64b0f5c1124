import { setTimeout as sleep } from 'node:timers/promises';
import type tls from 'node:tls';
import { RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeEndpoint, endpointAt, type RedisEndpoint, redactUrl } from '../redis-url.js';
import { assignShards, mastersOf } from '../replication/cluster-shards.js';
import {
  type ClusterNode,
  discoverTopology,
  type Topology,
  uncovered,
} from '../replication/cluster-topology.js';
import { ClusterUploader } from '../repo/cluster-uploader.js';
import { Archive } from '../store/archive.js';
import {
  type ClusterRecord,
  readCluster,
  type SlotRanges,
  writeCluster,
} from '../store/cluster.js';
import { type Store, storePaths } from '../store/store.js';
import { clusterMetrics } from './cluster-metrics.js';
import { scheduleClusterRetention, Turns } from './cluster-retention.js';
import { checkControlSocketPath, serveOwnedStore } from './control.js';
import { openOwned } from './listener.js';
import { startMetricsServer } from './metrics.js';
import { probeRepo, REPO_DRAIN_MS, type RepoSetting } from './repo-upload.js';
import type { RollSchedule } from './roll-bases.js';
import { type SessionTuning, ShardRunner, type ShardRunnerStatus } from './shard-runner.js';
import { ErrorCounts, messageOf } from './supervise.js';

export interface ClusterListenConfig extends SessionTuning {
  sourceUrl: string;
  /** Any node of the cluster; its credentials and TLS serve every node. */
  endpoint: RedisEndpoint;
  tlsOptions?: tls.ConnectionOptions;
  store: string;
  name: string;
  /** How often the topology is read again when nothing else asks for it. */
  refreshMs: number;
  /** Serve Prometheus metrics here, per shard. */
  metrics?: { host: string; port: number };
  /** Take a fresh base of each shard this often (null: never). */
  baseEveryMs: number | null;
  /** Upload each shard's archive, and the cluster's own record, to this bucket (--repo). */
  repo?: RepoSetting;
  /** Roll each shard's base forward off its master this often, in a scratch redis-server. */
  rollBases?: RollSchedule;
  /** Keep what cluster restores within this long before now need; prune the rest (null: all). */
  retainMs: number | null;
}

/** How often the cluster's own object is written while its shards upload (when it changed). */
const CLUSTER_PUBLISH_MS = 2_000;

export interface ClusterListenerStatus {
  pid: number;
  kind: 'cluster';
  name: string;
  source: string;
  startedAt: number;
  /** No single session: `rf info` reads each shard's lag from `shards`. */
  session: null;
  topology: { from: string; via: string; at: number } | null;
  shards: Array<{ id: string; source: string } & ShardRunnerStatus>;
  errors: Record<string, number>;
  lastError: ErrorCounts['last'];
}

/**
 * `rf listen --cluster`: one daemon and one store for a whole Redis Cluster, one ShardRunner
 * (one replication session at a time) per shard. The topology is read from any node seen so far,
 * on a schedule and whenever a shard loses its master; slot ownership is recorded as it changes.
 */
export class ClusterListener {
  private stopping = false;
  private readonly wake = new AbortController();
  private readonly runners = new Map<string, { runner: ShardRunner; done: Promise<void> }>();
  private readonly seen = new Map<string, RedisEndpoint>();
  private readonly failures = new ErrorCounts();
  private record: ClusterRecord | null = null;
  private topology: ClusterListenerStatus['topology'] = null;
  private refreshNow: (() => void) | null = null;
  private fatal: { err: unknown } | null = null;
  private repoCluster: ClusterUploader | null = null;
  private readonly startedAt = Date.now();
  /** The cluster record is read, changed and written by one task at a time (apply, retention). */
  private readonly turns = new Turns();

  constructor(
    private readonly config: ClusterListenConfig,
    private readonly log: Logger,
  ) {
    this.seen.set(describeEndpoint(config.endpoint), config.endpoint);
  }

  status(): ClusterListenerStatus {
    return {
      pid: process.pid,
      kind: 'cluster',
      name: this.config.name,
      source: redactUrl(this.config.sourceUrl),
      startedAt: this.startedAt,
      session: null,
      topology: this.topology,
      shards: (this.record?.shards ?? []).map((s) => ({
        id: s.id,
        source: s.source,
        ...(this.runners.get(s.id)?.runner.status() ?? {
          master: null,
          sessions: 0,
          reconnects: 0,
          session: null,
          masterSample: null,
          lastBaseAt: null,
          baseEveryMs: null,
          repo: null,
        }),
      })),
      errors: { ...this.failures.byCode },
      lastError: this.failures.last,
    };
  }

  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const { runner } of this.runners.values()) runner.stop();
    this.wake.abort();
  }

  async run(): Promise<void> {
    const { config, log } = this;
    checkControlSocketPath(config.store, storePaths(config.store).socket);
    // Before the store exists: a node that is not in cluster mode leaves nothing behind.
    const first = await this.discover();
    const store = await openOwned(config.store, log);
    let control: { close(): Promise<void> } | null = null;
    let metrics: { close(): Promise<void> } | null = null;
    let retention: Promise<void> = Promise.resolve();
    try {
      const archive = new Archive(store);
      if ((await archive.source(config.name)) !== undefined) {
        throw new RfError(
          'RF_USAGE',
          `the store ${config.store} already holds a standalone source named ${config.name}`,
          {
            details: { store: config.store, name: config.name },
            hint: 'give the cluster another --name, or another --store',
          },
        );
      }
      this.record = (await readCluster(store, config.name)) ?? {
        name: config.name,
        createdAt: Date.now(),
        url: redactUrl(config.sourceUrl),
        shards: [],
        slots: [],
      };
      if (config.repo !== undefined) await probeRepo(config.repo.client, log);
      await this.turns.run(() => this.apply(store, first));
      log.info(
        {
          from: first.from,
          via: first.via,
          shards: this.record.shards.map((s) => ({
            id: s.id,
            source: s.source,
            master: s.master,
            slots: this.record?.slots.at(-1)?.owners[s.id] ?? [],
          })),
        },
        'cluster topology found',
      );
      if (config.metrics) {
        metrics = await startMetricsServer({
          listen: config.metrics,
          store: config.store,
          kv: store,
          snapshot: () => clusterMetrics(this.status()),
          log,
        });
      }
      control = await serveOwnedStore(config.store, store, () => this.status(), log);
      const publishing = this.publishLoop();
      retention = scheduleClusterRetention({
        store,
        retainMs: config.retainMs,
        update: (change) =>
          this.turns.run(async () => {
            const next = change(this.record!);
            await writeCluster(store, next);
            this.record = next;
            return next;
          }),
        heldUntil: () => [...this.runners.values()].map((r) => r.runner.heldUntil()),
        stopping: () => this.stopping,
        signal: this.wake.signal,
        failures: this.failures,
        log,
      });
      await this.refreshLoop(store);
      await Promise.all([...this.runners.values()].map((r) => r.done));
      await publishing;
      if (this.fatal !== null) throw this.fatal.err;
    } finally {
      this.stop();
      await retention;
      await Promise.all([...this.runners.values()].map((r) => r.done));
      await this.publishFinal();
      await metrics?.close();
      await control?.close();
      await store.close();
    }
  }

  /** The topology from any node seen so far, the seed first. */
  private async discover(): Promise<Topology> {
    const topo = await discoverTopology([...this.seen.values()], {
      timeoutMs: this.config.connectTimeoutMs,
      ...(this.config.tlsOptions ? { tlsOptions: this.config.tlsOptions } : {}),
    });
    for (const shard of topo.shards)
      for (const node of shard.nodes)
        this.seen.set(`${node.host}:${node.port}`, this.endpointOf(node));
    return topo;
  }

  private endpointOf(node: Pick<ClusterNode, 'host' | 'port'>): RedisEndpoint {
    return endpointAt(this.config.endpoint, node);
  }

  /** Records what the topology says, starts runners for new shards and points each at its master. */
  private async apply(store: Store, topo: Topology): Promise<void> {
    const record = this.record!;
    const { shards, matched } = assignShards(record.name, record.shards, topo.shards);
    const owners: Record<string, SlotRanges> = {};
    for (const { shard, view } of matched) if (view.slots.length > 0) owners[shard.id] = view.slots;
    const last = record.slots.at(-1);
    const changed = last === undefined || JSON.stringify(last.owners) !== JSON.stringify(owners);
    const masters = mastersOf(matched);
    const listed = new Set(topo.shards.flatMap((v) => v.nodes.map((n) => n.id)));
    const next: ClusterRecord = {
      ...record,
      shards: shards.map((s) => {
        const m = masters.get(s.id);
        const before = record.shards.find((r) => r.id === s.id);
        return { ...s, master: m ? `${m.host}:${m.port}` : (before?.master ?? null) };
      }),
      slots: changed ? [...record.slots, { at: Date.now(), owners }] : record.slots,
    };
    if (JSON.stringify(next) !== JSON.stringify(record)) await writeCluster(store, next);
    this.record = next;
    this.topology = { from: topo.from, via: topo.via, at: Date.now() };
    if (changed) {
      const gaps = uncovered(topo.shards);
      if (gaps.length > 0)
        this.log.warn({ slots: gaps }, 'slots with no master: their writes are not being captured');
    }
    for (const shard of next.shards) {
      let entry = this.runners.get(shard.id);
      if (entry === undefined) {
        entry = this.startRunner(store, shard.id, shard.source);
        this.runners.set(shard.id, entry);
      }
      const master = masters.get(shard.id);
      // A shard missing from this answer keeps its master until one says otherwise, unless its
      // nodes now serve other shards: a master left without slots became a replica there.
      if (master !== undefined)
        entry.runner.setMaster(master === null ? null : this.endpointOf(master));
      else if (shard.nodeIds.some((id) => listed.has(id))) entry.runner.setMaster(null);
    }
  }

  private startRunner(store: Store, id: string, source: string) {
    const { config, log } = this;
    const {
      sourceUrl,
      endpoint: _e,
      store: _s,
      name: _n,
      refreshMs: _r,
      metrics: _m,
      retainMs: _t,
      ...tuning
    } = config;
    const runner = new ShardRunner({
      ...tuning,
      store,
      source: { name: source, url: redactUrl(sourceUrl), createdAt: Date.now() },
      log: log.child({ shard: id }),
      failures: this.failures,
      onLost: () => this.refreshNow?.(),
    });
    const done = runner.run().catch((err: unknown) => {
      log.error(
        { shard: id, error: { message: messageOf(err) } },
        'shard capture failed; stopping',
      );
      this.fatal ??= { err };
      this.stop();
    });
    return { runner, done };
  }

  /**
   * --repo: the cluster's own object, every few seconds while the shards upload. A failure is
   * counted and tried again; the shards' uploads go on meanwhile.
   */
  private async publishLoop(): Promise<void> {
    const uploader = this.clusterUploader();
    if (uploader === null) return;
    while (!this.stopping) {
      try {
        await uploader.publish();
        if (this.failures.recovered('repo cluster record'))
          this.log.info('repo: the cluster record is written again');
      } catch (err) {
        const code = this.failures.episode('repo cluster record', err);
        if (code !== null)
          this.log.warn(
            { error: { code, message: messageOf(err) } },
            'repo: the cluster record could not be written; will try again',
          );
      }
      await sleep(CLUSTER_PUBLISH_MS, undefined, { signal: this.wake.signal }).catch(
        () => undefined,
      );
    }
  }

  /**
   * After every shard's uploads have finished (SIGTERM): the record that covers them, tried for
   * as long as the shards' own drain may take.
   */
  private async publishFinal(): Promise<void> {
    const uploader = this.clusterUploader();
    if (uploader === null) return;
    const deadline = Date.now() + (this.config.repo?.drainMs ?? REPO_DRAIN_MS);
    for (;;) {
      try {
        await uploader.publish();
        this.log.info('repo: the cluster record is in the bucket');
        return;
      } catch (err) {
        this.failures.note('repo cluster record', err);
        if (Date.now() >= deadline) {
          this.log.warn(
            { error: { message: messageOf(err) } },
            'repo: stopped without the newest cluster record in the bucket; it goes up at the next start',
          );
          return;
        }
        await sleep(1000);
      }
    }
  }

  private clusterUploader(): ClusterUploader | null {
    const repo = this.config.repo;
    if (repo === undefined) return null;
    this.repoCluster ??= new ClusterUploader({
      client: repo.client,
      name: this.config.name,
      log: this.log,
      record: () => this.record ?? undefined,
      shards: () =>
        this.status().shards.map((s) => ({
          source: s.source,
          manifestSeq: s.repo?.manifestSeq ?? 0,
        })),
    });
    return this.repoCluster;
  }

  private async refreshLoop(store: Store): Promise<void> {
    while (!this.stopping) {
      const early = new AbortController();
      this.refreshNow = () => early.abort();
      const signal = AbortSignal.any([early.signal, this.wake.signal]);
      await sleep(this.config.refreshMs, undefined, { signal }).catch(() => undefined);
      if (this.stopping) return;
      try {
        const topo = await this.discover();
        await this.turns.run(() => this.apply(store, topo));
        if (this.failures.recovered('topology')) this.log.info('topology readable again');
      } catch (err) {
        const code = this.failures.episode('topology', err);
        if (code !== null)
          this.log.warn({ error: { code, message: messageOf(err) } }, 'topology refresh failing');
        // Retry soon, not on the long schedule: a failover may be under way.
        await sleep(500, undefined, { signal: this.wake.signal }).catch(() => undefined);
      }
    }
  }
}
