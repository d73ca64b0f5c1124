import { setTimeout as sleep } from 'node:timers/promises';
import type tls from 'node:tls';
import { Backoff } from '../backoff.js';
import { isRfError, RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeEndpoint, endpointAt, type RedisEndpoint } from '../redis-url.js';
import {
  askMaster,
  type NamedMaster,
  parseSwitchMaster,
  roleOf,
  SWITCH_MASTER,
} from '../replication/sentinel.js';
import { Subscriber } from '../resp/subscriber.js';
import { type ErrorCounts, messageOf } from './supervise.js';

export interface FollowConfig {
  /** The sentinels, each with its own credentials; asked in this order. */
  sentinels: RedisEndpoint[];
  masterName: string;
  /** How to log in to whichever master Sentinel names (user, password, TLS). */
  masterAuth: Pick<RedisEndpoint, 'username' | 'password' | 'tls'>;
  tlsOptions?: tls.ConnectionOptions;
  connectTimeoutMs: number;
  /** How often Sentinel is asked again when nothing else asks for it. */
  refreshMs: number;
}

export interface FollowStatus {
  /** The master followed now, `host:port`. */
  following: string | null;
  /** Sentinel subscriptions to +switch-master that are up now. */
  subscribed: number;
  lastSwitch: { from: string | null; to: string; at: number } | null;
}

/**
 * Where the master Sentinel names is, kept up to date: asked at start, on every
 * `+switch-master` for this master name (from every sentinel), whenever the link to the master
 * drops, and on a schedule. `point` is told each master to follow, or null while none is
 * confirmed. An address is followed only once it answers ROLE as a master: a replica's stream
 * is not the master's history.
 */
export class SentinelFollower {
  /** Where the replication points now; null while it waits for Sentinel and ROLE to agree. */
  private master: RedisEndpoint | null = null;
  /** The last master followed: checked again when no sentinel answers. */
  private lastKnown: RedisEndpoint | null = null;
  private following: Promise<void> = Promise.resolve();
  private refreshNow: (() => void) | null = null;
  private subscribed = 0;
  private lastSwitch: FollowStatus['lastSwitch'] = null;

  constructor(
    private readonly config: FollowConfig,
    private readonly log: Logger,
    private readonly failures: ErrorCounts,
    private readonly pointAt: (master: RedisEndpoint | null) => void,
    /** Aborted when rf listen stops. */
    private readonly stopSignal: AbortSignal,
  ) {}

  status(): FollowStatus {
    return {
      following: this.master === null ? null : describeEndpoint(this.master),
      subscribed: this.subscribed,
      lastSwitch: this.lastSwitch,
    };
  }

  /** Follows `first` (null: none yet), then keeps following until rf listen stops. */
  async run(first: RedisEndpoint | null): Promise<void> {
    this.lastKnown = first;
    this.point(first);
    await Promise.all([...this.config.sentinels.map((s) => this.subscribe(s)), this.refreshLoop()]);
  }

  /**
   * The link to the master dropped: until Sentinel and ROLE say again where the master is, no
   * session starts (the old master may come back as a replica).
   */
  lost(): void {
    this.point(null);
    this.refreshNow?.();
  }

  private get stopping(): boolean {
    return this.stopSignal.aborted;
  }

  private ask(): Promise<NamedMaster> {
    return askMaster(this.config.sentinels, this.config.masterName, this.connectOptions());
  }

  private endpointOf(at: { host: string; port: number }): RedisEndpoint {
    return endpointAt(this.config.masterAuth, at);
  }

  /**
   * The master Sentinel names at start, checked to be one. During a failover a sentinel may name
   * a node that has not finished its promotion: asked again for --connect-timeout before giving up.
   */
  async firstMaster(): Promise<RedisEndpoint> {
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
    this.pointAt(master);
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
      const signal = AbortSignal.any([early.signal, this.stopSignal]);
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
          this.stopSignal.addEventListener('abort', () => resolve(), { once: true }),
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
      await sleep(backoff.next(), undefined, { signal: this.stopSignal }).catch(() => undefined);
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
}
