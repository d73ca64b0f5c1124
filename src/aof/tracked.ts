/**
 * The state of one AOF file the capture follows: where it is in the file, the latest chunks kept
 * to compare bytes Redis writes again, and the checks that the file still holds what the store
 * has (on resume, and after Redis truncates a short write).
 */
import type { FileHandle } from 'node:fs/promises';
import { errnoCode, RfError } from '../errors.js';
import type { Logger } from '../logger.js';
import { type AofFileRecord, type AofGap, type BaseOffer, sha256 } from '../store/chunks.js';
import { readExactly } from './file-read.js';

/** A file whose bytes are cut into chunks, held open from the moment it is first seen. */
export interface Tracked {
  record: AofFileRecord;
  path: string;
  /**
   * Held open because Redis deletes history files soon after a rewrite (aof.c aofDelHistoryFiles,
   * bg_unlink): an open descriptor keeps the bytes readable until this file is finished.
   */
  fh: FileHandle;
  /** Where the next chunk starts: the end of what the sink holds. */
  pos: number;
  /** Redis writes no more to it: a newer incr is in the manifest, or the Redis 6 file was renamed over. */
  done: boolean;
  /** The latest chunks stored, newest last, for comparing bytes Redis writes again. */
  recent: Buffer[];
  recentBytes: number;
  /** Since when bytes fewer than a chunk have been waiting. */
  pendingSince: number | null;
  /** Set after Redis truncated bytes already stored: they must come back identical. */
  recheck: { from: number; expected: Buffer } | null;
  /** The file's size when last looked at. */
  lastSize: number | null;
}

/** A base waiting to be copied whole. */
export interface PendingBase {
  offer: BaseOffer;
  path: string;
  fh: FileHandle;
}

export function track(record: AofFileRecord, p: string, fh: FileHandle): Tracked {
  return {
    record,
    path: p,
    fh,
    pos: record.capturedEnd,
    done: false,
    recent: [],
    recentBytes: 0,
    pendingSince: null,
    recheck: null,
    lastSize: null,
  };
}

export function newRecord(
  fileNo: number,
  name: string,
  kind: AofFileRecord['kind'],
  seq: number,
  ino: number,
  chunkStart: number,
): AofFileRecord {
  return {
    fileNo,
    name,
    kind,
    seq,
    ino,
    chunkStart,
    firstSeenAt: Date.now(),
    capturedEnd: chunkStart,
    chunks: 0,
    last: null,
    ended: null,
  };
}

/** Keeps `data` among the latest chunks of `f`, dropping the oldest past `limit` bytes. */
export function remember(f: Tracked, data: Buffer, limit: number): void {
  f.recent.push(data);
  f.recentBytes += data.length;
  while (f.recent.length > 1 && f.recentBytes - f.recent[0]!.length >= limit) {
    f.recentBytes -= f.recent.shift()!.length;
  }
}

/** Re-opens a file the sink holds: checks its last chunk still matches, and goes on from its end. */
export async function resume(
  record: AofFileRecord,
  p: string,
  fh: FileHandle,
  recheckBytes: number,
): Promise<Tracked> {
  const f = track(record, p, fh);
  if (record.last !== null) {
    const bytes = await readExactly(fh, record.last.start, record.last.end - record.last.start);
    if (bytes === null || sha256(bytes) !== record.last.sha256) {
      await fh.close();
      throw new RfError(
        'RF_AOF_DIVERGED',
        `${record.name} on the Redis host no longer holds the bytes the store has for it (bytes ${record.last.start}..${record.last.end})`,
        {
          details: {
            file: record.name,
            fileNo: record.fileNo,
            start: record.last.start,
            end: record.last.end,
          },
          hint: 'the AOF was replaced or edited behind Redis; run `rf verify`, and use a new --name to start a fresh AOF history',
        },
      );
    }
    remember(f, bytes, recheckBytes);
  }
  return f;
}

/** Records the bytes of `f` that no longer match the store as a gap, and says why it stops. */
export type Diverge = (f: Tracked, size: number, why: string) => Promise<RfError>;

/**
 * Redis truncated the file below what the store holds: after a short write it ftruncates back
 * to where that write began and writes the same buffer again later (aof.c
 * flushAppendOnlyFile). The bytes must come back identical; they are then not sent again.
 */
export async function recheckStep(
  f: Tracked,
  size: number,
  log: Logger,
  diverged: Diverge,
): Promise<boolean> {
  if (f.recheck === null || size < f.recheck.from) {
    const retracted = f.pos - size;
    if (retracted > f.recentBytes) {
      throw await diverged(
        f,
        size,
        `Redis truncated ${retracted} bytes the store already holds, more than rf keeps to compare`,
      );
    }
    const expected = Buffer.concat(f.recent).subarray(f.recentBytes - retracted);
    if (f.recheck === null) {
      log.warn(
        { file: f.record.name, truncatedTo: size, stored: f.pos },
        'Redis truncated the AOF below what is stored (a short write?): waiting for the same bytes to come back',
      );
    }
    f.recheck = { from: size, expected };
  }
  const { from, expected } = f.recheck;
  const upto = Math.min(size, f.pos);
  if (upto > from) {
    const now = await readExactly(f.fh, from, upto - from);
    if (now === null || !now.equals(expected.subarray(0, upto - from))) {
      throw await diverged(f, size, 'Redis wrote other bytes where it had truncated');
    }
  }
  if (size < f.pos) return false;
  f.recheck = null;
  log.info(
    { file: f.record.name, bytes: expected.length },
    'Redis wrote back the truncated bytes unchanged; they are stored already and are not sent again',
  );
  return true;
}

/** The gap and the error of a file that no longer matches what the store holds. */
export function divergence(f: Tracked, size: number, why: string): { gap: AofGap; error: RfError } {
  const gap: AofGap = {
    fileNo: f.record.fileNo,
    file: f.record.name,
    start: f.recheck?.from ?? Math.min(size, f.pos),
    end: f.pos,
    at: Date.now(),
    reason: 'diverged',
  };
  const error = new RfError(
    'RF_AOF_DIVERGED',
    `${f.record.name} no longer matches what the store holds: ${why}`,
    {
      details: { file: f.record.name, fileNo: f.record.fileNo, size, stored: f.pos },
      hint: 'check the Redis log for AOF write errors (disk full?); run `rf verify`, and restart the capture under a new --name to begin a fresh AOF history',
    },
  );
  return { gap, error };
}

export function aofDirError(dir: string, file: string, err: unknown): RfError {
  return new RfError('RF_AOF_DIR', `cannot open ${file}: ${(err as Error).message}`, {
    details: { dir, file, errno: errnoCode(err) },
    hint: `run rf as a user that may read ${dir} (Redis's user or its group)`,
    cause: err,
  });
}
