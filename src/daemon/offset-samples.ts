import { setTimeout as sleep } from 'node:timers/promises';
import { OffsetClock, type OffsetSample } from '../bounds/clock.js';
import type { Logger } from '../logger.js';
import { Archive } from '../store/archive.js';
import { sampleOps, samplesFrom } from '../store/samples.js';
import type { BatchOp, Store } from '../store/store.js';
import type { MasterSample } from './master-watch.js';

/**
 * How often the samples taken since they were last stored are stored on their own. While the
 * stream flows each commit stores them in its batch (`take`), so this only runs when it does
 * not: an idle master's samples still bound what a restarted rf receives next.
 */
const SAVE_EVERY_MS = 500;

/**
 * Feeds the master watch's samples to the offset clock the stream writer stamps entries by, and
 * stores them with the archive. A restarted rf listen loads the stored ones first, so the
 * entries it receives after a crash are bounded by what the master's clock said before it.
 */
export class OffsetSamples {
  readonly clock = new OffsetClock();
  private unsaved: OffsetSample[] = [];
  /** Whether `unsaved` holds anything not stored yet (the newest is kept even once stored). */
  private dirty = false;
  private storedAt = 0;

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
    this.dirty = true;
  }

  /**
   * The puts of the samples not stored yet, for the batch of a segment's commit; they count as
   * stored from now. A batch that fails loses them, which only widens bounds: it loses no write.
   */
  take(): BatchOp[] {
    if (!this.dirty) return [];
    const batch = this.unsaved;
    // The newest stays in hand too: a repeat of its offset updates it, and it is stored again.
    this.unsaved = [{ ...batch[batch.length - 1]! }];
    this.dirty = false;
    this.storedAt = Date.now();
    return sampleOps(this.source, batch);
  }

  /**
   * Stores what was sampled when no commit has for SAVE_EVERY_MS, until the signal aborts, then
   * once more.
   */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(SAVE_EVERY_MS, undefined, { signal }).catch(() => undefined);
      if (signal.aborted || Date.now() - this.storedAt >= SAVE_EVERY_MS) await this.save();
    }
  }

  private async save(): Promise<void> {
    const ops = this.take();
    if (ops.length === 0) return;
    try {
      await this.store.batch(ops);
    } catch (err) {
      // Samples only narrow bounds: a failed write widens them, it loses no write.
      this.log.debug({ error: (err as Error).message }, 'offset samples not stored');
    }
  }
}
