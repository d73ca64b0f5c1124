import { dumpPayloadLength, writeDumpPayload } from '../../rdb/entries.js';
import { headerLength, writeHeader } from '../../resp/encode.js';

/** A batch of keys' commands, encoded back to back as the walk read the keys. */
export interface EncodedBatch {
  /** Every command of the batch, in order. */
  bytes: Buffer;
  /** The keys in order, each with `perKey` commands. */
  keys: Buffer[];
  /** 1: RESTORE; 2: EXISTS then RESTORE (--conflict replace counts what it replaced). */
  perKey: 1 | 2;
  /** Where each command starts in `bytes`, and one more entry: where the last one ends. */
  starts: number[];
}

/** What RESTORE's ttl argument is: 0 for none, else relative ms or (absolute) a unix time in ms. */
export interface RestoreTtl {
  ttl: number;
  absolute: boolean;
}

const RESTORE = bulk('RESTORE');
const EXISTS = bulk('EXISTS');
const ABSTTL = bulk('ABSTTL');
const REPLACE = bulk('REPLACE');
const EXISTS_HEAD = Buffer.concat([Buffer.from('*2\r\n'), EXISTS]);

function bulk(text: string): Buffer {
  return Buffer.from(`$${text.length}\r\n${text}\r\n`, 'latin1');
}

function bulkLength(n: number): number {
  return headerLength(n) + n + 2;
}

/**
 * Writes `RESTORE key ttl payload [ABSTTL] [REPLACE]` (cluster.c restoreCommand) for one key
 * after another into one buffer, the DUMP payload made in place from the RDB value's bytes: one
 * copy of each value, and nothing allocated per key. Under `replace`, each RESTORE has REPLACE
 * and an EXISTS of its key before it.
 */
export class RestoreBatchWriter {
  private buf: Buffer;
  private used = 0;
  private keys: Buffer[] = [];
  private starts: number[] = [];

  constructor(
    private readonly replace: boolean,
    private readonly capacity = 64 * 1024,
  ) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  /** Keys written since the last take(). */
  get size(): number {
    return this.keys.length;
  }

  /** Bytes written since the last take(). */
  get bytes(): number {
    return this.used;
  }

  /** Adds one key; `value` (its bytes as the RDB holds them) is copied, and may be reused after. */
  add(key: Buffer, type: number, value: Uint8Array, version: number, expiry: RestoreTtl): void {
    const ttl = String(expiry.ttl);
    const payload = dumpPayloadLength(value.length);
    const argc = 4 + (expiry.absolute ? 1 : 0) + (this.replace ? 1 : 0);
    let size =
      headerLength(argc) +
      RESTORE.length +
      bulkLength(key.length) +
      bulkLength(ttl.length) +
      bulkLength(payload);
    if (expiry.absolute) size += ABSTTL.length;
    if (this.replace) size += REPLACE.length + EXISTS_HEAD.length + bulkLength(key.length);
    this.reserve(size);
    const out = this.buf;
    let at = this.used;
    this.keys.push(key);
    if (this.replace) {
      this.starts.push(at);
      at = put(out, at, EXISTS_HEAD);
      at = putBulk(out, at, key);
    }
    this.starts.push(at);
    at = writeHeader(out, at, 0x2a, argc); // '*'
    at = put(out, at, RESTORE);
    at = putBulk(out, at, key);
    at = writeHeader(out, at, 0x24, ttl.length); // '$'
    at += out.write(ttl, at, 'latin1');
    out[at++] = 13;
    out[at++] = 10;
    at = writeHeader(out, at, 0x24, payload);
    at = writeDumpPayload(out, at, type, value, version);
    out[at++] = 13;
    out[at++] = 10;
    if (expiry.absolute) at = put(out, at, ABSTTL);
    if (this.replace) at = put(out, at, REPLACE);
    this.used = at;
  }

  /** The batch written so far; the writer starts a new one. */
  take(): EncodedBatch {
    this.starts.push(this.used);
    const batch: EncodedBatch = {
      bytes: this.buf.subarray(0, this.used),
      keys: this.keys,
      perKey: this.replace ? 2 : 1,
      starts: this.starts,
    };
    this.buf = Buffer.allocUnsafe(Math.max(this.capacity, this.used));
    this.used = 0;
    this.keys = [];
    this.starts = [];
    return batch;
  }

  private reserve(size: number): void {
    if (this.used + size <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + size));
    this.buf.copy(grown, 0, 0, this.used);
    this.buf = grown;
  }
}

/** Short constants and keys copied by a loop: faster than a call into TypedArray#set. */
function put(out: Buffer, at: number, bytes: Buffer): number {
  if (bytes.length > 64) {
    out.set(bytes, at);
    return at + bytes.length;
  }
  for (let i = 0; i < bytes.length; i++) out[at + i] = bytes[i]!;
  return at + bytes.length;
}

function putBulk(out: Buffer, at: number, bytes: Buffer): number {
  at = put(out, writeHeader(out, at, 0x24, bytes.length), bytes);
  out[at] = 13;
  out[at + 1] = 10;
  return at + 2;
}
