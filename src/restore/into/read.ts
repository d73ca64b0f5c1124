import { open } from 'node:fs/promises';
import { dumpPayload } from '../../rdb/entries.js';
import { walkRdb } from '../../rdb/length.js';
import type { RedisClient } from '../../resp/client.js';
import { globMatch } from '../../resp/glob.js';
import { FAR_FUTURE_MS } from './scripts.js';

/** One key of the state at T, as the scratch server's snapshot holds it. */
export interface ScratchKey {
  key: Buffer;
  /** DUMP payload; null when only names and expiries were asked for. */
  payload: Buffer | null;
  /** Absolute expiry at T in ms since the epoch, or -1 for none. */
  expireAt: number;
}

export interface ReadCounters {
  /** Keys of the snapshot walked so far, selected or not. */
  scanned: number;
}

export interface Selection {
  /** Databases to read; empty: all. */
  dbs: readonly number[];
  /** Redis globs a key must match one of; empty: every key. */
  patterns: readonly Buffer[];
}

/** Keys per batch, and the bytes of DUMP payloads one batch should carry at most. */
const BATCH_KEYS = 1000;
const BATCH_BYTES = 8 * 1024 * 1024;
/** The snapshot is read in reads this large: with 64 KiB, 1M small keys took 2,000 reads. */
const READ_BYTES = 4 * 1024 * 1024;

export function selected(selection: Selection, db: number, key: Buffer): boolean {
  if (selection.dbs.length > 0 && !selection.dbs.includes(db)) return false;
  return selection.patterns.length === 0 || selection.patterns.some((p) => globMatch(p, key));
}

/** An RDB the keys are read from. */
export interface KeySource {
  file: string;
  /**
   * Every expiry was moved FAR_FUTURE_MS on (scripts.ts), as in the scratch server's snapshot;
   * false for the base, whose expiries are as the master saved them.
   */
  frozen: boolean;
  /** Keys of the file that are not read at all: the base's keys that the replay changed. */
  skip?: (db: number, key: Buffer) => boolean;
}

/**
 * Walks an RDB (the scratch server's snapshot, or the base) and hands the selected keys to
 * `batch`, in batches of one db each, with their DUMP payloads when asked. The file holds each
 * key once (a SCAN may return a key twice), and its payloads are the bytes DUMP would send,
 * without a DUMP per key: one snapshot, then a walk of the file. The walk waits for each
 * `batch` call it is given.
 */
export async function snapshotKeys(
  source: KeySource,
  selection: Selection,
  withPayload: boolean,
  counters: ReadCounters,
  batch: (db: number, keys: ScratchKey[]) => Promise<void>,
): Promise<void> {
  const { file, skip } = source;
  const shift = source.frozen ? FAR_FUTURE_MS : 0;
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    let keys: ScratchKey[] = [];
    let keysDb = -1;
    let bytes = 0;
    await walkRdb(fh, size, file, {
      bufferBytes: READ_BYTES,
      want: (db, key) => {
        if (skip?.(db, key) === true) return false;
        counters.scanned++;
        return selected(selection, db, key);
      },
      value: (entry, value, version) => {
        let flushed: Promise<void> | undefined;
        if (entry.db !== keysDb || keys.length >= BATCH_KEYS || bytes >= BATCH_BYTES) {
          if (keys.length > 0) flushed = batch(keysDb, keys);
          keys = [];
          bytes = 0;
          keysDb = entry.db;
        }
        const payload = withPayload ? dumpPayload(entry.type, value, version) : null;
        bytes += entry.key.length + (payload?.length ?? 0);
        const { key, expireAt } = entry;
        keys.push({ key, payload, expireAt: expireAt < 0 ? -1 : expireAt - shift });
        return flushed;
      },
    });
    if (keys.length > 0) await batch(keysDb, keys);
  } finally {
    await fh.close();
  }
}

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
