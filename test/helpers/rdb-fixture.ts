import { crc64 } from '../../src/rdb/crc64.js';

/**
 * RDB files written from the format (redis/redis src/rdb.c rdbSaveRio, rdbSaveObject; rdb.h),
 * so tests can serve snapshots of versions the installed Redis does not write: RDB 9 (Redis 6)
 * and RDB 12 with the hash-field-expiry types of Redis 7.4.
 */

/** rdbSaveLen: 6-bit, 14-bit, or 0x80 and a 32-bit big-endian length. */
export function rdbLen(n: number): Buffer {
  if (n < 0x40) return Buffer.from([n]);
  if (n < 0x4000) return Buffer.from([0x40 | (n >> 8), n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = 0x80;
  b.writeUInt32BE(n, 1);
  return b;
}

/** rdbSaveRawString without compression or integer encoding. */
export function rdbString(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  return Buffer.concat([rdbLen(bytes.length), bytes]);
}

/** rdbSaveMillisecondTime: 8 bytes, little-endian. */
function ms(t: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(t));
  return b;
}

export type FixtureValue =
  | { type: 'string'; value: string }
  | { type: 'set'; members: string[] }
  | { type: 'hash'; fields: [string, string][] }
  /** RDB_TYPE_HASH_METADATA (24, Redis 7.4): fields with absolute expiry times in ms, or null. */
  | { type: 'hash-ttl'; fields: [string, string, number | null][] };

export interface FixtureKey {
  key: string;
  value: FixtureValue;
  /** Absolute expiry in ms (RDB_OPCODE_EXPIRETIME_MS). */
  expireAt?: number;
}

export interface FixtureOptions {
  version: number;
  /** The `redis-ver` aux field. */
  redisVer: string;
  keys: FixtureKey[];
  /** RDB_OPCODE_SLOT_INFO (244, RDB 12 in cluster mode): slot id, keys, keys with an expiry. */
  slotInfo?: [number, number, number];
  /** A value type to write raw after the keys, for refusal tests: [type, payload]. */
  rawValue?: [number, Buffer];
  /** Replaces the 9-byte header, for refusal tests (e.g. 'VALKEY080'). */
  magic?: string;
}

function value(v: FixtureValue): [number, Buffer] {
  switch (v.type) {
    case 'string':
      return [0, rdbString(v.value)];
    case 'set':
      return [2, Buffer.concat([rdbLen(v.members.length), ...v.members.map(rdbString)])];
    case 'hash':
      return [
        4,
        Buffer.concat([
          rdbLen(v.fields.length),
          ...v.fields.flatMap(([f, x]) => [rdbString(f), rdbString(x)]),
        ]),
      ];
    case 'hash-ttl': {
      // rdbSaveObject: the smallest field expiry, then per field a TTL of 0 (none) or its
      // expiry relative to that minimum plus 1, the field and the value.
      const expiries = v.fields.flatMap(([, , t]) => (t === null ? [] : [t]));
      const min = Math.min(...expiries);
      return [
        24,
        Buffer.concat([
          ms(min),
          rdbLen(v.fields.length),
          ...v.fields.flatMap(([f, x, t]) => [
            rdbLen(t === null ? 0 : t - min + 1),
            rdbString(f),
            rdbString(x),
          ]),
        ]),
      ];
    }
  }
}

/** A complete RDB: header, aux fields, db 0 with its keys, EOF and the CRC64 trailer. */
export function writeRdbFixture(options: FixtureOptions): Buffer {
  const parts: Buffer[] = [
    Buffer.from(options.magic ?? `REDIS${String(options.version).padStart(4, '0')}`, 'latin1'),
  ];
  const aux = (k: string, v: string) => parts.push(Buffer.from([0xfa]), rdbString(k), rdbString(v));
  aux('redis-ver', options.redisVer);
  aux('redis-bits', '64');
  parts.push(Buffer.from([0xfe]), rdbLen(0)); // SELECTDB 0
  const expiring = options.keys.filter((k) => k.expireAt !== undefined).length;
  parts.push(Buffer.from([0xfb]), rdbLen(options.keys.length), rdbLen(expiring)); // RESIZEDB
  if (options.slotInfo !== undefined) {
    parts.push(Buffer.from([0xf4]), ...options.slotInfo.map(rdbLen));
  }
  for (const k of options.keys) {
    if (k.expireAt !== undefined) parts.push(Buffer.from([0xfc]), ms(k.expireAt));
    const [type, payload] = value(k.value);
    parts.push(Buffer.from([type]), rdbString(k.key), payload);
  }
  if (options.rawValue !== undefined) {
    parts.push(Buffer.from([options.rawValue[0]]), rdbString('raw'), options.rawValue[1]);
  }
  parts.push(Buffer.from([0xff]));
  const body = Buffer.concat(parts);
  const trailer = Buffer.alloc(8);
  trailer.writeBigUInt64LE(crc64(0n, body));
  return Buffer.concat([body, trailer]);
}
