import { setTimeout as sleep } from 'node:timers/promises';
import { RfError } from '../../errors.js';
import { globMatch } from '../../log/glob.js';
import type { RedisClient } from '../../resp/client.js';
import { FAR_FUTURE_MS, SCAN_DUMP } from './scripts.js';

/** One key of the state at T, as the scratch server holds it. */
export interface ScratchKey {
  key: Buffer;
  /** DUMP payload; null when only names and expiries were asked for. */
  payload: Buffer | null;
  /** Absolute expiry at T in ms since the epoch, or -1 for none. */
  expireAt: number;
}

export interface ReadCounters {
  /** Keys returned by SCAN so far, in every db. */
  scanned: number;
}

/** Keys per SCAN step, and the bytes of DUMP payloads one step should carry at most. */
const STEP_KEYS = 1000;
const STEP_KEYS_MATCH = 10_000;
const STEP_BYTES = 8 * 1024 * 1024;

/** The databases that hold keys in the scratch server, with their key counts (INFO keyspace). */
export async function scratchKeyspace(client: RedisClient): Promise<Map<number, number>> {
  const info = await client.info('keyspace');
  const dbs = new Map<number, number>();
  for (const [k, v] of Object.entries(info)) {
    const m = /^db(\d+)$/.exec(k);
    if (m !== null) dbs.set(Number(m[1]), Number(/keys=(\d+)/.exec(v)?.[1] ?? 0));
  }
  return dbs;
}

/**
 * Waits until no db's key table is rehashing or due to shrink: SCAN can return a key twice
 * only when the table shrinks between two steps (dict.c dictScan), and a key seen twice would
 * be written twice and then reported as a conflict with itself. A table shrinks once it is
 * under 10% full (server.c htNeedsResize, HASHTABLE_MIN_FILL); the scratch server does that
 * and its rehashing in its cron, at once for a table of the state at T that lost most keys.
 */
export async function settle(client: RedisClient, dbs: Iterable<number>): Promise<void> {
  for (const db of dbs) {
    const deadline = Date.now() + 60_000;
    while (!tableSettled(String(await client.call('DEBUG', 'HTSTATS', String(db))))) {
      if (Date.now() > deadline) {
        throw new RfError(
          'RF_REDIS_SERVER',
          `the scratch server's db ${db} kept rehashing for 60 s`,
          {
            details: { db },
            hint: 'try again; the host may be overloaded',
          },
        );
      }
      await sleep(50);
    }
  }
}

/** Reads DEBUG HTSTATS: the main dict neither rehashing nor under 10% full (server.c). */
export function tableSettled(htstats: string): boolean {
  const main = htstats.split('[Expires HT]')[0] ?? '';
  if (main.includes('rehashing target')) return false;
  const size = Number(/table size: (\d+)/.exec(main)?.[1] ?? 0);
  const used = Number(/number of elements: (\d+)/.exec(main)?.[1] ?? 0);
  return size <= 4 || (used * 100) / size >= 10;
}

/**
 * The keys of one db that match any of the patterns (every key when there are none), in SCAN
 * batches of bounded bytes. Each pattern is a SCAN MATCH of its own; a key that an earlier
 * pattern matched is left out of the later ones, so each key comes once.
 */
export async function* scanKeys(
  client: RedisClient,
  sha: string,
  db: number,
  patterns: readonly Buffer[],
  withPayload: boolean,
  counters: ReadCounters,
): AsyncIterable<ScratchKey[]> {
  await client.call('SELECT', String(db));
  const passes: Array<Buffer | null> = patterns.length === 0 ? [null] : [...patterns];
  for (let p = 0; p < passes.length; p++) {
    const pattern = passes[p]!;
    const earlier = passes.slice(0, p) as Buffer[];
    let count = pattern === null ? STEP_KEYS : STEP_KEYS_MATCH;
    let cursor = '0';
    do {
      const reply = (await client.call(
        'EVALSHA',
        sha,
        '0',
        cursor,
        String(count),
        pattern ?? '',
        withPayload ? '1' : '0',
      )) as Array<Buffer | number | null>;
      cursor = String(reply[0]);
      const batch: ScratchKey[] = [];
      let bytes = 0;
      for (let i = 1; i + 2 < reply.length; i += 3) {
        const key = reply[i] as Buffer;
        const payload = reply[i + 1];
        const t = Number(reply[i + 2]);
        counters.scanned++;
        if (earlier.some((e) => globMatch(e, key))) continue;
        const buf = Buffer.isBuffer(payload) ? payload : null;
        bytes += key.length + (buf?.length ?? 0);
        // Every expiry in the scratch was moved FAR_FUTURE_MS on (scripts.ts).
        batch.push({ key, payload: buf, expireAt: t < 0 ? -1 : t - FAR_FUTURE_MS });
      }
      // Large values: fewer keys a step, so a batch stays within STEP_BYTES.
      if (withPayload && batch.length > 0 && bytes > STEP_BYTES) {
        count = Math.max(1, Math.floor((count * STEP_BYTES) / bytes));
      }
      if (batch.length > 0) yield batch;
    } while (cursor !== '0');
  }
}

/** Loads the SCAN step script once; EVALSHA then sends 40 bytes instead of the script. */
export async function loadScanScript(client: RedisClient): Promise<string> {
  return String(await client.call('SCRIPT', 'LOAD', SCAN_DUMP));
}
