import { open } from 'node:fs/promises';
import { walkRdb } from '../../rdb/length.js';
import type { RedisClient } from '../../resp/client.js';
import { globMatch } from '../../resp/glob.js';
import { FAR_FUTURE_MS } from './scripts.js';

/** One key of the state at T, as the scratch server's snapshot holds it. */
export interface ScratchKey {
  key: Buffer;
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

/** Keys per batch, and the bytes one batch should carry at most. */
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
 * Where a walk puts the selected keys: a batch of names (ScratchKeys), or of RESTORE commands
 * written as the keys are read (batch.ts).
 */
export interface KeyBatcher<T> {
  /** Keys added since the last take(). */
  readonly size: number;
  /** Bytes they hold. */
  readonly bytes: number;
  /** `value` is a view into the walk's buffer, valid during the call only. */
  add(key: Buffer, expireAt: number, type: number, value: Buffer, version: number): void;
  take(): T;
}

/** Names and expiries only, for a plan (--dry-run, the conflict check). */
export class NameBatcher implements KeyBatcher<ScratchKey[]> {
  private keys: ScratchKey[] = [];
  bytes = 0;

  get size(): number {
    return this.keys.length;
  }

  add(key: Buffer, expireAt: number): void {
    this.keys.push({ key, expireAt });
    this.bytes += key.length;
  }

  take(): ScratchKey[] {
    const keys = this.keys;
    this.keys = [];
    this.bytes = 0;
    return keys;
  }
}

/**
 * Walks an RDB (the scratch server's snapshot, or the base) and hands the selected keys to
 * `batcher`, then each batch of one db to `batch`. The file holds each key once (a SCAN may
 * return a key twice), and its values are the bytes DUMP would send, without a DUMP per key:
 * one snapshot, then a walk of the file. The walk waits for each `batch` call it is given.
 */
export async function snapshotKeys<T>(
  source: KeySource,
  selection: Selection,
  counters: ReadCounters,
  batcher: KeyBatcher<T>,
  batch: (db: number, keys: T) => Promise<void>,
): Promise<void> {
  const { file, skip } = source;
  const shift = source.frozen ? FAR_FUTURE_MS : 0;
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    let keysDb = -1;
    await walkRdb(fh, size, file, {
      bufferBytes: READ_BYTES,
      want: (db, key) => {
        if (skip?.(db, key) === true) return false;
        counters.scanned++;
        return selected(selection, db, key);
      },
      value: (entry, value, version) => {
        let flushed: Promise<void> | undefined;
        if (entry.db !== keysDb || batcher.size >= BATCH_KEYS || batcher.bytes >= BATCH_BYTES) {
          if (batcher.size > 0) flushed = batch(keysDb, batcher.take());
          keysDb = entry.db;
        }
        const { key, expireAt } = entry;
        batcher.add(key, expireAt < 0 ? -1 : expireAt - shift, entry.type, value, version);
        return flushed;
      },
    });
    if (batcher.size > 0) await batch(keysDb, batcher.take());
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
