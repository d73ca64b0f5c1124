import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.js';
import type { SessionStatus } from '../replication/session.js';
import { keys } from '../store/keys.js';
import { json, type Store } from '../store/store.js';
import type { SeenRecord } from '../store/types.js';
import type { MasterSample } from './master-watch.js';
import { type ErrorCounts, messageOf } from './supervise.js';

export interface SeenOptions {
  store: Store;
  source: string;
  /** The replication session streaming now, if any. */
  session: () => SessionStatus | undefined;
  /** The newest sample of the master's offset, if any. */
  latest: () => MasterSample | null | undefined;
  failures: ErrorCounts;
  log: Logger;
  signal: AbortSignal;
}

/**
 * While the master idles no entry arrives, yet the archive is complete: each second, if the
 * master's sampled offset is no further than what is durable, record that instant so restores
 * up to it are allowed (a PING every 10 s would otherwise be the only proof). For a cluster this
 * is what lets a shard that stopped writing keep the cluster's restorable end at the present.
 * Runs until the signal aborts; a failed write is counted once per episode and retried.
 */
export async function recordSeen(o: SeenOptions): Promise<void> {
  const job = `seen record ${o.source}`;
  let last = 0;
  while (!o.signal.aborted) {
    await sleep(1000, undefined, { signal: o.signal }).catch(() => undefined);
    const s = o.session();
    const m = o.latest();
    if (o.signal.aborted || s === undefined || m === undefined || m === null) continue;
    if (s.phase !== 'streaming' || s.timeline === null || s.durableOffset === null) continue;
    if (m.replid !== s.replid || m.offset > s.durableOffset || m.at <= last) continue;
    const seen: SeenRecord = { timeline: s.timeline, offset: s.durableOffset, time: m.at };
    try {
      await o.store.batch([{ type: 'put', key: keys.seen(o.source), value: json.encode(seen) }]);
    } catch (err) {
      const code = o.failures.episode(job, err);
      // Restores up to an idle master's present wait for the next write meanwhile.
      if (code !== null)
        o.log.warn(
          { job, error: { code, message: messageOf(err) } },
          `${job} failing: the restorable end waits for the next write`,
        );
      continue;
    }
    o.failures.recovered(job);
    last = m.at;
  }
}
