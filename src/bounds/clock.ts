/**
 * The master's own clock for its replication offsets. rf asks the master for
 * `master_repl_offset` (INFO replication) every ~100 ms; each answer brackets the offsets:
 *
 *   - when INFO was sent (`sentAt`) the master had gone no further than the offset it then
 *     reported, so a write at a greater offset ran after `sentAt`;
 *   - when the answer came back (`answeredAt`) the master had gone at least that far, so a write at an
 *     offset it reports ran at or before `at`.
 *
 * A write at offset o therefore ran after the `sentAt` of the last sample below o and no later
 * than the `answeredAt` of the first sample reaching o, whenever rf itself received it. The master
 * appends a command to its stream whole (`feedReplicationBuffer` in src/replication.c), so an
 * entry's first byte decides on which side of a sample it lies.
 *
 * Pure and in memory: the daemon feeds it, the stream writer asks it. Offsets only go forward,
 * so a cursor makes each question constant time on the capture path.
 */

export interface OffsetSample {
  replid: string;
  /** master_repl_offset in the answer. */
  offset: number;
  /** When INFO was sent (the latest send, for a run of answers with the same offset). */
  sentAt: number;
  /** When its answer arrived (the earliest, for a run of answers with the same offset). */
  answeredAt: number;
}

/** Keeps at most this many samples behind the cursor before dropping the oldest. */
const KEEP_BEHIND = 1024;
/**
 * Holds at most this many samples when the stream does not move the cursor on (rf cannot
 * resync for hours while the master takes writes): memory stays flat.
 */
const MAX_SAMPLES = 100_000;

export class OffsetClock {
  private samples: OffsetSample[] = [];
  /** Index of the first sample whose offset reaches the offset last asked about. */
  private cursor = 0;
  /** The newest sample dropped to keep memory flat: still the lower bound past its offset. */
  private floor: OffsetSample | null = null;

  /**
   * Keeps only the samples of these replids (a timeline's: psync2 keeps offsets across a
   * failover), dropping those of another history, such as the replid INFO shows before the
   * first replica attaches. Samples that come later are all taken: one taken before the stream
   * switches to a new replid is already on the new master's offsets.
   */
  follow(replids: Iterable<string>): void {
    const keep = new Set(replids);
    this.samples = this.samples.filter((s) => keep.has(s.replid));
    if (this.floor !== null && !keep.has(this.floor.replid)) this.floor = null;
    this.cursor = 0;
  }

  /** Adds an answer; returns false for one that goes back on the same replid (ignored). */
  add(sample: OffsetSample): boolean {
    const last = this.samples[this.samples.length - 1];
    if (last !== undefined && sample.offset < last.offset) {
      if (last.replid === sample.replid) return false;
      // An offset going back under a new replid is another history (a master restarted without
      // its data): what was known of the old one says nothing about the new one.
      this.samples = [];
      this.cursor = 0;
      this.floor = null;
    } else if (
      last !== undefined &&
      sample.offset === last.offset &&
      sample.replid === last.replid
    ) {
      // Same offset again: one record, the earliest answer and the latest send.
      this.samples[this.samples.length - 1] = {
        ...last,
        sentAt: Math.max(last.sentAt, sample.sentAt),
      };
      return true;
    }
    this.samples.push({ ...sample });
    if (this.samples.length > MAX_SAMPLES) {
      const drop = this.samples.length - MAX_SAMPLES / 2;
      this.floor = this.samples[drop - 1]!;
      this.samples = this.samples.slice(drop);
      // Offsets at or below a dropped sample get a later upper bound: still a true one.
      this.cursor = Math.max(0, this.cursor - drop);
    }
    return true;
  }

  /** The samples held, oldest first (for storing them). */
  all(): readonly OffsetSample[] {
    return this.samples;
  }

  /**
   * The latest time the master had not yet run the entry at `offset` (-Infinity: unknown).
   * Call with offsets that never go back (the capture path does), or use `boundsOf`.
   */
  lowerAt(offset: number): number {
    this.seek(offset);
    if (this.cursor > 0) return this.samples[this.cursor - 1]!.sentAt;
    return this.floorBelow(offset);
  }

  /** The earliest time the master is known to have run the entry at `offset` (Infinity: not yet). */
  upperAt(offset: number): number {
    this.seek(offset);
    const s = this.samples[this.cursor];
    return s === undefined ? Number.POSITIVE_INFINITY : s.answeredAt;
  }

  /** Both bounds for any offset, without the forward-only cursor. */
  boundsOf(offset: number): { lower: number; upper: number } {
    let lo = 0;
    let hi = this.samples.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.samples[mid]!.offset < offset) lo = mid + 1;
      else hi = mid;
    }
    return {
      lower: lo > 0 ? this.samples[lo - 1]!.sentAt : this.floorBelow(offset),
      upper: lo < this.samples.length ? this.samples[lo]!.answeredAt : Number.POSITIVE_INFINITY,
    };
  }

  private floorBelow(offset: number): number {
    const f = this.floor;
    return f !== null && f.offset < offset ? f.sentAt : Number.NEGATIVE_INFINITY;
  }

  private seek(offset: number): void {
    const s = this.samples;
    if (this.cursor > 0 && s[this.cursor - 1]!.offset >= offset) {
      // Asked about an earlier offset (a new stream after a resync): start over.
      this.cursor = 0;
    }
    while (this.cursor < s.length && s[this.cursor]!.offset < offset) this.cursor++;
    if (this.cursor > KEEP_BEHIND * 2) {
      const drop = this.cursor - KEEP_BEHIND;
      this.samples = s.slice(drop);
      this.cursor -= drop;
    }
  }
}
