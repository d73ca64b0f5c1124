import { Crc64 } from './crc64.js';

/** Bytes of the DUMP payload of a value of `valueBytes` bytes: type, value, version, CRC64. */
export function dumpPayloadLength(valueBytes: number): number {
  return 1 + valueBytes + 10;
}

/**
 * The DUMP payload of a value as an RDB holds it: the type byte, the value's bytes, the RDB
 * version (2 bytes, little-endian) and the CRC64 of all that (cluster.c createDumpPayload).
 * RESTORE loads it with rdbLoadObject, as it loads what DUMP returned.
 */
export function dumpPayload(type: number, value: Uint8Array, version: number): Buffer {
  const out = Buffer.allocUnsafe(dumpPayloadLength(value.length));
  writeDumpPayload(out, 0, type, value, version);
  return out;
}

/** dumpPayload written into `out` at `at`, for a caller that packs many; returns where it ends. */
export function writeDumpPayload(
  out: Buffer,
  at: number,
  type: number,
  value: Uint8Array,
  version: number,
): number {
  out[at] = type;
  out.set(value, at + 1);
  const end = at + 1 + value.length;
  out[end] = version & 0xff;
  out[end + 1] = version >>> 8;
  // One CRC for every payload: a walk makes a payload per key.
  crc
    .reset()
    .updateRange(out, at, end + 2)
    .writeLE(out, end + 2);
  return end + 10;
}

const crc = new Crc64();
