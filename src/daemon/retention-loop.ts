import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.js';
import { type PruneResult, pruneArchive } from '../retention/prune.js';
import type { Store } from '../store/store.js';
import { type ErrorCounts, messageOf } from './supervise.js';

/** `--retain`: what the daemon prunes, how it counts a failure, and when it stops. */
export interface RetentionLoop {
  /** null: no --retain, nothing is pruned. */
  retainMs: number | null;
  /** Prunes what no restore at or after `windowStart` needs. */
  prune: (windowStart: number, retainMs: number) => Promise<PruneResult>;
  stopping: () => boolean;
  signal: AbortSignal;
  /** A failed prune is counted here for the status and metrics; the loop tries again later. */
  failures: ErrorCounts;
  log: Logger;
}

/**
 * Prunes to the window that ends now, once a minute (or sooner for short windows). A failure is
 * counted and logged, never fatal: capture goes on, and the next run finishes the job (each
 * prune leaves a whole archive at every step).
 */
export async function scheduleRetention(loop: RetentionLoop): Promise<void> {
  const retain = loop.retainMs;
  if (retain === null) return;
  const every = Math.max(1000, Math.min(retain / 10, 60_000));
  while (!loop.stopping()) {
    try {
      const result = await loop.prune(Date.now() - retain, retain);
      if (result.segmentsDeleted + result.basesDeleted + result.timelinesDropped > 0)
        loop.log.info(result, 'retention: pruned');
    } catch (err) {
      const code = loop.failures.note('retention', err);
      loop.log.warn(
        { error: { code, message: messageOf(err) } },
        'retention: pruning failed; will try again',
      );
    }
    await sleep(every, undefined, { signal: loop.signal }).catch(() => undefined);
  }
}

/**
 * `--retain` of one source (rf listen --source, --sentinel): pruned to the window, but never
 * past `heldUntil()`, what the bucket already holds with --repo (nothing is deleted locally
 * before the bucket holds it; without --repo, Infinity).
 */
export function scheduleSourceRetention(
  store: Store,
  source: string,
  heldUntil: () => number,
  loop: Omit<RetentionLoop, 'prune'>,
): Promise<void> {
  return scheduleRetention({
    ...loop,
    prune: (windowStart, retain) =>
      pruneArchive(store, source, Math.min(windowStart, heldUntil()), retain, loop.log),
  });
}
