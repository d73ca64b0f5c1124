import { indexEntries } from '../store/key-index.js';
import { keys, prefixEnd } from '../store/keys.js';
import type { Entry, SegmentMeta } from '../store/types.js';
import { Peekable, type SourceCheck } from './context.js';

/**
 * The key index half of `rf verify`: each segment's stored index (store/key-index.ts) against
 * the one its data gives. A missing index (a store rf wrote before it kept one) is added, a
 * damaged one is reported and rebuilt, one that names no segment is removed. The
 * index is derived data, so this is the one change verify makes to a store: `rf log` reads
 * every segment whose index is missing or damaged, and stays exact meanwhile.
 */

/**
 * A segment whose key index verify changes, once the whole source has been read: rebuilt from
 * its data by the store's owner (store/reindex.ts), or removed when no segment starts there.
 */
export interface KeyIndexRepair {
  timeline: number;
  start: number;
  why: 'missing' | 'damaged' | 'stray';
}

/** Walks a timeline's stored indexes in step with its segments. */
export class KeyIndexCheck {
  private readonly stored: Peekable<[string, Buffer]>;

  constructor(
    private readonly check: SourceCheck,
    private readonly timeline: number,
    private readonly durable: number,
  ) {
    const prefix = keys.keyIndexPrefix(check.source, timeline);
    this.stored = new Peekable(check.kv.entries({ gte: prefix, lt: prefixEnd(prefix) }));
  }

  /**
   * One segment, in offset order, with the command state before it. `entries` is null when its data could not be read: its index
   * is then neither judged nor rebuilt (that problem is reported on its own).
   */
  async segment(
    meta: SegmentMeta,
    start: { db: number; multiAt: number | null },
    entries: readonly Entry[] | null,
  ): Promise<void> {
    const { check } = this;
    const want = keys.keyIndex(check.source, this.timeline, meta.start);
    await this.strayBefore(want);
    const found = (await this.stored.peek())?.[0] === want ? (await this.stored.take())![1] : null;
    if (entries === null) return;
    check.counters.keyIndexes++;
    if (found === null) {
      check.keyIndexRepairs.push({ timeline: this.timeline, start: meta.start, why: 'missing' });
    } else if (!found.equals(indexEntries(entries, start))) {
      check.report(
        'key-index',
        "the segment's key index does not match its writes: rebuilt (`rf log --key` reads a segment whose index fails its checksum, but trusts one that passes)",
        { timeline: this.timeline, offsets: { from: meta.start, until: meta.end } },
        { from: meta.firstTime, until: meta.lastTime },
      );
      check.keyIndexRepairs.push({ timeline: this.timeline, start: meta.start, why: 'damaged' });
    }
  }

  /** Indexes past the last segment; call once the segments are done. */
  async finish(): Promise<void> {
    await this.strayBefore(null);
  }

  async close(): Promise<void> {
    await this.stored.close();
  }

  private async strayBefore(key: string | null): Promise<void> {
    for (
      let k = await this.stored.peek();
      k !== undefined && (key === null || k[0] < key);
      k = await this.stored.peek()
    ) {
      await this.stored.take();
      const start = Number.parseInt(k[0].slice(k[0].lastIndexOf('/') + 1), 16);
      // Past the durable offset of the record verify read: a segment committed since.
      if (start > this.durable) continue;
      // Not a problem of its own: what it indexed is gone, and the deletion is reported.
      this.check.keyIndexRepairs.push({ timeline: this.timeline, start, why: 'stray' });
    }
  }
}
