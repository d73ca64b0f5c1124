import { keys } from './keys.js';
import type { BatchOp, KvReader } from './store.js';

/**
 * Writes and stream bytes per minute of capture time, kept as rf writes them, so `rf info` draws
 * its activity picture from one small record per hour instead of every segment meta.
 *
 *   s/<source>/min/<tl>/<hour>   60 x (f64 writes, f64 stream bytes), minute 0 first
 *                                (the hour: ms / 3 600 000)
 *   s/<source>/counted/<tl>      the first offset counted (JSON): the counts of a timeline are
 *                                whole from there on; a timeline an older rf began has none
 *
 * Each commit adds its segment's counts into its hours' records, in the segment's batch. A
 * record per hour, not per minute: a month is 720 records to read (and for `--repo`, to copy
 * into each manifest), not 43 200.
 */

export const MINUTE_MS = 60_000;
const PER_HOUR = 60;
const SLOT = 16;
const RECORD = PER_HOUR * SLOT;

export interface MinuteCount {
  minute: number;
  writes: number;
  bytes: number;
}

/** The minutes of a stored hour record that hold anything; none when it is malformed. */
export function decodeHour(hour: number, buf: Buffer): MinuteCount[] {
  if (buf.length !== RECORD) return [];
  const out: MinuteCount[] = [];
  for (let i = 0; i < PER_HOUR; i++) {
    const writes = buf.readDoubleLE(i * SLOT);
    const bytes = buf.readDoubleLE(i * SLOT + 8);
    if (writes > 0 || bytes > 0) out.push({ minute: hour * PER_HOUR + i, writes, bytes });
  }
  return out;
}

/** The counts of the entries appended since the last `take`, minute by minute. */
export class MinuteTally {
  /** Flat (minute, writes, bytes) triples, in capture order: times never go back. */
  private pending: number[] = [];
  /** The last hour record stored, as stored, so a commit in the same hour reads nothing. */
  private stored: { hour: number; record: Buffer } | null = null;
  private countedFrom: 'unknown' | 'recorded' = 'unknown';

  constructor(
    private readonly kv: KvReader,
    private readonly source: string,
    private readonly timeline: number,
  ) {}

  add(time: number, length: number, write: boolean): void {
    const minute = Math.floor(time / MINUTE_MS);
    const p = this.pending;
    const n = p.length;
    if (n > 0 && p[n - 3] === minute) {
      if (write) p[n - 2]!++;
      p[n - 1]! += length;
      return;
    }
    p.push(minute, write ? 1 : 0, length);
  }

  /** The counts since the last call; the next segment starts from nothing. */
  take(): number[] {
    const p = this.pending;
    this.pending = [];
    return p;
  }

  /**
   * The puts that add `taken` (from `take`) to the stored hours, for the batch of the segment
   * that starts at `start`; `committed(last)` must be called once that batch is durable.
   */
  async ops(
    taken: readonly number[],
    start: number,
  ): Promise<{ ops: BatchOp[]; last: { hour: number; record: Buffer } | null }> {
    const ops: BatchOp[] = [];
    if (this.countedFrom === 'unknown') {
      const marker = keys.countedFrom(this.source, this.timeline);
      if ((await this.kv.get(marker)) === undefined) {
        ops.push({ type: 'put', key: marker, value: Buffer.from(JSON.stringify(start)) });
      }
    }
    // Copies, changed here: the cached record changes only once the batch is durable.
    const hours = new Map<number, Buffer>();
    for (let i = 0; i < taken.length; i += 3) {
      const minute = taken[i]!;
      const hour = Math.floor(minute / PER_HOUR);
      let record = hours.get(hour);
      if (record === undefined) {
        record = Buffer.alloc(RECORD);
        if (this.stored !== null && this.stored.hour === hour) {
          this.stored.record.copy(record);
        } else {
          // An hour rf listen began before a restart holds what was counted then.
          const raw = await this.kv.get(keys.minutes(this.source, this.timeline, hour));
          if (raw !== undefined && raw.length === RECORD) raw.copy(record);
        }
        hours.set(hour, record);
      }
      const at = (minute - hour * PER_HOUR) * SLOT;
      record.writeDoubleLE(record.readDoubleLE(at) + taken[i + 1]!, at);
      record.writeDoubleLE(record.readDoubleLE(at + 8) + taken[i + 2]!, at + 8);
    }
    let last = this.stored;
    for (const [hour, record] of hours) {
      ops.push({ type: 'put', key: keys.minutes(this.source, this.timeline, hour), value: record });
      last = { hour, record };
    }
    return { ops, last };
  }

  committed(last: { hour: number; record: Buffer } | null): void {
    this.stored = last;
    this.countedFrom = 'recorded';
  }
}
