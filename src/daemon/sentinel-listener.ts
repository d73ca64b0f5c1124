import { setTimeout as sleep } from 'node:timers/promises';
import type tls from 'node:tls';
import { Backoff } from '../backoff.js';
import { isRfError, RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeEndpoint, type RedisEndpoint } from '../redis-url.js';
import {
  askMaster,
  type NamedMaster,
  parseSwitchMaster,
  roleOf,
  SWITCH_MASTER,
} from '../replication/sentinel.js';
import { RedisClient } from '../resp/client.js';
import { Subscriber } from '../resp/subscriber.js';
import { Archive } from '../store/archive.js';
import { readCluster } from '../store/cluster.js';
import { type Store, storePaths } from '../store/store.js';
import type { ServerInfo, SourceRecord } from '../store/types.js';
import { checkControlSocketPath, serveOwnedStore } from './control.js';
import { openOwned } from './listener.js';
import { type SessionTuning, ShardRunner, type ShardRunnerStatus } from './shard-runner.js';
import { recordSourceFacts } from './source-facts.js';
import { ErrorCounts, messageOf } from './supervise.js';

export interface SentinelListenConfig extends SessionTuning {
  /** The sentinels, each with its own credentials; asked in this order. */
  sentinels: RedisEndpoint[];
  masterName: string;
  /** How to log in to whichever master Sentinel names (user, password, TLS). */
  masterAuth: Pick<RedisEndpoint, 'username' | 'password' | 'tls'>;
  tlsOptions?: tls.ConnectionOptions;
  store: string;
  name: string;
  /** How often Sentinel is asked again when nothing else asks for it. */
  refreshMs: number;
}

export interface SentinelListenerStatus extends ShardRunnerStatus {
  pid: number;
  kind: 'sentinel';
  name: string;
  source: string;
  startedAt: number;
  sentinel: {
    masterName: string;
    sentinels: string[];
    /** Sentinel subscriptions to +switch-master that are up now. */
    subscribed: number;
    lastSwitch: { from: string | null; to: string; at: number } | null;
  };
  errors: Record<string, number>;
  lastError: ErrorCounts['last'];
}

/**
 * `rf listen --sentinel`: one source whose master is whichever one Sentinel names. The
 * replication is the ShardRunner a cluster shard uses (the same ReplicationSession, resuming
 * with PSYNC <replid> <durable+1>, so psync2 continues the timeline across a failover); this
 * class only decides where it points. It asks Sentinel at start, on every `+switch-master` for
 * this master name, whenever the link to the master drops, and on a schedule. An address is
 * followed only once it answers ROLE as a master: a replica's stream is not the master's history.
 */
export class SentinelListener {
  private stopping = false;
  private readonly wake = new AbortController();
  private readonly failures = new ErrorCounts();
  private runner: ShardRunner | null = null;
  /** Where the replication points now; null while it waits for Sentinel and ROLE to agree. */
  private master: RedisEndpoint | null = null;
  /** The last master followed: checked again when no sentinel answers. */
  private lastKnown: RedisEndpoint | null = null;
  private following: Promise<void> = Promise.resolve();
  private refreshNow: (() => void) | null = null;
  private subscribed = 0;
  private lastSwitch: SentinelListenerStatus['sentinel']['lastSwitch'] = null;
  private readonly startedAt = Date.now();

  constructor(
    private readonly config: SentinelListenConfig,
    private readonly log: Logger,
  ) {}

  status(): SentinelListenerStatus {
    const { config } = this;
    return {
      pid: process.pid,
      kind: 'sentinel',
      name: config.name,
      source: this.sourceUrl(),
      startedAt: this.startedAt,
      ...(this.runner?.status() ?? { master: null, sessions: 0, reconnects: 0, session: null }),
      sentinel: {
        masterName: config.masterName,
        sentinels: config.sentinels.map(describeEndpoint),
        subscribed: this.subscribed,
        lastSwitch: this.lastSwitch,
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
    const first = await this.firstMaster();
    const store = await openOwned(config.store, log);
    let control: { close(): Promise<void> } | null = null;
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
      const server = await this.recordFacts(store, first);
      const {
        sentinels: _s,
        masterName: _m,
        masterAuth: _a,
        store: _d,
        name: _n,
        refreshMs: _r,
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
        onLost: () => {
          this.point(null);
          this.refreshNow?.();
        },
      });
      this.runner = runner;
      this.lastKnown = first;
      this.point(first);
      control = await serveOwnedStore(config.store, store, () => this.status(), log);
      tasks.push(...config.sentinels.map((s) => this.subscribe(s)));
      tasks.push(this.refreshLoop());
      await runner.run();
    } finally {
      this.stop();
      await Promise.all(tasks);
      await control?.close();
      await store.close();
    }
  }

  private sourceUrl(): string {
    const first = this.config.sentinels[0];
    const where = first === undefined ? '' : describeEndpoint(first);
    return `sentinel://${where}/${this.config.masterName}`;
  }

  private ask(): Promise<NamedMaster> {
    return askMaster(this.config.sentinels, this.config.masterName, this.connectOptions());
  }

  private endpointOf(at: { host: string; port: number }): RedisEndpoint {
    const { username, password, tls } = this.config.masterAuth;
    return {
      host: at.host,
      port: at.port,
      db: 0,
      tls,
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password }),
    };
  }

  /**
   * The master Sentinel names at start, checked to be one. During a failover a sentinel may name
   * a node that has not finished its promotion: asked again for --connect-timeout before giving up.
   */
  private async firstMaster(): Promise<RedisEndpoint> {
    const deadline = Date.now() + this.config.connectTimeoutMs;
    for (;;) {
      const named = await this.ask();
      const endpoint = this.endpointOf(named);
      const role = await roleOf(endpoint, this.connectOptions());
      if (role.role === 'master') {
        this.log.info(
          {
            masterName: this.config.masterName,
            master: describeEndpoint(endpoint),
            sentinel: named.sentinel,
          },
          'Sentinel names the master',
        );
        return endpoint;
      }
      if (Date.now() > deadline) throw this.notMaster(named, role);
      await sleep(500);
    }
  }

  private notMaster(named: NamedMaster, role: { role: string; master?: string }): RfError {
    const where = `${named.host}:${named.port}`;
    const what = role.role === 'replica' ? `a replica of ${role.master}` : `a ${role.role}`;
    return new RfError(
      'RF_SOURCE_IS_REPLICA',
      `${named.sentinel} names ${where} as master ${JSON.stringify(this.config.masterName)}, but it is ${what}`,
      {
        details: {
          source: where,
          sentinel: named.sentinel,
          masterName: this.config.masterName,
          ...role,
        },
        hint: 'a replica’s stream is not the master’s history: check `SENTINEL MASTER <name>` on the sentinels, and start rf listen again once they name the master',
      },
    );
  }

  /** Points the replication at `master` (null: nowhere until Sentinel says). */
  private point(master: RedisEndpoint | null): void {
    this.master = master;
    this.runner?.setMaster(master);
  }

  /**
   * Where the master is now, from Sentinel and checked with ROLE. A master that still answers as
   * one is left only on a `+switch-master` (`announced`): a sentinel that has not yet heard of a
   * failover would otherwise send rf back to the old master, which keeps answering as a master
   * until Sentinel turns it into a replica (sentinel.c: +convert-to-slave, seconds later).
   * With no sentinel answering, the last master followed is checked again instead.
   */
  private follow(announced?: { host: string; port: number }): Promise<void> {
    // One decision at a time: a slow answer from before a +switch-master must not land after it.
    const next = this.following.then(() => this.decide(announced));
    this.following = next.catch(() => undefined);
    return next;
  }

  private async decide(announced?: { host: string; port: number }): Promise<void> {
    let candidate: { host: string; port: number } | null = announced ?? null;
    if (candidate === null) {
      try {
        candidate = await this.ask();
        if (this.failures.recovered('sentinel')) this.log.info('Sentinel answering again');
      } catch (err) {
        const code = this.failures.episode('sentinel', err);
        if (code !== null)
          this.log.warn({ error: { code, message: messageOf(err) } }, 'Sentinel not answering');
        candidate = this.lastKnown;
      }
    }
    if (candidate === null) return;
    const endpoint = this.endpointOf(candidate);
    const where = describeEndpoint(endpoint);
    const current = this.master === null ? null : describeEndpoint(this.master);
    if (current === where) return;
    if (announced === undefined && this.master !== null) {
      const still = await this.roleOrNull(this.master);
      if (still?.role === 'master') return;
    }
    const role = await this.roleOrNull(endpoint);
    if (role === null) return;
    if (role.role !== 'master') {
      this.log.warn(
        { master: where, role },
        'Sentinel names a node that is not a master: not archived; asking again',
      );
      return;
    }
    const before = this.lastKnown === null ? null : describeEndpoint(this.lastKnown);
    if (before !== where) this.lastSwitch = { from: before, to: where, at: Date.now() };
    this.lastKnown = endpoint;
    this.point(endpoint);
  }

  /** ROLE of a node, or null when it cannot be asked now (down, restarting). */
  private roleOrNull(endpoint: RedisEndpoint) {
    return roleOf(endpoint, this.connectOptions()).catch((err: unknown) => {
      if (!isRfError(err)) throw err;
      return null;
    });
  }

  private connectOptions() {
    return {
      timeoutMs: this.config.connectTimeoutMs,
      ...(this.config.tlsOptions ? { tlsOptions: this.config.tlsOptions } : {}),
    };
  }

  /** Every `refreshMs`, or at once when the link drops or a switch is announced. */
  private async refreshLoop(): Promise<void> {
    while (!this.stopping) {
      const early = new AbortController();
      this.refreshNow = () => early.abort();
      const signal = AbortSignal.any([early.signal, this.wake.signal]);
      // Without a master, soon: a failover is under way or the old master came back as a replica.
      const wait = this.master === null ? 500 : this.config.refreshMs;
      await sleep(wait, undefined, { signal }).catch(() => undefined);
      if (this.stopping) return;
      try {
        await this.follow();
      } catch (err) {
        this.failures.note('sentinel', err);
        this.log.warn({ error: { message: messageOf(err) } }, 'following Sentinel failed');
      }
    }
  }

  /** One sentinel's `+switch-master` announcements, resubscribed with backoff when it drops. */
  private async subscribe(sentinel: RedisEndpoint): Promise<void> {
    const backoff = new Backoff(500, 10_000);
    const where = describeEndpoint(sentinel);
    while (!this.stopping) {
      let sub: Subscriber | null = null;
      try {
        sub = await Subscriber.open(sentinel, [SWITCH_MASTER], {
          ...this.connectOptions(),
          pingEveryMs: 5_000,
          onMessage: (_channel, payload) => this.switched(where, payload),
        });
        this.subscribed++;
        backoff.reset();
        this.failures.recovered(`subscription ${where}`);
        this.log.info({ sentinel: where }, 'subscribed to +switch-master');
        const stopped = new Promise<void>((resolve) =>
          this.wake.signal.addEventListener('abort', () => resolve(), { once: true }),
        );
        const ended = await Promise.race([sub.closed, stopped]);
        this.subscribed--;
        if (ended === undefined) return;
        this.log.warn({ sentinel: where, error: ended.message }, 'Sentinel subscription lost');
      } catch (err) {
        const code = this.failures.episode(`subscription ${where}`, err);
        if (code !== null)
          this.log.warn(
            { sentinel: where, error: { code, message: messageOf(err) } },
            'cannot subscribe to +switch-master; asking on a schedule meanwhile',
          );
      } finally {
        sub?.close();
      }
      await sleep(backoff.next(), undefined, { signal: this.wake.signal }).catch(() => undefined);
    }
  }

  private switched(sentinel: string, payload: string): void {
    const event = parseSwitchMaster(payload);
    // Each sentinel announces every master it monitors: only ours is followed.
    if (event === null || event.masterName !== this.config.masterName) return;
    this.log.info(
      {
        sentinel,
        from: `${event.from.host}:${event.from.port}`,
        to: `${event.to.host}:${event.to.port}`,
      },
      '+switch-master',
    );
    this.follow(event.to).catch((err: unknown) => {
      this.failures.note('sentinel', err);
      this.log.warn({ error: { message: messageOf(err) } }, 'following +switch-master failed');
    });
  }

  /** INFO server and the command table of the first master, as rf listen records them. */
  private async recordFacts(store: Store, master: RedisEndpoint): Promise<ServerInfo | null> {
    const client = await RedisClient.connect(master, this.connectOptions());
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
