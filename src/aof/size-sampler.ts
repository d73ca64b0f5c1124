import { promises as fs } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.js';
import type { AofSizeSample } from '../store/chunks.js';
import type { AofLayout } from './layout.js';
import type { Manifest } from './manifest.js';
import type { AofSink } from './sink.js';

/**
 * Samples the size of the AOF on the Redis host (`rf info`, metrics) every `everyMs`. The sink
 * hears of a change, or of the same size once a minute, at most once a sample.
 */
export class SizeSampler {
  /** The latest sample taken. */
  last: AofSizeSample | null = null;
  private lastSent: AofSizeSample | null = null;

  constructor(
    private readonly sink: AofSink,
    private readonly log: Logger,
    private readonly everyMs: number,
    private readonly measure: () => Promise<number | null>,
  ) {}

  /** Runs until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        const bytes = await this.measure();
        if (bytes !== null) {
          this.last = { at: Date.now(), bytes };
          const sent = this.lastSent;
          if (sent === null || sent.bytes !== bytes || this.last.at - sent.at >= 60_000) {
            await this.sink.putSize(this.last);
            this.lastSent = this.last;
          }
        }
      } catch (err) {
        if (signal.aborted) return;
        this.log.debug(
          { err: { message: (err as Error).message } },
          'AOF size sample not delivered',
        );
      }
      await sleep(this.everyMs, undefined, { signal }).catch(() => undefined);
    }
  }
}

/**
 * The AOF's size on disk: the single file (Redis 6), or what aof.c
 * getBaseAndIncrAppendOnlyFilesSize counts (Redis 7): the base and the incr files the manifest
 * lists. Null until there is a layout (and a manifest) to measure.
 */
export async function aofSize(
  layout: AofLayout | null,
  manifest: Manifest | null,
): Promise<number | null> {
  if (layout === null) return null;
  const sizeOf = async (name: string) =>
    (await fs.stat(path.join(layout.dir, name)).catch(() => null))?.size ?? 0;
  if (layout.kind === 'single') return sizeOf(layout.file);
  if (manifest === null) return null;
  let total = manifest.base === null ? 0 : await sizeOf(manifest.base.name);
  for (const e of manifest.incrs) total += await sizeOf(e.name);
  return total;
}
