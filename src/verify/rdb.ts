/**
 * Integrity check of an RDB file as Redis writes it, without loading it: the header, the EOF
 * opcode and the CRC64 trailer. It streams, so a 10 GB base costs a few kilobytes of memory.
 *
 * The layout it relies on (redis/redis src/rdb.c, rdbSaveRio and rdbLoadRioWithLoadingCtx):
 *   "REDIS" + 4 ASCII digits (the RDB version) | opcodes and values … | 0xFF (RDB_OPCODE_EOF)
 *   | 8-byte little-endian CRC64 of every byte before it (versions >= 5 only)
 * A stored checksum of 0 means the writer ran with `rdbchecksum no`; Redis then loads the file
 * without checking ("RDB file was saved with checksum disabled: no check performed.").
 *
 * What it does not do is walk the values: a file whose last 9 bytes happen to look like a
 * trailer with checksumming disabled passes. `redis-check-rdb` parses every value.
 */
import { createReadStream } from 'node:fs';
import { RfError } from '../errors.js';

// ---------------------------------------------------------------------------------------------
// CRC64

/**
 * CRC-64/Jones as Redis computes it (src/crc64.c: reflected, polynomial 0xad93d23594c935a9,
 * initial value 0, no final xor; check value of "123456789" is 0xe9c6d914c4b8d9ca).
 *
 * JavaScript has no fast 64-bit integer, and BigInt per byte runs at a few MB/s, so the state
 * is two uint32 halves and the tables are split the same way. Slice-by-8 folds eight input
 * bytes per step with eight tables (Kounavis & Berry, "A Systematic Approach to Building High
 * Performance Software-based CRC Generators"; Redis's crcspeed.c does the same in C).
 */
const TABLE_LO = new Uint32Array(8 * 256);
const TABLE_HI = new Uint32Array(8 * 256);
{
  // The reflected polynomial 0x95ac9329ac4bc9b5 (0xad93d23594c935a9 bit-reversed).
  const polyLo = 0xac4bc9b5;
  const polyHi = 0x95ac9329;
  for (let n = 0; n < 256; n++) {
    let lo = n;
    let hi = 0;
    for (let bit = 0; bit < 8; bit++) {
      const carry = lo & 1;
      lo = ((lo >>> 1) | (hi << 31)) >>> 0;
      hi >>>= 1;
      if (carry) {
        lo = (lo ^ polyLo) >>> 0;
        hi = (hi ^ polyHi) >>> 0;
      }
    }
    TABLE_LO[n] = lo;
    TABLE_HI[n] = hi;
  }
  // Table k advances a byte through k further zero bytes: T[k][n] = T[k-1][n] >> 8 ^ T[0][low byte].
  for (let k = 1; k < 8; k++) {
    for (let n = 0; n < 256; n++) {
      const prevLo = TABLE_LO[(k - 1) * 256 + n]!;
      const prevHi = TABLE_HI[(k - 1) * 256 + n]!;
      const low = prevLo & 0xff;
      TABLE_LO[k * 256 + n] = (((prevLo >>> 8) | (prevHi << 24)) ^ TABLE_LO[low]!) >>> 0;
      TABLE_HI[k * 256 + n] = ((prevHi >>> 8) ^ TABLE_HI[low]!) >>> 0;
    }
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** A running CRC64, fed chunk by chunk. */
export class Crc64 {
  #lo: number;
  #hi: number;

  constructor(initial: bigint = 0n) {
    this.#lo = Number(initial & 0xffffffffn);
    this.#hi = Number((initial >> 32n) & 0xffffffffn);
  }

  update(data: Uint8Array): this {
    const T_LO = TABLE_LO;
    const T_HI = TABLE_HI;
    let lo = this.#lo;
    let hi = this.#hi;
    let i = 0;
    const length = data.length;
    if (LITTLE_ENDIAN && length >= 16) {
      // Bytewise up to a 4-byte boundary, then whole 32-bit words straight from the buffer:
      // on a little-endian host they are the bytes in CRC order, and an Int32Array view
      // reads them about half again as fast as assembling each word from four bytes.
      for (; ((data.byteOffset + i) & 3) !== 0; i++) {
        const n = (lo ^ data[i]!) & 0xff;
        lo = ((lo >>> 8) | (hi << 24)) ^ T_LO[n]!;
        hi = (hi >>> 8) ^ T_HI[n]!;
      }
      const words = new Int32Array(data.buffer, data.byteOffset + i, ((length - i) >>> 3) << 1);
      for (let w = 0; w < words.length; w += 2) {
        const a = lo ^ words[w]!;
        const b = hi ^ words[w + 1]!;
        const i7 = 7 * 256 + (a & 0xff);
        const i6 = 6 * 256 + ((a >>> 8) & 0xff);
        const i5 = 5 * 256 + ((a >>> 16) & 0xff);
        const i4 = 4 * 256 + (a >>> 24);
        const i3 = 3 * 256 + (b & 0xff);
        const i2 = 2 * 256 + ((b >>> 8) & 0xff);
        const i1 = 256 + ((b >>> 16) & 0xff);
        const i0 = b >>> 24;
        lo =
          T_LO[i7]! ^
          T_LO[i6]! ^
          T_LO[i5]! ^
          T_LO[i4]! ^
          T_LO[i3]! ^
          T_LO[i2]! ^
          T_LO[i1]! ^
          T_LO[i0]!;
        hi =
          T_HI[i7]! ^
          T_HI[i6]! ^
          T_HI[i5]! ^
          T_HI[i4]! ^
          T_HI[i3]! ^
          T_HI[i2]! ^
          T_HI[i1]! ^
          T_HI[i0]!;
      }
      i += words.length * 4;
    }
    for (; i < length; i++) {
      const n = (lo ^ data[i]!) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ T_LO[n]!;
      hi = (hi >>> 8) ^ T_HI[n]!;
    }
    this.#lo = lo >>> 0;
    this.#hi = hi >>> 0;
    return this;
  }

  get value(): bigint {
    return (BigInt(this.#hi) << 32n) | BigInt(this.#lo);
  }

  /** 16 lower-case hex digits, the way redis-check-rdb prints a checksum. */
  hex(): string {
    return this.#hi.toString(16).padStart(8, '0') + this.#lo.toString(16).padStart(8, '0');
  }
}

/** `crc64(crc, data)` as in src/crc64.c: continue `crc` over `data`. Redis starts from 0. */
export function crc64(crc: bigint, data: Uint8Array): bigint {
  return new Crc64(crc).update(data).value;
}

// ---------------------------------------------------------------------------------------------
// RDB check

/** "REDIS" + 4 digits (rdbSaveRio: snprintf(magic, sizeof(magic), "REDIS%04d", RDB_VERSION)). */
const HEADER_LEN = 9;
/** RDB_OPCODE_EOF in src/rdb.h. */
const OPCODE_EOF = 0xff;
const CHECKSUM_LEN = 8;
/** The checksum trailer arrived with RDB version 5 (Redis 2.6); rdbLoad checks `rdbver >= 5`. */
const FIRST_CHECKSUM_VERSION = 5;

export interface RdbCheckResult {
  /** The RDB format version from the header (10 for Redis 7.0, 11 for 7.2, 12 for 7.4). */
  version: number;
  /** The file's length. */
  bytes: number;
  /** CRC64 of the bytes the checksum covers, as 16 hex digits. */
  crc: string;
  /** The file was written with `rdbchecksum no` (or predates checksums): nothing was compared. */
  checksumDisabled: boolean;
}

const HINT = (source: string) =>
  `\`redis-check-rdb ${source}\` parses the file and shows where it breaks; ` +
  'a base that fails this check cannot be restored from';

/**
 * Incremental form of the check, for bytes that arrive in pieces (a file read, or an RDB
 * transfer from the master being written to disk). The last 8 bytes seen are held back from
 * the CRC because, until the stream ends, any 8 bytes could be the trailer.
 */
export class RdbChecker {
  readonly #source: string;
  readonly #header = Buffer.alloc(HEADER_LEN);
  #headerLen = 0;
  #version = 0;
  readonly #crc = new Crc64();
  readonly #tail = Buffer.alloc(CHECKSUM_LEN);
  #tailLen = 0;
  /** The last byte fed to the CRC: the EOF opcode, once the stream is complete. */
  #lastCovered = -1;
  #bytes = 0;
  #finished = false;

  /** `source` names the file in errors (a path, or a description of the transfer). */
  constructor(source: string) {
    this.#source = source;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Throws RF_CORRUPT as soon as the header is known to be wrong. */
  update(chunk: Uint8Array): void {
    if (this.#finished) throw new TypeError('RdbChecker.update() after finish()');
    this.#bytes += chunk.length;
    if (this.#headerLen < HEADER_LEN) {
      const n = Math.min(HEADER_LEN - this.#headerLen, chunk.length);
      this.#header.set(chunk.subarray(0, n), this.#headerLen);
      this.#headerLen += n;
      if (this.#headerLen === HEADER_LEN) this.#version = this.#parseHeader();
    }

    const pending = this.#tailLen + chunk.length;
    if (pending <= CHECKSUM_LEN) {
      this.#tail.set(chunk, this.#tailLen);
      this.#tailLen = pending;
      return;
    }
    const covered = pending - CHECKSUM_LEN;
    const fromTail = Math.min(this.#tailLen, covered);
    const fromChunk = covered - fromTail;
    if (fromTail > 0) {
      this.#crc.update(this.#tail.subarray(0, fromTail));
      this.#lastCovered = this.#tail[fromTail - 1]!;
    }
    if (fromChunk > 0) {
      this.#crc.update(chunk.subarray(0, fromChunk));
      this.#lastCovered = chunk[fromChunk - 1]!;
    }
    // Keep the last 8 bytes: what is left of the old tail, then the end of this chunk.
    this.#tail.copyWithin(0, fromTail, this.#tailLen);
    this.#tail.set(chunk.subarray(fromChunk), this.#tailLen - fromTail);
    this.#tailLen = CHECKSUM_LEN;
  }

  /** Throws RF_CORRUPT for a short or unterminated file, RF_CHECKSUM for a CRC mismatch. */
  finish(): RdbCheckResult {
    if (this.#finished) throw new TypeError('RdbChecker.finish() called twice');
    this.#finished = true;
    const source = this.#source;
    const bytes = this.#bytes;
    if (this.#headerLen < HEADER_LEN) {
      throw new RfError(
        'RF_CORRUPT',
        `${source} is truncated: ${bytes} bytes, shorter than the 9-byte RDB header`,
        { details: { path: source, bytes }, hint: HINT(source) },
      );
    }

    if (this.#version < FIRST_CHECKSUM_VERSION) {
      // No trailer: the held-back bytes are content and the EOF opcode is the very last byte.
      this.#crc.update(this.#tail.subarray(0, this.#tailLen));
      const last = this.#tail[this.#tailLen - 1] ?? this.#lastCovered;
      if (bytes < HEADER_LEN + 1 || last !== OPCODE_EOF) throw this.#missingEof(last);
      return { version: this.#version, bytes, crc: this.#crc.hex(), checksumDisabled: true };
    }

    if (bytes < HEADER_LEN + 1 + CHECKSUM_LEN || this.#lastCovered !== OPCODE_EOF) {
      throw this.#missingEof(this.#lastCovered);
    }
    const actual = this.#crc.hex();
    // Written with memrev64ifbe, i.e. little-endian on every host.
    const stored =
      this.#tail.readUInt32LE(4).toString(16).padStart(8, '0') +
      this.#tail.readUInt32LE(0).toString(16).padStart(8, '0');
    const checksumDisabled = stored === '0000000000000000';
    if (!checksumDisabled && stored !== actual) {
      throw new RfError(
        'RF_CHECKSUM',
        `${source}: RDB checksum mismatch, the file says ${stored} but its bytes give ${actual}`,
        {
          details: { path: source, expected: stored, actual, bytes },
          hint: `the file changed after Redis wrote it (disk, copy or transfer error); ${HINT(source)}`,
        },
      );
    }
    return { version: this.#version, bytes, crc: actual, checksumDisabled };
  }

  #parseHeader(): number {
    const magic = this.#header.toString('latin1', 0, 5);
    const digits = this.#header.toString('latin1', 5, HEADER_LEN);
    // rdbLoad rejects a version below 1 as well ("Can't handle RDB format version").
    if (magic !== 'REDIS' || !/^\d{4}$/.test(digits) || Number(digits) < 1) {
      throw new RfError(
        'RF_CORRUPT',
        `${this.#source} is not an RDB file: it starts with ${JSON.stringify(
          this.#header.toString('latin1'),
        )}, not REDIS and a 4-digit version`,
        {
          details: { path: this.#source, header: this.#header.toString('hex') },
          hint: HINT(this.#source),
        },
      );
    }
    return Number(digits);
  }

  #missingEof(last: number): RfError {
    const source = this.#source;
    const ending =
      this.#version < FIRST_CHECKSUM_VERSION
        ? 'the EOF opcode (0xff)'
        : 'the EOF opcode (0xff) and an 8-byte checksum';
    const seen = last < 0 ? 'no byte' : `0x${last.toString(16).padStart(2, '0')}`;
    return new RfError(
      'RF_CORRUPT',
      `${source} is truncated or incomplete: it does not end with ${ending} (found ${seen} where the opcode belongs)`,
      { details: { path: source, bytes: this.#bytes, version: this.#version }, hint: HINT(source) },
    );
  }
}

/**
 * Streams the file at `path` through the check (1 MiB reads; memory does not grow with the
 * file). Errors opening or reading the file are Node's own (ENOENT, EACCES): whether a missing
 * file is a broken store or a typo is for the caller to say.
 */
export async function checkRdbFile(path: string): Promise<RdbCheckResult> {
  const checker = new RdbChecker(path);
  // for await closes the stream when update() throws, so a bad header stops the read early.
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    checker.update(chunk as Buffer);
  }
  return checker.finish();
}
