import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * `--chunk-pause`: after each send, the next waits until `pauseMs` have passed, so with chunks of
 * at most S bytes the capture never reads or sends faster than S / pause (the seed's requirement:
 * spread disk and network load on the live Redis host). Chunks and the pieces of a base copy go
 * through the same pacer.
 */
export class Pacer {
  private readyAt = 0;

  constructor(
    readonly pauseMs: number,
    private readonly signal?: AbortSignal,
  ) {
    if (!Number.isFinite(pauseMs) || pauseMs < 0)
      throw new TypeError(`Pacer: bad pause ${pauseMs}`);
  }

  /**
   * Resolves once the pause since the last send has passed. Measured on the monotonic clock and
   * re-checked after each timer, because a timer may fire a little early.
   */
  async ready(): Promise<void> {
    for (;;) {
      const wait = this.readyAt - performance.now();
      if (wait <= 0) return;
      await sleep(Math.ceil(wait), undefined, this.signal ? { signal: this.signal } : undefined);
    }
  }

  /** Marks the end of a send: the pause runs from here. */
  sent(): void {
    this.readyAt = performance.now() + this.pauseMs;
  }
}
