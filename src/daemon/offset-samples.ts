import { setTimeout as sleep } from 'node:timers/promises';
import { OffsetClock, type OffsetSample } from '../bounds/clock.js';
import type { Logger } from '../logger.js';
import { Archive } from '../store/archive.js';
import { sampleOps, samplesFrom } from '../store/samples.js';
import type { Store } from '../store/store.js';
import type { MasterSample } from './master-watch.js';

/** How often the samples taken since the last write are stored: a crash loses at most this much. */
const SAVE_EVERY_MS = 500;

/**
 * Feeds the master watch's samples to the offset clock the stream writer stamps entries by, and
 * stores them with the archive. A restarted rf listen loads the stored ones first, so the
 * entries it receives after a crash are bounded by what the master's clock said before it.
 */
export class OffsetSamples {
  readonly clock = new OffsetClock();
  private unsaved: OffsetSample[] = [];

  constructor(
    private readonly store: Store,
    private readonly source: string,
    private readonly log: Logger,
  ) {}

  /** Loads the samples that bound what comes after the durable offset. */
  async load(): Promise<void> {
    const archive = new Archive(this.store);
    const state = await archive.state(this.source);
    if (state === undefined) return;
    const timeline = (await archive.timelines(this.source)).find((t) => t.id === state.timeline);
    const replids = timeline?.replids.map((r) => r.replid) ?? [state.replid];
    for (const replid of replids) {
      for (const s of await samplesFrom(this.store, this.source, replid, state.durableOffset + 1))
        this.clock.add(s);
    }
    this.clock.follow(replids);
  }

  add(m: MasterSample): void {
    const sample: OffsetSample = {
      replid: m.replid,
      offset: m.offset,
      sentAt: m.at,
      answeredAt: m.answeredAt,
    };
    if (!this.clock.add(sample)) return;
    const last = this.unsaved[this.unsaved.length - 1];
    // An idle master answers the same offset again and again: one record, as the clock keeps it.
    if (last !== undefined && last.offset === sample.offset && last.replid === sample.replid)
      last.sentAt = Math.max(last.sentAt, sample.sentAt);
    else this.unsaved.push(sample);
  }

  /** Stores what was sampled, every SAVE_EVERY_MS until the signal aborts, then once more. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(SAVE_EVERY_MS, undefined, { signal }).catch(() => undefined);
      await this.save();
    }
  }

  private async save(): Promise<void> {
    if (this.unsaved.length === 0) return;
    const batch = this.unsaved;
    // The newest stays in hand too: a repeat of its offset updates it, and it is stored again.
    this.unsaved = [{ ...batch[batch.length - 1]! }];
    try {
      await this.store.batch(sampleOps(this.source, batch));
    } catch (err) {
      // Samples only narrow bounds: a failed write widens them, it loses no write.
      this.log.debug({ error: (err as Error).message }, 'offset samples not stored');
    }
  }
}
