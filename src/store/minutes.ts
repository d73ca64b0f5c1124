import { keys } from './keys.js';
import type { BatchOp, KvReader } from './store.js';

/**
 * Writes and stream bytes per minute of capture time, kept as rf writes them, so `rf info` draws
 * its activity picture from one small record per minute instead of every segment meta.
 *
 *   s/<source>/min/<tl>/<minute>   f64 writes | f64 stream bytes (the minute: ms / 60 000)
 *   s/<source>/counted/<tl>        the first offset counted (JSON): the counts of a timeline are
 *                                  whole from there on; a timeline an older rf began has none
 *
 * Each commit adds its segment's counts into its minutes' records, in the segment's batch.
 */

export const MINUTE_MS = 60_000;

export interface MinuteCount {
  minute: number;
  writes: number;
  bytes: number;
}

export function encodeMinute(writes: number, bytes: number): Buffer {
  const out = Buffer.allocUnsafe(16);
  out.writeDoubleLE(writes, 0);
  out.writeDoubleLE(bytes, 8);
  return out;
}

export function decodeMinute(buf: Buffer): { writes: number; bytes: number } | null {
  if (buf.length !== 16) return null;
  return { writes: buf.readDoubleLE(0), bytes: buf.readDoubleLE(8) };
}

/** The counts of the entries appended since the last `take`, minute by minute. */
export class MinuteTally {
  /** Flat (minute, writes, bytes) triples, in capture order: times never go back. */
  private pending: number[] = [];
  /** The last minute stored, as stored, so a commit in the same minute reads nothing. */
  private stored: MinuteCount | null = null;
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
   * The puts that add `taken` (from `take`) to the stored minutes, for the batch of the segment
   * that starts at `start`; `committed` must be called once that batch is durable.
   */
  async ops(
    taken: readonly number[],
    start: number,
  ): Promise<{ ops: BatchOp[]; last: MinuteCount | null }> {
    const ops: BatchOp[] = [];
    if (this.countedFrom === 'unknown') {
      const marker = keys.countedFrom(this.source, this.timeline);
      if ((await this.kv.get(marker)) === undefined) {
        ops.push({ type: 'put', key: marker, value: Buffer.from(JSON.stringify(start)) });
      }
    }
    let last = this.stored;
    for (let i = 0; i < taken.length; i += 3) {
      const minute = taken[i]!;
      let base = last !== null && last.minute === minute ? last : null;
      if (base === null) {
        // A minute rf listen began before a restart holds what was counted then.
        const raw = await this.kv.get(keys.minute(this.source, this.timeline, minute));
        const was = raw === undefined ? null : decodeMinute(raw);
        base = { minute, writes: was?.writes ?? 0, bytes: was?.bytes ?? 0 };
      }
      last = { minute, writes: base.writes + taken[i + 1]!, bytes: base.bytes + taken[i + 2]! };
      ops.push({
        type: 'put',
        key: keys.minute(this.source, this.timeline, minute),
        value: encodeMinute(last.writes, last.bytes),
      });
    }
    return { ops, last };
  }

  committed(last: MinuteCount | null): void {
    this.stored = last;
    this.countedFrom = 'recorded';
  }
}
