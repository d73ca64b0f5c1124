import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.js';
import { Archive } from '../store/archive.js';
import type { Store } from '../store/store.js';
import type { BaseMeta } from '../store/types.js';

/**
 * `rf listen --roll-base-every`: bases rolled forward off the master, on a schedule. The daemon
 * owns the store, so it runs the roll itself; the roll (a scratch redis-server loaded from an
 * older base and the sealed segments) lives below the daemon and is handed in by the command
 * line, which keeps the daemon from depending on the restore code.
 */
export interface RollSchedule {
  everyMs: number;
  /**
   * Builds a base of `source` at the newest transaction boundary archived; null when one stands
   * there already. A cluster rolls each shard's source on its own.
   */
  roll: (store: Store, source: string) => Promise<BaseMeta | null>;
}

export interface RollLoop {
  store: Store;
  source: string;
  schedule: RollSchedule;
  /** The timeline being captured now, or null while none streams. */
  timeline: () => number | null;
  stopping: () => boolean;
  signal: AbortSignal;
  /** Counts a failed roll for the status and metrics; the loop tries again a period later. */
  failed: (err: unknown) => void;
  log: Logger;
}

/**
 * Waits until the newest base of the live timeline (from the master or rolled) is a period old,
 * then rolls one. A failure is counted and logged, never fatal: the stream goes on, and restores
 * replay from the base before.
 */
export async function scheduleRolledBases(loop: RollLoop): Promise<void> {
  const { schedule, log } = loop;
  const archive = new Archive(loop.store);
  const check = Math.max(200, Math.min(schedule.everyMs / 10, 60_000));
  let lastAttempt = 0;
  while (!loop.stopping()) {
    await sleep(check, undefined, { signal: loop.signal }).catch(() => undefined);
    const timeline = loop.timeline();
    if (loop.stopping() || timeline === null) continue;
    const bases = await archive.bases(loop.source, timeline);
    const latest = Math.max(lastAttempt, ...bases.map((b) => b.takenAt));
    if (Date.now() - latest < schedule.everyMs) continue;
    lastAttempt = Date.now();
    try {
      const base = await schedule.roll(loop.store, loop.source);
      if (base !== null)
        log.info({ timeline, offset: base.offset, bytes: base.bytes }, 'rolled base built');
    } catch (err) {
      if (loop.stopping()) return;
      loop.failed(err);
    }
  }
}
