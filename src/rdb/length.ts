// Over 400 lines: one walker of every RDB value encoding (rdb.c rdbLoadObject); the encodings
// share one cursor and are read in one place so a new type is added beside the others.
import type { FileHandle } from 'node:fs/promises';
import { RfError } from '../errors.js';
import { lzfDecompress } from './lzf.js';
import { RDB_HEADER_LEN, readRdbHeader, unknownType } from './versions.js';

/**
 * Finds where an RDB that starts a file ends: the Redis 6 `appendonly.aof` with
 * `aof-use-rdb-preamble yes` is an RDB followed by commands, and only the commands are cut into
 * chunks. The RDB is walked, not loaded: every value is skipped by its encoded lengths (rdb.c
 * rdbLoadObject and rdbLoadRioWithLoadingCtx), so memory stays flat whatever the dataset.
 */

const BUFFER = 64 * 1024;

// rdb.h opcodes.
export const OP_SLOT_INFO = 244;
export const OP_FUNCTION2 = 245;
export const OP_FUNCTION_PRE_GA = 246;
export const OP_MODULE_AUX = 247;
export const OP_IDLE = 248;
export const OP_FREQ = 249;
export const OP_AUX = 250;
export const OP_RESIZEDB = 251;
export const OP_EXPIRETIME_MS = 252;
export const OP_EXPIRETIME = 253;
export const OP_SELECTDB = 254;
export const OP_EOF = 255;

// rdb.h RDB_MODULE_OPCODE_*: a module-2 value is a sequence of typed fields ending in EOF.
const MODULE_EOF = 0;
const MODULE_SINT = 1;
const MODULE_UINT = 2;
const MODULE_FLOAT = 3;
const MODULE_DOUBLE = 4;
const MODULE_STRING = 5;

/** Reads a file from a position through one reusable buffer; skips without reading. */
export class Cursor {
  private buf: Buffer;
  private bufStart = 0;
  private bufEnd = 0;

  constructor(
    private readonly fh: FileHandle,
    readonly limit: number,
    public pos: number,
    private readonly where: string,
    bufferBytes = BUFFER,
  ) {
    this.buf = Buffer.allocUnsafe(bufferBytes);
  }

  async ensure(n: number): Promise<void> {
    if (this.pos >= this.bufStart && this.pos + n <= this.bufEnd) return;
    if (this.pos + n > this.limit) throw this.short();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
    const want = Math.min(this.buf.length, this.limit - this.pos);
    const { bytesRead } = await this.fh.read(this.buf, 0, want, this.pos);
    this.bufStart = this.pos;
    this.bufEnd = this.pos + bytesRead;
    if (bytesRead < n) throw this.short();
  }

  async u8(): Promise<number> {
    await this.ensure(1);
    return this.buf[this.pos++ - this.bufStart]!;
  }

  async bytes(n: number): Promise<Buffer> {
    await this.ensure(n);
    const at = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(at, at + n);
  }

  /**
   * The bytes from `start` to the current position, as a copy: from the buffer when they are
   * still in it, else read again (a value too large for the buffer was skipped unread).
   */
  async span(start: number): Promise<Buffer> {
    const end = this.pos;
    if (start >= this.bufStart && end <= this.bufEnd) {
      return Buffer.from(this.buf.subarray(start - this.bufStart, end - this.bufStart));
    }
    const out = Buffer.allocUnsafe(end - start);
    const { bytesRead } = await this.fh.read(out, 0, out.length, start);
    if (bytesRead < out.length) throw this.short();
    return out;
  }

  skip(n: number): void {
    if (this.pos + n > this.limit) throw this.short();
    this.pos += n;
  }

  /**
   * Skips a string when its length prefix is already in the buffer; false (nothing read)
   * otherwise. Most of an RDB is such strings (plain, integer or LZF, rdbGenericLoadStringObject),
   * and skipping them without an await per value makes the walk several times faster.
   */
  skipStringNow(): boolean {
    const at = this.pos - this.bufStart;
    const end = this.bufEnd - this.bufStart;
    if (this.pos < this.bufStart || at + 1 > end) return false;
    const b = this.buf[at]!;
    if (b >> 6 !== 3) {
      const n = this.lengthAt(at, end);
      if (n < 0) return false;
      this.skip(this.lengthBytes + n);
      return true;
    }
    const enc = b & 0x3f;
    if (enc <= 2) {
      this.skip(1 + (1 << enc));
      return true;
    }
    if (enc !== 3) return false;
    // LZF: compressed length, uncompressed length, then the compressed bytes.
    const clen = this.lengthAt(at + 1, end);
    if (clen < 0) return false;
    const clenBytes = this.lengthBytes;
    if (this.lengthAt(at + 1 + clenBytes, end) < 0) return false;
    this.skip(1 + clenBytes + this.lengthBytes + clen);
    return true;
  }

  /** Set by lengthAt: the bytes of the length it read. */
  private lengthBytes = 0;

  /** A 6, 14 or 32-bit length at buffer index `at` if it is wholly buffered, else -1. */
  private lengthAt(at: number, end: number): number {
    if (at + 1 > end) return -1;
    const b = this.buf[at]!;
    const kind = b >> 6;
    if (kind === 0) {
      this.lengthBytes = 1;
      return b & 0x3f;
    }
    if (kind === 1) {
      if (at + 2 > end) return -1;
      this.lengthBytes = 2;
      return ((b & 0x3f) << 8) | this.buf[at + 1]!;
    }
    if (b !== 0x80 || at + 5 > end) return -1;
    this.lengthBytes = 5;
    return this.buf.readUInt32BE(at + 1);
  }

  /** A plain string (a key) when it is wholly in the buffer, as a copy; else null (nothing read). */
  stringNow(): Buffer | null {
    const at = this.pos - this.bufStart;
    if (this.pos < this.bufStart || at + 1 > this.bufEnd - this.bufStart) return null;
    const b = this.buf[at]!;
    if (b >> 6 !== 0) return null;
    const n = b & 0x3f;
    if (at + 1 + n > this.bufEnd - this.bufStart) return null;
    this.pos += 1 + n;
    // One small buffer (from Node's pool), not a view and then a copy of it: one per key, and
    // at most 63 bytes, which a loop copies faster than a call to Buffer#copy.
    const key = Buffer.allocUnsafe(n);
    const buf = this.buf;
    for (let i = 0, from = at + 1; i < n; i++) key[i] = buf[from + i]!;
    return key;
  }

  /** The bytes from `start` to the current position when they are in the buffer, else null. */
  spanNow(start: number): Buffer | null {
    if (start < this.bufStart || this.pos > this.bufEnd) return null;
    return this.buf.subarray(start - this.bufStart, this.pos - this.bufStart);
  }

  /** The next byte when it is buffered, else -1 (nothing read). */
  u8Now(): number {
    if (this.pos < this.bufStart || this.pos >= this.bufEnd) return -1;
    return this.buf[this.pos++ - this.bufStart]!;
  }

  corrupt(why: string): RfError {
    return new RfError(
      'RF_CORRUPT',
      `the RDB at the start of ${this.where} is malformed at byte ${this.pos}: ${why}`,
      {
        details: { file: this.where, position: this.pos },
        hint: 'check the file with `redis-check-aof`; rf only follows an AOF that Redis itself can load',
      },
    );
  }

  private short(): RfError {
    return new RfError(
      'RF_CORRUPT',
      `the RDB at the start of ${this.where} ends early (at byte ${this.limit})`,
      {
        details: { file: this.where, size: this.limit },
        hint: 'the file may still be being written; if it persists, check it with `redis-check-aof`',
      },
    );
  }
}

/** True when the bytes start with the RDB signature Redis checks in loadSingleAppendOnlyFile. */
export function startsWithRdb(head: Buffer): boolean {
  return head.length >= 5 && head.toString('latin1', 0, 5) === 'REDIS';
}

/**
 * The length in bytes of the RDB at the start of the file (signature through the EOF opcode and,
 * from RDB version 5 on, its 8-byte checksum). Throws RF_CORRUPT when it is not a complete RDB
 * within `size` bytes.
 */
export function rdbLength(fh: FileHandle, size: number, where: string): Promise<number> {
  return walkRdb(fh, size, where);
}

/** One key of an RDB file, as walkRdb shows it to a visitor. */
export interface RdbKey {
  db: number;
  key: Buffer;
  /** Absolute expiry in ms since the epoch (RDB_OPCODE_EXPIRETIME_MS), or -1. */
  expireAt: number;
  /** rdb.h RDB_TYPE_* of the value. */
  type: number;
}

export interface RdbVisitor {
  /** Whether the value of this key is wanted, as the bytes the RDB holds it in. */
  want(db: number, key: Buffer): boolean;
  /**
   * A wanted key and its value's bytes, which may be a view into the walk's buffer: valid
   * during the call only. A returned promise is waited for before the walk goes on.
   */
  value(key: RdbKey, value: Buffer, version: number): void | Promise<void>;
  /**
   * Bytes read from the file at a time. A walk that reads every value wants a large one: each
   * refill costs a read, and so does a value that straddles the buffer's end (Cursor.span).
   */
  readonly bufferBytes?: number;
  /** A function library (RDB_OPCODE_FUNCTION2): its string as the RDB encodes it, prefix included. */
  library?(encoded: Buffer): void | Promise<void>;
}

/** Value types that are one string in the RDB (rdb.c rdbLoadObject): skipped in one step. */
const ONE_STRING = new Set([0, 9, 10, 11, 12, 13, 16, 17, 20]);

/**
 * Walks an RDB at the start of the file, skipping every value by its encoded lengths, and
 * returns where it ends. With a visitor, each key is read and offered to it; the values it wants
 * are read too, every other value is still skipped unread. The common case (the record is in
 * the buffer) costs no await.
 */
export async function walkRdb(
  fh: FileHandle,
  size: number,
  where: string,
  visitor?: RdbVisitor,
): Promise<number> {
  const c = new Cursor(fh, size, 0, where, visitor?.bufferBytes);
  const raw = await c.bytes(RDB_HEADER_LEN);
  const header = readRdbHeader(raw, where);
  if (header.kind === 'not-rdb') {
    throw c.corrupt(
      `no REDIS signature and RDB version: ${JSON.stringify(raw.toString('latin1'))}`,
    );
  }
  const { version } = header;
  let db = 0;
  let expireAt = -1;
  for (;;) {
    const at = c.pos;
    const buffered = c.u8Now();
    const type = buffered === -1 ? await c.u8() : buffered;
    switch (type) {
      case OP_EOF:
        if (version >= 5) c.skip(8);
        return c.pos;
      case OP_EXPIRETIME:
        expireAt = (await c.bytes(4)).readUInt32LE(0) * 1000;
        break;
      case OP_EXPIRETIME_MS:
        expireAt = Number((await c.bytes(8)).readBigInt64LE(0));
        break;
      case OP_FREQ:
        c.skip(1);
        break;
      case OP_IDLE:
        await length(c);
        break;
      case OP_SELECTDB:
        db = await length(c);
        break;
      case OP_RESIZEDB:
        await length(c);
        await length(c);
        break;
      case OP_SLOT_INFO:
        await length(c);
        await length(c);
        await length(c);
        break;
      case OP_AUX:
        await skipString(c);
        await skipString(c);
        break;
      case OP_MODULE_AUX:
        await length(c); // module id
        await length(c); // when_opcode
        await length(c); // when
        await skipModuleValue(c);
        break;
      case OP_FUNCTION2: {
        const start = c.pos;
        await skipString(c);
        if (visitor?.library !== undefined) await visitor.library(await c.span(start));
        break;
      }
      case OP_FUNCTION_PRE_GA:
        throw c.corrupt('functions in the 7.0 release-candidate format are not supported');
      default: {
        if (!VALUE_TYPES.has(type)) throw unknownType(where, version, type, at);
        if (visitor === undefined) {
          if (!c.skipStringNow()) await skipString(c); // the key
          if (type !== 0 || !c.skipStringNow()) await skipValue(c, type);
          break;
        }
        const key = c.stringNow() ?? (await readKey(c));
        const start = c.pos;
        if (!ONE_STRING.has(type) || !c.skipStringNow()) await skipValue(c, type);
        if (visitor.want(db, key)) {
          const pending = visitor.value(
            { db, key, expireAt, type },
            c.spanNow(start) ?? (await c.span(start)),
            version,
          );
          if (pending !== undefined) await pending;
        }
        expireAt = -1;
      }
    }
  }
}

/** rdbGenericLoadStringObject for a key: raw, or an integer (rdbTryIntegerEncoding). */
async function readKey(c: Cursor): Promise<Buffer> {
  const n = await lengthOrEncoding(c);
  if (n >= 0) return Buffer.from(await c.bytes(n));
  const enc = -n - 1;
  if (enc === 0) return Buffer.from(String((await c.bytes(1)).readInt8(0)));
  if (enc === 1) return Buffer.from(String((await c.bytes(2)).readInt16LE(0)));
  if (enc === 2) return Buffer.from(String((await c.bytes(4)).readInt32LE(0)));
  if (enc !== 3) throw c.corrupt(`unknown string encoding ${enc}`);
  // LZF: compressed length, length, then the compressed bytes (rdbLoadLzfStringObject).
  const clen = await length(c);
  const len = await length(c);
  const key = lzfDecompress(await c.bytes(clen), len);
  if (key === null) throw c.corrupt('an LZF-compressed key does not decompress');
  return key;
}

/** rdbLoadLenByRef: returns the length, or -(encoding + 1) for a special string encoding. */
export async function lengthOrEncoding(c: Cursor): Promise<number> {
  const b = await c.u8();
  const kind = b >> 6;
  if (kind === 0) return b & 0x3f;
  if (kind === 1) return ((b & 0x3f) << 8) | (await c.u8());
  if (kind === 3) return -((b & 0x3f) + 1);
  if (b === 0x80) return (await c.bytes(4)).readUInt32BE(0);
  if (b === 0x81) {
    const big = (await c.bytes(8)).readBigUInt64BE(0);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw c.corrupt('64-bit length out of range');
    return Number(big);
  }
  throw c.corrupt(`unknown length encoding 0x${b.toString(16)}`);
}

export async function length(c: Cursor): Promise<number> {
  const n = await lengthOrEncoding(c);
  if (n < 0) throw c.corrupt('an encoded value where a length was expected');
  return n;
}

/** rdbGenericLoadStringObject: raw, integer (1, 2 or 4 bytes) or LZF (clen, len, clen bytes). */
export async function skipString(c: Cursor): Promise<void> {
  if (c.skipStringNow()) return;
  const n = await lengthOrEncoding(c);
  if (n >= 0) return c.skip(n);
  const enc = -n - 1;
  if (enc === 0) return c.skip(1);
  if (enc === 1) return c.skip(2);
  if (enc === 2) return c.skip(4);
  if (enc === 3) {
    const clen = await length(c);
    await length(c);
    return c.skip(clen);
  }
  throw c.corrupt(`unknown string encoding ${enc}`);
}

/** rdbLoadDoubleValue (zset version 1): a length byte, with 253..255 for nan and the infinities. */
async function skipOldDouble(c: Cursor): Promise<void> {
  const len = await c.u8();
  if (len < 253) c.skip(len);
}

export async function skipModuleValue(c: Cursor): Promise<void> {
  for (;;) {
    const op = await length(c);
    if (op === MODULE_EOF) return;
    if (op === MODULE_SINT || op === MODULE_UINT) await length(c);
    else if (op === MODULE_FLOAT) c.skip(4);
    else if (op === MODULE_DOUBLE) c.skip(8);
    else if (op === MODULE_STRING) await skipString(c);
    else throw c.corrupt(`unknown module field opcode ${op}`);
  }
}

async function times(n: number, f: () => Promise<void>): Promise<void> {
  for (let i = 0; i < n; i++) await f();
}

/**
 * Every value type of RDB 9 to 12 (rdb.h RDB_TYPE_*; 8 has never been used). Hash-field expiry
 * (Redis 7.4, rdb.c rdbLoadObject) brought 22 to 25; a Valkey 9 file, whose type 22 differs,
 * never gets here: its VALKEY magic is refused first.
 */
export const VALUE_TYPES = new Set([
  0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
]);

/** rdbLoadObject, by rdb.h RDB_TYPE_*. */
export async function skipValue(c: Cursor, type: number): Promise<void> {
  switch (type) {
    case 0: // STRING
    case 9: // HASH_ZIPMAP
    case 10: // LIST_ZIPLIST
    case 11: // SET_INTSET
    case 12: // ZSET_ZIPLIST
    case 13: // HASH_ZIPLIST
    case 16: // HASH_LISTPACK
    case 17: // ZSET_LISTPACK
    case 20: // SET_LISTPACK
      return skipString(c);
    case 1: // LIST
    case 2: // SET
    case 14: // LIST_QUICKLIST: ziplist blobs
      return times(await length(c), () => skipString(c));
    case 3: // ZSET
      return times(await length(c), async () => {
        await skipString(c);
        await skipOldDouble(c);
      });
    case 4: // HASH
      return times(await length(c), async () => {
        await skipString(c);
        await skipString(c);
      });
    case 5: // ZSET_2: binary doubles
      return times(await length(c), async () => {
        await skipString(c);
        c.skip(8);
      });
    case 18: // LIST_QUICKLIST_2: container kind, then the node
      return times(await length(c), async () => {
        await length(c);
        await skipString(c);
      });
    case 7: // MODULE_2
      await length(c);
      return skipModuleValue(c);
    case 22: // HASH_METADATA_PRE_GA (7.4 release candidates): [absolute ttl] field value
      return times(await length(c), async () => {
        await length(c);
        await skipString(c);
        await skipString(c);
      });
    case 24: // HASH_METADATA: the hash's next field expiry (8 bytes), then [ttl] field value
      c.skip(8);
      return times(await length(c), async () => {
        await length(c); // 0, or the field's expiry relative to the one above, plus 1
        await skipString(c);
        await skipString(c);
      });
    case 23: // HASH_LISTPACK_EX_PRE_GA: a listpack of field, value, ttl triplets
      return skipString(c);
    case 25: // HASH_LISTPACK_EX: the next field expiry (8 bytes), then that listpack
      c.skip(8);
      return skipString(c);
    case 15: // STREAM_LISTPACKS
    case 19: // STREAM_LISTPACKS_2
    case 21: // STREAM_LISTPACKS_3
      return skipStream(c, type);
    case 6:
      throw c.corrupt('a module value in the pre-GA format cannot be skipped without its module');
    default:
      throw c.corrupt(`value type ${type} cannot be skipped`);
  }
}

/**
 * A length-encoded number that is not a count: any 64-bit value is valid, such as a consumer
 * group's entries_read of -1 (SCG_INVALID_ENTRIES_READ, saved as 2^64 - 1 by rdbSaveLen).
 */
async function skipNumber(c: Cursor): Promise<void> {
  const b = await c.u8();
  if (b === 0x81) c.skip(8);
  else if (b === 0x80) c.skip(4);
  else if (b >> 6 === 1) c.skip(1);
  else if (b >> 6 !== 0) throw c.corrupt(`unknown length encoding 0x${b.toString(16)}`);
}

async function skipStream(c: Cursor, type: number): Promise<void> {
  await times(await length(c), async () => {
    await skipString(c); // node key (a stream ID)
    await skipString(c); // listpack
  });
  await skipNumber(c); // length
  await skipNumber(c); // last_id.ms
  await skipNumber(c); // last_id.seq
  if (type >= 19) {
    for (let i = 0; i < 5; i++) await skipNumber(c); // first_id, max_deleted_entry_id, entries_added
  }
  await times(await length(c), async () => {
    await skipString(c); // group name
    await skipNumber(c);
    await skipNumber(c); // last delivered id
    if (type >= 19) await skipNumber(c); // entries_read
    await times(await length(c), async () => {
      c.skip(16 + 8); // raw stream ID, delivery time
      await length(c); // delivery count
    });
    await times(await length(c), async () => {
      await skipString(c); // consumer name
      c.skip(type >= 21 ? 16 : 8); // seen time (and active time)
      await times(await length(c), async () => c.skip(16));
    });
  });
}
