import { open } from 'node:fs/promises';
import { Crc64 } from './crc64.js';
import { OP_EOF, OP_EXPIRETIME_MS, OP_FUNCTION2, OP_SELECTDB, walkRdb } from './length.js';
import { RDB_HEADER_LEN } from './versions.js';

/** What a subset pass saw of the whole file, besides writing the kept part. */
export interface RdbSubset {
  /** Bytes of the subset file. */
  bytes: number;
  /** Every key of the source, by db, kept or not. */
  keys: Map<number, number>;
  /** Keys the subset holds. */
  kept: number;
}

const FLUSH_BYTES = 1024 * 1024;

/** rdbSaveLen: 6-bit, 14-bit, 32-bit or 64-bit lengths. */
export function encodeLength(n: number): Buffer {
  if (n < 64) return Buffer.from([n]);
  if (n < 16384) return Buffer.from([0x40 | (n >> 8), n & 0xff]);
  if (n <= 0xffffffff) {
    const out = Buffer.allocUnsafe(5);
    out[0] = 0x80;
    out.writeUInt32BE(n, 1);
    return out;
  }
  const out = Buffer.allocUnsafe(9);
  out[0] = 0x81;
  out.writeBigUInt64BE(BigInt(n), 1);
  return out;
}

/**
 * Writes to `dst` an RDB of the same version holding only the keys of `src` that `keep` names,
 * each with its value's bytes unchanged and its expiry, and every function library. Aux fields,
 * LRU and LFU hints are left out: what loads it needs the keys only.
 */
export async function writeRdbSubset(
  src: string,
  dst: string,
  keep: (db: number, key: Buffer) => boolean,
): Promise<RdbSubset> {
  const input = await open(src, 'r');
  const output = await open(dst, 'wx', 0o600);
  try {
    const crc = new Crc64();
    let parts: Buffer[] = [];
    let pending = 0;
    let bytes = 0;
    const put = (b: Buffer) => {
      parts.push(b);
      pending += b.length;
    };
    const flush = async () => {
      const chunk = Buffer.concat(parts, pending);
      parts = [];
      pending = 0;
      crc.update(chunk);
      bytes += chunk.length;
      await output.write(chunk);
    };
    const head = Buffer.alloc(RDB_HEADER_LEN);
    await input.read(head, 0, RDB_HEADER_LEN, 0);
    put(head);
    const keys = new Map<number, number>();
    let kept = 0;
    let db = -1;
    const { size } = await input.stat();
    await walkRdb(input, size, src, {
      bufferBytes: 4 * 1024 * 1024,
      want: (at, key) => {
        keys.set(at, (keys.get(at) ?? 0) + 1);
        return keep(at, key);
      },
      value: (entry, value) => {
        kept++;
        if (entry.db !== db) {
          db = entry.db;
          put(Buffer.concat([Buffer.from([OP_SELECTDB]), encodeLength(db)]));
        }
        if (entry.expireAt >= 0) {
          const ms = Buffer.allocUnsafe(9);
          ms[0] = OP_EXPIRETIME_MS;
          ms.writeBigInt64LE(BigInt(entry.expireAt), 1);
          put(ms);
        }
        put(Buffer.from([entry.type]));
        put(encodeLength(entry.key.length));
        put(entry.key);
        put(Buffer.from(value));
        return pending >= FLUSH_BYTES ? flush() : undefined;
      },
      library: (encoded) => {
        put(Buffer.from([OP_FUNCTION2]));
        put(Buffer.from(encoded));
      },
    });
    put(Buffer.from([OP_EOF]));
    await flush();
    // RDB 5 on ends in a CRC64 of everything before it (rdbSaveRio).
    if (Number(head.toString('latin1', 5)) < 5) return { bytes, keys, kept };
    const trailer = Buffer.allocUnsafe(8);
    crc.writeLE(trailer, 0);
    await output.write(trailer);
    return { bytes: bytes + 8, keys, kept };
  } finally {
    await input.close();
    await output.close();
  }
}
