import type tls from 'node:tls';
import { LIVE_TOLERANCE_MS } from '../bounds/windows.js';
import type { Logger } from '../logger.js';
import type { RedisEndpoint } from '../redis-url.js';
import { RedisClient } from '../resp/client.js';

export interface MasterSample {
  /** master_repl_offset: how far the master's stream has gone. */
  offset: number;
  replid: string;
  /** When INFO was sent: the master's offset then was at most `offset`. */
  at: number;
  /** When the answer arrived: the master's offset then was at least `offset`. */
  answeredAt: number;
}

/**
 * Samples the master's own offset every 100 ms (INFO replication, nothing heavier): the lag
 * behind it in bytes and seconds, and the master's clock for its offsets that bounds when each
 * write ran (bounds/clock.ts). Failures are quiet: the sample goes stale and the next tick
 * reconnects; a stale clock only widens the bounds.
 */
export class MasterWatch {
  private client: RedisClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private sample: MasterSample | null = null;
  private busy = false;

  constructor(
    private readonly endpoint: RedisEndpoint,
    private readonly tlsOptions: tls.ConnectionOptions | undefined,
    private readonly log: Logger,
    private readonly everyMs = 100,
    private readonly onSample?: (sample: MasterSample) => void,
    /** Each failed sample (the caller counts episodes: this runs every `everyMs`). */
    private readonly onFailure?: (err: unknown) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.everyMs);
    this.timer.unref();
    void this.tick();
  }

  latest(): MasterSample | null {
    return this.sample;
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const c = this.client;
    this.client = null;
    await c?.close().catch(() => undefined);
  }

  /**
   * No answer for longer than a live capture allows (rf stalled, the link or the master did):
   * writes the master ran in this span are known only within it, and form an imprecise window
   * if any. Said once per span, so the log explains each window `rf info` lists.
   */
  private stalled(from: number, until: number, bytes: number): void {
    this.log.warn(
      {
        from: new Date(from).toISOString(),
        until: new Date(until).toISOString(),
        gapMs: until - from,
        masterBytes: bytes,
      },
      'master offset samples stalled: writes in this span are known only within it',
    );
  }

  private async tick(): Promise<void> {
    if (this.busy || this.timer === null) return;
    this.busy = true;
    try {
      if (this.client === null) {
        const client = await RedisClient.connect(this.endpoint, {
          timeoutMs: Math.max(1000, this.everyMs * 2),
          name: 'rf-watch',
          ...(this.tlsOptions ? { tlsOptions: this.tlsOptions } : {}),
        });
        // Stopped while connecting: this connection would keep the process alive for good.
        if (this.timer === null) {
          client.destroy();
          return;
        }
        this.client = client;
      }
      const at = Date.now();
      const info = await this.client.info('replication');
      const answeredAt = Date.now();
      const offset = Number(info.master_repl_offset);
      // A node turned replica (a failover under way) reports how far it has applied, not how
      // far the master has gone: no bound on the master's offsets.
      if (Number.isFinite(offset) && info.role !== 'slave') {
        const previous = this.sample;
        this.sample = { offset, replid: info.master_replid ?? '', at, answeredAt };
        if (previous !== null && answeredAt - previous.at > LIVE_TOLERANCE_MS)
          this.stalled(previous.at, answeredAt, offset - previous.offset);
        this.onSample?.(this.sample);
      }
    } catch (err) {
      this.log.debug({ error: (err as Error).message }, 'master offset sample failed');
      this.onFailure?.(err);
      const c = this.client;
      this.client = null;
      c?.destroy();
    } finally {
      this.busy = false;
    }
  }
}
