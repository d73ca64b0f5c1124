import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { Level } from 'level';
import { diskFailure, errnoCode, RfError } from '../errors.js';
import { warnIfSharedStore } from '../warnings.js';
import { prefixEnd } from './keys.js';

export interface KvRange {
  gt?: string;
  gte?: string;
  lt?: string;
  lte?: string;
  reverse?: boolean;
  limit?: number;
}

/**
 * Read access to the archive's key space. Two implementations: the LevelDB itself when this
 * process holds it, and the running daemon's control socket when `rf listen` does (LevelDB
 * admits one process at a time).
 */
export interface KvReader {
  readonly dir: string;
  get(key: string): Promise<Buffer | undefined>;
  entries(range: KvRange): AsyncIterable<[string, Buffer]>;
  close(): Promise<void>;
}

export type BatchOp = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };

export const storePaths = (dir: string) => ({
  db: path.join(dir, 'db'),
  bases: path.join(dir, 'bases'),
  tmp: path.join(dir, 'tmp'),
  socket: path.join(dir, 'rf.sock'),
});

/**
 * LevelDB's memtable size (its default is 4 MB). Each full memtable becomes a level-0 file, and
 * every four of those are merged into level 1 together with the level-1 files their key range
 * overlaps: with segments of 1 MB and the small records rewritten at every commit (state,
 * timeline) in the same range, that merge decompresses and compresses again much of what level
 * 1 holds. Four times the memtable means a quarter of those merges: rf listen's LevelDB threads
 * took 1.55 s of CPU for 97.6 MB of stream at 4 MB, 1.14 s at 16 MB (0.98 s at 32 MB, for a
 * peak RSS 10 MB higher still). At most two memtables are held at once, one being written out.
 */
const WRITE_BUFFER_BYTES = 16 * 1024 * 1024;

/** The archive as its single owner opens it: LevelDB plus the directory of base files. */
export class Store implements KvReader {
  private constructor(
    readonly dir: string,
    private readonly db: Level<string, Buffer>,
  ) {}

  /**
   * Opens (and with `create`, makes) the store. A store held by another process is
   * RF_STORE_LOCKED; callers that only read fall back to the daemon's control socket.
   */
  static async open(dir: string, options: { create: boolean }): Promise<Store> {
    const paths = storePaths(dir);
    warnIfSharedStore(dir);
    if (options.create) {
      try {
        await fs.mkdir(dir, { recursive: true, mode: 0o700 });
        for (const sub of [paths.bases, paths.tmp])
          await fs.mkdir(sub, { recursive: true, mode: 0o700 });
        await fs.access(dir, constants.W_OK);
      } catch (err) {
        throw new RfError('RF_STORE_UNWRITABLE', `cannot write to the store directory ${dir}`, {
          details: { store: dir, errno: errnoCode(err) },
          hint: 'pass --store with a directory this user can write, or fix its permissions',
          cause: err,
        });
      }
    } else {
      try {
        await fs.access(paths.db, constants.R_OK);
      } catch (err) {
        throw new RfError('RF_STORE_MISSING', `no rf store at ${dir}`, {
          details: { store: dir, errno: errnoCode(err) },
          hint: 'check --store (or RF_STORE); `rf listen --store DIR` creates one',
          cause: err,
        });
      }
    }
    const db = new Level<string, Buffer>(paths.db, {
      keyEncoding: 'utf8',
      valueEncoding: 'buffer',
    });
    try {
      await db.open({ createIfMissing: options.create, writeBufferSize: WRITE_BUFFER_BYTES });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      if (errnoCode(cause) === 'LEVEL_LOCKED') {
        throw new RfError('RF_STORE_LOCKED', `the store ${dir} is in use by another process`, {
          details: { store: dir },
          hint: 'another `rf listen` owns this store; stop it, or use another --store',
          cause: err,
        });
      }
      throw new RfError(
        options.create ? 'RF_STORE_UNWRITABLE' : 'RF_STORE_MISSING',
        `cannot open the store database in ${dir}: ${(cause as Error | undefined)?.message ?? String(err)}`,
        {
          details: { store: dir },
          hint: 'check --store and the directory permissions',
          cause: err,
        },
      );
    }
    return new Store(dir, db);
  }

  async get(key: string): Promise<Buffer | undefined> {
    return (await this.db.get(key)) ?? undefined;
  }

  async *entries(range: KvRange): AsyncIterable<[string, Buffer]> {
    const it = this.db.iterator({ ...range, limit: range.limit ?? -1 });
    try {
      for await (const [key, value] of it) yield [key, value];
    } finally {
      await it.close();
    }
  }

  /** One atomic LevelDB batch, fsynced: what it holds survives a crash or a power cut. */
  async batch(ops: BatchOp[]): Promise<void> {
    try {
      await this.db.batch(ops, { sync: true });
    } catch (err) {
      throw diskError(this.dir, err);
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

/**
 * A write to the store that the disk refused (full, over quota, read-only, failing), as the
 * RF_STORE_UNWRITABLE an operator can act on; any other error is returned as it is. Nothing is
 * lost by it: what was not written was not acknowledged, and a restarted `rf listen` resumes
 * from the last durable offset.
 */
export function diskError(store: string, err: unknown, file?: string): unknown {
  const failure = diskFailure(err);
  if (failure === undefined) return err;
  const { code, why, text } = failure;
  return new RfError(
    'RF_STORE_UNWRITABLE',
    `cannot write to the store ${store}: ${why} (${text})`,
    {
      details: { store, errno: code, ...(file === undefined ? {} : { file }) },
      hint:
        code === 'ENOSPC' || code === 'EDQUOT'
          ? 'free space on that disk (or retention: --retain), then start rf listen again: it resumes from the last durable offset, and the master resends what it missed if its repl-backlog-size still holds it'
          : 'check the disk and the file system, then start rf listen again: it resumes from the last durable offset',
      cause: err,
    },
  );
}

export const json = {
  encode: (value: unknown): Buffer => Buffer.from(JSON.stringify(value)),
  decode: <T>(buf: Buffer): T => JSON.parse(buf.toString('utf8')) as T,
};

/** The JSON record under `key`, if there is one. */
export async function readRecord<T>(kv: KvReader, key: string): Promise<T | undefined> {
  const v = await kv.get(key);
  return v === undefined ? undefined : json.decode<T>(v);
}

/** Every JSON record under `prefix`, in key order. */
export async function readRecords<T>(kv: KvReader, prefix: string): Promise<T[]> {
  const out: T[] = [];
  for await (const [, v] of kv.entries({ gte: prefix, lt: prefixEnd(prefix) }))
    out.push(json.decode<T>(v));
  return out;
}
