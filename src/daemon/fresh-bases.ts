import { setTimeout as sleep } from 'node:timers/promises';
import type tls from 'node:tls';
import type { Logger } from '../logger.js';
import type { RedisEndpoint } from '../redis-url.js';
import { takeFreshBase } from '../replication/fresh-base.js';
import type { SessionStatus } from '../replication/session.js';
import { Archive } from '../store/archive.js';
import type { Store } from '../store/store.js';

export interface FreshBaseSchedule {
  /** --base-every. */
  everyMs: number;
  store: Store;
  source: string;
  /** The master streaming now and its session's state (null: none). */
  current: () => { endpoint: RedisEndpoint; session: SessionStatus } | null;
  tlsOptions?: tls.ConnectionOptions;
  connectTimeoutMs: number;
  readTimeoutMs: number;
  log: Logger;
  /** Aborted when the daemon stops: ends the schedule and drops a transfer under way. */
  signal: AbortSignal;
  taken: (takenAt: number) => void;
  failed: (err: unknown) => void;
}

/**
 * Fresh bases on a schedule, over a second connection, while the stream goes on: a restore
 * then never replays more than about --base-every of writes. Taken only while the session
 * streams, from the master it streams from; one whose replid is not the session's is dropped
 * (takeFreshBase), so a failover meanwhile adds nothing wrong.
 */
export async function scheduleFreshBases(o: FreshBaseSchedule): Promise<void> {
  const archive = new Archive(o.store);
  const check = Math.max(200, Math.min(o.everyMs / 10, 60_000));
  let lastAttempt = 0;
  while (!o.signal.aborted) {
    await sleep(check, undefined, { signal: o.signal }).catch(() => undefined);
    const now = o.current();
    if (o.signal.aborted || now === null) continue;
    const s = now.session;
    if (s.phase !== 'streaming' || s.timeline === null || s.replid === null) continue;
    const bases = await archive.bases(o.source, s.timeline);
    // An attempt that added nothing (an idle master, a failure) also waits a full period: each
    // attempt costs the master a fork.
    const latest = Math.max(lastAttempt, ...bases.map((b) => b.takenAt));
    if (Date.now() - latest < o.everyMs) continue;
    lastAttempt = Date.now();
    try {
      const fresh = await takeFreshBase({
        endpoint: now.endpoint,
        ...(o.tlsOptions ? { tlsOptions: o.tlsOptions } : {}),
        store: o.store,
        source: o.source,
        timeline: { id: s.timeline, replid: s.replid },
        connectTimeoutMs: o.connectTimeoutMs,
        readTimeoutMs: o.readTimeoutMs,
        log: o.log,
        signal: o.signal,
      });
      if (fresh !== null) o.taken(fresh.takenAt);
    } catch (err) {
      if (o.signal.aborted) return;
      o.failed(err);
    }
  }
}
