import { Crc64 } from './crc64.js';

/**
 * The DUMP payload of a value as an RDB holds it: the type byte, the value's bytes, the RDB
 * version (2 bytes, little-endian) and the CRC64 of all that (cluster.c createDumpPayload).
 * RESTORE loads it with rdbLoadObject, as it loads what DUMP returned.
 */
export function dumpPayload(type: number, value: Uint8Array, version: number): Buffer {
  const out = Buffer.allocUnsafe(1 + value.length + 10);
  out[0] = type;
  out.set(value, 1);
  out.writeUInt16LE(version, 1 + value.length);
  // One CRC for every payload: a walk makes a payload per key.
  crc
    .reset()
    .updateRange(out, 0, value.length + 3)
    .writeLE(out, value.length + 3);
  return out;
}

const crc = new Crc64();
