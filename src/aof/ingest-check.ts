import { RfError } from '../errors.js';
import type {
  AofChunkMeta,
  AofFileRecord,
  AofGap,
  AofSizeSample,
  BaseOffer,
} from '../store/chunks.js';

/**
 * What `rf ship` sends is checked field by field before it reaches the store: a record stored
 * once is read by every `rf info` and `rf verify` after it, and one bad field (`size.at =
 * 9007199254740991`, `gap.at = "not-a-date"`) made each of them fail with `RangeError: Invalid
 * time value` until it was overwritten. Only the known fields are kept.
 */

export function ingestUsage(message: string): RfError {
  return new RfError('RF_USAGE', message, {
    hint: 'rf ship and rf listen --ingest must be the same rf version',
  });
}

type Fields = Record<string, unknown>;

function object(v: unknown, what: string): Fields {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw ingestUsage(`${what} is not an object`);
  return v as Fields;
}

function whole(o: Fields, key: string, what: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw ingestUsage(`${what}.${key} is not a whole number`);
  return v;
}

/** Latest instant accepted: a Redis host's clock may run ahead, not by centuries. */
const FUTURE_MS = 366 * 24 * 3600 * 1000;

/** Milliseconds since the epoch that every printer of times can print. */
function instant(o: Fields, key: string, what: string): number {
  const v = whole(o, key, what);
  if (v > Date.now() + FUTURE_MS)
    throw ingestUsage(`${what}.${key} is not a time rf can hold: ${v}`);
  return v;
}

/** `#TS` annotations are Unix seconds. */
function seconds(o: Fields, key: string, what: string): number | null {
  if (o[key] === null) return null;
  const v = whole(o, key, what);
  if (v * 1000 > Date.now() + FUTURE_MS)
    throw ingestUsage(`${what}.${key} is not a time rf can hold: ${v}`);
  return v;
}

/**
 * Redis names its files after `appendfilename` (`appendonly.aof.3.incr.aof`), which may not be a
 * path (config.c): no slash, and no control character that a terminal would act on.
 */
const NOT_IN_FILE_NAME = /[\p{Cc}/\\]/u;

function fileName(o: Fields, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0 || v.length > 255 || NOT_IN_FILE_NAME.test(v))
    throw ingestUsage(`${what}.${key} is not an AOF file name`);
  return v;
}

function sha256(o: Fields, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v))
    throw ingestUsage(`${what}.${key} is not a sha256 in hex`);
  return v;
}

function oneOf<T extends string>(o: Fields, key: string, what: string, allowed: readonly T[]): T {
  const v = o[key];
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v))
    throw ingestUsage(`${what}.${key} is not one of ${allowed.join(', ')}`);
  return v as T;
}

function matches(what: string, field: string, got: number, path: number): void {
  if (got !== path) throw ingestUsage(`${what}.${field} ${got} does not match the path (${path})`);
}

export function checkFileRecord(v: unknown, fileNo: number): AofFileRecord {
  const what = 'the file record';
  const o = object(v, what);
  matches(what, 'fileNo', whole(o, 'fileNo', what), fileNo);
  const record: AofFileRecord = {
    fileNo,
    name: fileName(o, 'name', what),
    kind: oneOf(o, 'kind', what, ['incr', 'single'] as const),
    seq: whole(o, 'seq', what),
    ino: whole(o, 'ino', what),
    chunkStart: whole(o, 'chunkStart', what),
    firstSeenAt: instant(o, 'firstSeenAt', what),
    capturedEnd: whole(o, 'capturedEnd', what),
    chunks: whole(o, 'chunks', what),
    last: null,
    ended: null,
  };
  if (o.last !== null && o.last !== undefined) {
    const last = object(o.last, `${what}.last`);
    record.last = {
      start: whole(last, 'start', `${what}.last`),
      end: whole(last, 'end', `${what}.last`),
      sha256: sha256(last, 'sha256', `${what}.last`),
    };
  }
  if (o.ended !== null && o.ended !== undefined) {
    const ended = object(o.ended, `${what}.ended`);
    record.ended = {
      at: instant(ended, 'at', `${what}.ended`),
      size: whole(ended, 'size', `${what}.ended`),
    };
  }
  return record;
}

export function checkChunkMeta(v: unknown, fileNo: number, start: number): AofChunkMeta {
  const what = 'the chunk header';
  const o = object(v, what);
  matches(what, 'fileNo', whole(o, 'fileNo', what), fileNo);
  matches(what, 'start', whole(o, 'start', what), start);
  const end = whole(o, 'end', what);
  if (end <= start) throw ingestUsage(`${what}.end ${end} is not past its start ${start}`);
  return {
    fileNo,
    file: fileName(o, 'file', what),
    seq: whole(o, 'seq', what),
    start,
    end,
    sha256: sha256(o, 'sha256', what),
    capturedAt: instant(o, 'capturedAt', what),
    commands: whole(o, 'commands', what),
    firstTs: seconds(o, 'firstTs', what),
    lastTs: seconds(o, 'lastTs', what),
  };
}

export function checkGap(v: unknown, fileNo: number, start: number): AofGap {
  const what = 'the gap';
  const o = object(v, what);
  matches(what, 'fileNo', whole(o, 'fileNo', what), fileNo);
  matches(what, 'start', whole(o, 'start', what), start);
  const end = o.end === null ? null : whole(o, 'end', what);
  if (end !== null && end < start)
    throw ingestUsage(`${what}.end ${end} is before its start ${start}`);
  return {
    fileNo,
    file: fileName(o, 'file', what),
    start,
    end,
    at: instant(o, 'at', what),
    reason: oneOf(o, 'reason', what, ['file-deleted', 'torn-tail', 'diverged'] as const),
  };
}

export function checkSize(v: unknown): AofSizeSample {
  const what = 'the size sample';
  const o = object(v, what);
  return { at: instant(o, 'at', what), bytes: whole(o, 'bytes', what) };
}

export function checkBaseOffer(v: unknown, fileNo: number): BaseOffer {
  const what = 'the base header';
  const o = object(v, what);
  matches(what, 'fileNo', whole(o, 'fileNo', what), fileNo);
  return {
    fileNo,
    name: fileName(o, 'name', what),
    seq: whole(o, 'seq', what),
    ino: whole(o, 'ino', what),
    format: oneOf(o, 'format', what, ['rdb', 'aof', 'rdb-preamble', 'empty'] as const),
    bytes: whole(o, 'bytes', what),
    firstFileNo: o.firstFileNo === null ? null : whole(o, 'firstFileNo', what),
  };
}
