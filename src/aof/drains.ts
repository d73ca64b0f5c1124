import type { FollowState } from './follow.js';

interface Waiter {
  /** The file followed when the loop took the waiter up, and its size then; null until it has. */
  fileNo: number | null;
  size: number | null;
  resolve: () => void;
}

/**
 * The callers of AofCapture.drain(), waiting for the capture to store what Redis has written.
 * The order is explicit: a waiter is added by drain(), sized by the capture loop between two
 * steps (`size`), and released by the loop once stored up to that size (`check`). Only the
 * loop stats and closes the files it follows, so a drain never reads a handle being closed.
 */
export class DrainWaiters {
  private waiters: Waiter[] = [];
  /** Drains in progress: while there are any, the loop cuts without the linger. */
  active = 0;

  /** Resolves once the loop has stored the current file up to its size when it took this up. */
  add(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.waiters.push({ fileNo: null, size: null, resolve });
    });
  }

  /** Gives new waiters the current file and its size now. The loop's part, between steps. */
  async size(state: FollowState): Promise<void> {
    for (const w of this.waiters) {
      if (w.size !== null) continue;
      const current = state.files.at(-1);
      w.fileNo = current?.record.fileNo ?? null;
      w.size = current === undefined ? 0 : (await current.fh.stat()).size;
    }
  }

  /** Releases the waiters whose size is stored, once no finished file or base is left to do. */
  check(state: FollowState): void {
    if (this.waiters.length === 0) return;
    if (state.files.some((f) => f.done) || state.pendingBases.length > 0) return;
    this.waiters = this.waiters.filter((w) => {
      if (w.size === null) return true;
      const f = state.files.find((x) => x.record.fileNo === w.fileNo);
      if (w.fileNo === null || f === undefined || f.pos >= w.size) {
        w.resolve();
        return false;
      }
      return true;
    });
  }

  /** The loop has ended: nothing more will be stored. */
  releaseAll(): void {
    for (const w of this.waiters.splice(0)) w.resolve();
  }
}
