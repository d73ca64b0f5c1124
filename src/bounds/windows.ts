/**
 * Imprecise windows: runs of stream entries rf received later than the master ran them (rf was
 * stalled or disconnected, or the master buffered them during a snapshot transfer), so their
 * stored times say only that they ran by then. Each entry's true time lies after `lower` (the
 * master's offset clock, see clock.ts) and at or before its stored time; a run of entries whose
 * bracket is wider than a live capture allows is one window, with the bracket of all of them.
 *
 * A restore at T is exact outside every window: at or before `from` none of the window's
 * entries had run, at or after `until` all of them had. Strictly inside, the stream alone
 * cannot say which had. Pure: the stream writer feeds it, restore and info read its records.
 */

export interface ImpreciseWindow {
  timeline: number;
  /** First byte of the first late entry. */
  firstOffset: number;
  /** Last byte of the last late entry. */
  lastOffset: number;
  /** Every entry of the window ran after this instant… */
  from: number;
  /** …and at or before this one (the last entry's stored time). */
  until: number;
  /** Entries in the window, and how many of them change data. */
  entries: number;
  writes: number;
}

/**
 * How wide an entry's bracket may be and still count as captured live: the sampling period
 * (100 ms) plus the answer's round trip and event-loop delays, with room to spare so a busy
 * but live capture raises no false alarm. Wider than this, rf was not keeping up.
 */
export const LIVE_TOLERANCE_MS = 1000;

/**
 * Follows one timeline's entries as the writer appends them, opening a window at the first late
 * entry and closing it at the next live one. `take()` hands over the windows changed since the
 * last call, to be committed in the same batch as the segment holding their entries.
 */
export class WindowTracker {
  private open: ImpreciseWindow | null;
  private changed: ImpreciseWindow[] = [];

  constructor(
    private readonly timeline: number,
    /** The timeline's last window, continued when the first entry after a resume is late too. */
    last?: ImpreciseWindow,
    private readonly toleranceMs = LIVE_TOLERANCE_MS,
  ) {
    this.open = last === undefined ? null : { ...last };
  }

  /**
   * One entry: its first byte's offset, length, stored time and lower bound. Runs once per
   * entry on the capture path, so the live case is one comparison.
   */
  note(offset: number, length: number, time: number, lower: number, write: boolean): void {
    // No sample below the entry yet (-Infinity): nothing to judge by, so it counts as live.
    const late = time - lower > this.toleranceMs && lower !== Number.NEGATIVE_INFINITY;
    if (!late) {
      this.open = null;
      return;
    }
    let w = this.open;
    if (w !== null && w.lastOffset + 1 !== offset) w = null;
    if (w === null) {
      w = {
        timeline: this.timeline,
        firstOffset: offset,
        lastOffset: offset + length - 1,
        from: lower,
        until: time,
        entries: 0,
        writes: 0,
      };
      this.open = w;
    }
    w.lastOffset = offset + length - 1;
    w.until = Math.max(w.until, time);
    w.from = Math.min(w.from, lower);
    w.entries++;
    if (write) w.writes++;
    if (!this.changed.includes(w)) this.changed.push(w);
  }

  /** The windows changed since the last call, as records to store. */
  take(): ImpreciseWindow[] {
    if (this.changed.length === 0) return NONE;
    const out = this.changed.map((w) => ({ ...w }));
    this.changed = [];
    return out;
  }
}

const NONE: ImpreciseWindow[] = [];

/**
 * The window T falls strictly inside, if any: where the stream cannot tell what had run by T. A
 * window of the master's PINGs alone (an idle master while rf was down) changes no data, so
 * every T in it restores the same dataset: it is not one.
 */
export function windowAt(
  windows: readonly ImpreciseWindow[],
  timeline: number,
  target: number,
): ImpreciseWindow | undefined {
  return windows.find(
    (w) => w.timeline === timeline && w.writes > 0 && target > w.from && target < w.until,
  );
}

/** Finds the window an entry lies in, by timeline and offset: one binary search. */
export class WindowLookup {
  private readonly byTimeline = new Map<number, ImpreciseWindow[]>();

  constructor(windows: readonly ImpreciseWindow[]) {
    for (const w of windows) {
      const list = this.byTimeline.get(w.timeline) ?? [];
      list.push(w);
      this.byTimeline.set(w.timeline, list);
    }
    for (const list of this.byTimeline.values()) list.sort((a, b) => a.firstOffset - b.firstOffset);
  }

  at(timeline: number, offset: number): ImpreciseWindow | undefined {
    const list = this.byTimeline.get(timeline);
    if (list === undefined) return undefined;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid]!.firstOffset <= offset) lo = mid + 1;
      else hi = mid;
    }
    const w = list[lo - 1];
    return w !== undefined && offset <= w.lastOffset ? w : undefined;
  }
}
