import type tls from 'node:tls';
import type { OffsetClock } from '../bounds/clock.js';
import type { Logger } from '../logger.js';
import { describeEndpoint, type RedisEndpoint, sameEndpoint } from '../redis-url.js';
import type { BatchOp, Store } from '../store/store.js';
import { type MasterSample, MasterWatch } from './master-watch.js';
import { OffsetSamples } from './offset-samples.js';
import { type ErrorCounts, messageOf } from './supervise.js';

export interface MasterClockOptions {
  store: Store;
  /** The source whose samples are stored and loaded. */
  source: string;
  tlsOptions?: tls.ConnectionOptions;
  log: Logger;
  failures: ErrorCounts;
  /** The job its failures are counted under (one per source where a daemon has several). */
  job: string;
}

/**
 * The master watch and the offset samples of one source, for whichever node is its master now:
 * the clock each entry's stored time is bounded by, and the master's offset the lag metrics
 * compare with. A new master restarts the watch; the samples stay, keyed by replid, so a
 * promoted replica that continues the stream (psync2) continues the clock too.
 */
export class MasterClock {
  private readonly samples: OffsetSamples;
  private watch: MasterWatch | null = null;
  private endpoint: RedisEndpoint | null = null;
  private loaded = false;
  private stopped = false;

  constructor(private readonly options: MasterClockOptions) {
    this.samples = new OffsetSamples(options.store, options.source, options.log);
  }

  get clock(): OffsetClock {
    return this.samples.clock;
  }

  /** Loads the stored samples, then starts watching: a sample must not come before them. */
  async load(): Promise<void> {
    await this.samples.load();
    this.loaded = true;
    this.restart();
  }

  /** The node to sample from now (null: none is known). */
  follow(endpoint: RedisEndpoint | null): void {
    if (sameEndpoint(endpoint, this.endpoint)) return;
    this.endpoint = endpoint;
    if (this.loaded) this.restart();
  }

  /** The newest sample of the node followed now. */
  latest(): MasterSample | null {
    return this.watch?.latest() ?? null;
  }

  /** The samples not stored yet, as puts for a segment's commit (OffsetSamples.take). */
  readonly withCommit = (): BatchOp[] => this.samples.take();

  /** Stores the samples until the signal aborts (OffsetSamples.run). */
  run(signal: AbortSignal): Promise<void> {
    return this.samples.run(signal);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const w = this.watch;
    this.watch = null;
    await w?.stop();
  }

  private restart(): void {
    const { options } = this;
    const old = this.watch;
    this.watch = null;
    void old?.stop();
    if (this.stopped || this.endpoint === null) return;
    const log = options.log.child({ watch: describeEndpoint(this.endpoint) });
    this.watch = new MasterWatch(
      this.endpoint,
      options.tlsOptions,
      log,
      100,
      (m) => {
        this.samples.add(m);
        if (options.failures.recovered(options.job)) log.info(`${options.job} sampling again`);
      },
      (err) => {
        const code = options.failures.episode(options.job, err);
        if (code !== null)
          log.warn(
            { job: options.job, error: { code, message: messageOf(err) } },
            `${options.job} failing: the lag metrics are stale`,
          );
      },
    );
    this.watch.start();
  }
}
